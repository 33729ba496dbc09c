"""The case page (issue 11): GET /cases/{case_no} (HTML, hub/pages.py) and its JSON twin GET
/api/cases/{case_no}, server time p50/p95 over a sample of cases, on SQLite and on PostgreSQL.

    .venv/bin/python bench/casepage.py [--cases 1000000] [--sites 1000] [--sample 200] [--runs 5]
                                       [--engines sqlite,postgresql] [--rebuild]
                                       [--cache /tmp/jiancha-bench-casepage]

THE STORE. bench/province.py's filled store (its History: cases registered over half a year of
working days, their events, votes, cards, alerts and 督办 tickets; about 5 % open at the store's
today, so 1,000,000 cases hold about 50,000 open), built with --cases and --sites into its own
cache folder, and then what province leaves out and a case page reads: the `records` table, each
site's raw log, so the page's hash-chain check reads and hashes real rows. Every seq of a site's
history gets its record, chained (prev = the previous record's hash) and encoded with
protocol.records: registrations and events with their stored bodies; the events province drops for
old closed cases (it keeps only their case rows) as case.event records of the same shape. The
PostgreSQL store is a copy of the SQLite one (province.pg_store: COPY, indexes, VACUUM ANALYZE) in
a cluster of our own in the cache folder.

THE MEASUREMENT. hub.api.create_app over the store on a real HTTP server on 127.0.0.1 (the hub's
own app, the admin token as the actor: the same route rules and the same work as a session), with
one extra outermost middleware that times each request from its arrival in the app to the response
being ready (server time: the handler, its thread hop and queries, rendering; not the socket). A
sample of --sample cases drawn once with a fixed seed: half of them open cases (the pages
supervisors open: the most records, tickets and deadlines), half any case. Per run every sample
case is asked for once as HTML and once as JSON, in random order; the first pass is a warm-up.
Also the 督办 page of the whole city (GET /tickets and /tickets?status=open: the newest 100 of the
store's tickets with their events and documents), 20 requests each per run. Printed per engine
and route: p50 and p95 of each run, and their medians over --runs runs; also the client's round
trip p50 for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import province
from bench.figures import machine_line
from protocol.calendar import CST

CACHE = Path("/tmp/jiancha-bench-casepage")
NOW = datetime(province.STORE_TODAY.year, province.STORE_TODAY.month, province.STORE_TODAY.day, 10, 0, tzinfo=CST)
log = province.log
LISTS = ("/tickets", "/tickets?status=open")  # the 督办 page of the whole city (admin: no scope)
LIST_REQUESTS = 20  # of each, per run


def fill_records(sqlite_url: str, marker: Path) -> dict:
    """The `records` table of every site's history (see the module's docstring); cached by `marker`."""
    if marker.exists():
        return json.loads(marker.read_text())
    from hub.db import connect
    from protocol.records import GENESIS, Record, encode_record, record_hash

    t0 = time.perf_counter()
    conn = connect(sqlite_url)
    conn.execute("PRAGMA synchronous=OFF")
    sites = [r[0] for r in conn.execute("SELECT DISTINCT site FROM cases ORDER BY site").fetchall()]
    total = 0
    filler_body = None
    conn.execute("BEGIN")
    for k, site in enumerate(sites):
        bodies: dict[int, tuple[str, dict, int]] = {}
        for seq, reg, received in conn.execute(
            "SELECT reg_seq, reg_json, received_at FROM cases WHERE site=?", (site,)
        ).fetchall():
            bodies[seq] = ("case.registered", json.loads(reg), int(datetime.fromisoformat(received).timestamp() * 1000))
        for seq, body, at_ms in conn.execute(
            "SELECT seq, body_json, recorded_ms FROM case_events WHERE site=?", (site,)
        ).fetchall():
            bodies[seq] = ("case.event", json.loads(body), at_ms or 0)
            filler_body = filler_body or json.loads(body)
        for seq, case_no, window, level, name, pressed in conn.execute(
            'SELECT seq, case_no, "window", level, level_name, pressed_ms FROM votes WHERE site=?', (site,)
        ).fetchall():
            bodies[seq] = ("vote", {"case_no": case_no, "window": window, "key": f"k{level}", "level": level,
                                    "level_name": name, "mapping_version": "keypad5-v1",
                                    "pressed_wall_ms": pressed}, pressed)  # fmt: skip
        lo, hi = min(bodies), max(bodies)
        prev, wall, rows = GENESIS, bodies[lo][2], []
        for seq in range(lo, hi + 1):
            kind, body, wall_ms = bodies.get(seq) or ("case.event", filler_body or {"type": "step"}, wall)
            wall = wall_ms or wall
            enc = encode_record(Record(seq, prev, kind, wall, 0, "bench", "ntp", body))
            h = record_hash(enc)
            rows.append((site, seq, h, prev, kind, wall, "ntp", wall, enc))
            prev = h
        conn.executemany(
            "INSERT INTO records(site, seq, hash, prev, kind, wall_ms, clock, received_ms, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        total += len(rows)
        if (k + 1) % 100 == 0 or k + 1 == len(sites):
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            log(f"    records: {k + 1:,} of {len(sites):,} sites, {total:,} records ({time.perf_counter() - t0:.0f} s)")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    info = {"records": total, "seconds": round(time.perf_counter() - t0)}
    marker.write_text(json.dumps(info))
    return info


def sample_cases(url: str, n: int, seed: int = 11) -> list[str]:
    """Half open cases, half any case (fixed seed; the same on both engines: drawn from SQLite)."""
    from hub.db import connect

    conn = connect(url, readonly=True)
    try:
        rng = random.Random(seed)
        open_ = [r[0] for r in conn.execute("SELECT case_no FROM cases WHERE closed=0 ORDER BY case_no").fetchall()]
        total = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
        anyc = [
            conn.execute(
                "SELECT case_no FROM cases ORDER BY case_no LIMIT 1 OFFSET ?", (rng.randrange(total),)
            ).fetchone()[0]
            for _ in range(n - n // 2)
        ]
    finally:
        conn.close()
    return rng.sample(open_, n // 2) + anyc


def measure(hubdir, url: str, sample: list[str], runs: int) -> dict:
    """Per route: the p50 and p95 of each run's server times (ms), and client round trip p50s."""
    import aiohttp
    from aiohttp import web

    from hub.api import create_app
    from hub.app import start_http

    hub = province.make_hub(hubdir, url, NOW)
    token = hub.cfg.api.admin_token
    server_ms: dict[str, float] = {}

    @web.middleware
    async def timing(request, handler):
        t = time.perf_counter()
        try:
            return await handler(request)
        finally:
            server_ms[request.path_qs] = 1000 * (time.perf_counter() - t)

    async def go():
        app = create_app(hub, hub.reader, token)
        app.middlewares.insert(0, timing)
        runner, port = await start_http(app, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}"
        kinds = ("page", "json", *LISTS)
        out = {k: [] for kind in kinds for k in (kind, f"{kind}_rtt")}
        rng = random.Random(5)
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
                for run in range(runs + 1):  # run 0: warm-up
                    got = {k: [] for k in out}
                    asks = [(k, c) for c in sample for k in ("page", "json")]
                    asks += [(k, None) for k in LISTS for _ in range(LIST_REQUESTS)]
                    rng.shuffle(asks)
                    for kind, case_no in asks:
                        path = {"page": f"/cases/{case_no}", "json": f"/api/cases/{case_no}"}.get(kind, kind)
                        t = time.perf_counter()
                        async with http.get(base + path) as r:
                            body = await r.read()
                            if r.status != 200:
                                raise RuntimeError(f"{path}: HTTP {r.status}: {body[:200]!r}")
                        got[f"{kind}_rtt"].append(1000 * (time.perf_counter() - t))
                        got[kind].append(server_ms.pop(path))
                    if run:
                        for k, xs in got.items():
                            q = statistics.quantiles(xs, n=20)
                            out[k].append((statistics.median(xs), q[18]))
                        log(
                            f"    run {run}: "
                            + "; ".join(f"{k} p50 {out[k][-1][0]:.1f} p95 {out[k][-1][1]:.1f}" for k in kinds)
                        )
        finally:
            await runner.cleanup()
        return out

    try:
        return asyncio.run(go())
    finally:
        province.close_hub(hub)


def page_sizes(hubdir, url: str, sample: list[str]) -> tuple[float, float]:
    """Mean timeline length and HTML size over the sample (what one page carries)."""
    from hub.access import Actor
    from hub.api import case_json

    hub = province.make_hub(hubdir, url, NOW)
    try:
        rows = [case_json(hub.reader, c, Actor("token:admin", "admin"), hub) for c in sample]
    finally:
        province.close_hub(hub)
    return statistics.mean(len(r["timeline"]) for r in rows), statistics.mean(len(r["tickets"]) for r in rows)


def chain_check_cost(url: str, n: int = 1000, runs: int = 5) -> float:
    """µs per record of hub.chain_check.check_links over `n` consecutive records of one site
    (what each extra record on a page adds: one more row read, hashed and decoded)."""
    from hub.chain_check import check_links
    from hub.db import connect

    conn = connect(url, readonly=True)
    try:
        site, lo = conn.execute("SELECT site, min(seq) FROM records GROUP BY site ORDER BY site LIMIT 1").fetchone()
        seqs = list(range(lo + 1, lo + 1 + n))
        times = []
        for _ in range(runs + 1):
            t = time.perf_counter()
            got = check_links(conn, site, seqs)
            times.append(time.perf_counter() - t)
        assert all(c.state == "ok" for c in got.values()), "the generated chain does not verify"
    finally:
        conn.close()
    return 1e6 * statistics.median(times[1:]) / n


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--cases", type=int, default=1_000_000, help="cases in the store (default 1,000,000)")
    ap.add_argument("--sites", type=int, default=1000, help="township sites (default 1,000)")
    ap.add_argument("--sample", type=int, default=200, help="cases asked for per run (default 200)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs; medians are printed (default 5)")
    ap.add_argument("--engines", default="sqlite,postgresql", help="sqlite,postgresql (default both)")
    ap.add_argument("--rebuild", action="store_true", help="build the stores again")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"cache folder (default {CACHE})")
    a = ap.parse_args(argv)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    log(machine_line())
    log(province.load_line())
    a.cache.mkdir(parents=True, exist_ok=True)
    codes = province.site_codes(a.sites)
    hubdir = province.provision(a.cache / f"hub-{a.sites}", codes)
    t = time.perf_counter()
    sqlite_url, info = province.sqlite_store(SimpleNamespace(**vars(a)), hubdir, codes)
    rec = fill_records(sqlite_url, a.cache / f"{province.store_key(a)}-records.json")
    log(
        f"store: {info['counts']['cases']:,} cases ({info['open']:,} open), {info['counts']['case_events']:,} events, "
        f"{rec['records']:,} records ({time.perf_counter() - t:.0f} s here; cached in {a.cache})"
    )
    sample = sample_cases(sqlite_url, a.sample)
    results = {}
    with contextlib.ExitStack() as stack:
        for engine in engines:
            if engine == "sqlite":
                url = sqlite_url
            else:
                pg = stack.enter_context(province.cached_postgres(a.cache / "pg"))
                url = province.pg_store(SimpleNamespace(**vars(a)), pg, sqlite_url)
            mean_tl, mean_t = page_sizes(hubdir, url, sample)
            log(f"  {engine}: {len(sample)} cases, on average {mean_tl:.1f} records and {mean_t:.2f} tickets a page")
            per_record = chain_check_cost(url)
            log(f"  {engine}: the chain check costs {per_record:.1f} µs per record (1,000 consecutive records)")
            results[engine] = measure(hubdir, url, sample, a.runs)
    log("")
    log(f"server time, medians of {a.runs} runs (each run: {len(sample)} cases, half open), ms:")
    log(f"  {'engine':<12} {'route':<28} {'p50':>8} {'p95':>8} {'client p50':>11}")  # the lists: {LIST_REQUESTS} a run
    for engine, r in results.items():
        for kind, name in (("page", "GET /cases/{case_no}"), ("json", "GET /api/cases/{case_no}"),
                           *((k, f"GET {k}") for k in LISTS)):  # fmt: skip
            p50 = statistics.median(x[0] for x in r[kind])
            p95 = statistics.median(x[1] for x in r[kind])
            rtt = statistics.median(x[0] for x in r[f"{kind}_rtt"])
            log(f"  {engine:<12} {name:<28} {p50:>8.1f} {p95:>8.1f} {rtt:>11.1f}")
    log(province.load_line())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
