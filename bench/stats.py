"""bench/stats: the statistics (issue 13, hub/stats.py) over a large store, on SQLite and PostgreSQL.

    .venv/bin/python bench/stats.py [--cases 1000000] [--sites 200] [--runs 5] [--requests 5]
                                    [--engines sqlite,postgresql] [--rebuild] [--cache /tmp/jiancha-bench-stats]

The store: --cases cases over --sites township sites (tests/hub/stats_data.py's generator, the
one the tests check the figures with), received from 2025-12-12 to 2026-11-30 (about 1/12 of
them in November), 75 % concluded with one or two decision events, about 0.6 ratings per case
(keypad and portal, some misuse, some marked 误评/恶意差评) and 2 complaints per 100 cases with
their steps. Built once into the cache folder as a hub directory with its SQLite hub.db, then
copied into a PostgreSQL cluster of our own (bench/province.py's COPY loader, tests/pgserver.py).

Measured for November 2026, as the admin (the whole store) and as a county supervisor, each a
median over --runs:
  - baseline: SELECT count(*) FROM cases, and the count of November's received cases (the
    cheapest read every statistic needs);
  - all statistics: hub.stats.compute (every count, rate, duration, rating and complaint figure)
    plus hub.stats_tables.tables (the ten tables), in-process on the hub's reader connection;
  - the stats page: GET /stats?from=2026-11-01&to=2026-11-30 on the hub's real app (a free port,
    the session of an account), from request to the last byte, --requests per run; and
    GET /api/stats/export?table=site&format=xlsx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import machine_line

CACHE = Path("/tmp/jiancha-bench-stats")
FIRST, LAST = date(2026, 11, 1), date(2026, 11, 30)
START = date(2025, 12, 12)  # receipts from here: with the generator's 20 days before, ~1 year
NOW_S = "2026-12-03T10:00:00+08:00"


def log(msg: str) -> None:
    print(msg, flush=True)


def build(a) -> tuple[Path, str]:
    """(hub directory, SQLite URL) of the filled store, built once."""
    from provisioning.setup import add_site, init_hub
    from tests.hub.stats_data import generate, sites_of, write

    hubdir = a.cache / f"hub-{a.cases}-{a.sites}"
    db = hubdir / "data" / "hub.db"
    done = hubdir / "built"
    if done.exists() and not a.rebuild:
        return hubdir, f"sqlite:{db}"
    import shutil

    shutil.rmtree(hubdir, ignore_errors=True)
    init_hub(hubdir, region="140700", name="基准测试市政务服务中心", broker_port=1, http_port=1)
    codes = sites_of(a.sites)
    for code in codes:
        add_site(hubdir, code=code, name=f"{code}便民服务中心")
    t0 = time.perf_counter()
    g = generate(date(2026, 1, 1), LAST, a.cases, seed=11, sites=codes)
    t1 = time.perf_counter()
    log(f"  generated {len(g.cases):,} cases, {len(g.events):,} events, {len(g.votes):,} ratings, "
        f"{len(g.complaints):,} complaints in {t1 - t0:.0f} s")  # fmt: skip
    from hub.store import open_db

    conn = open_db(f"sqlite:{db}")
    try:
        write(conn, g, batch=50_000)
        conn.execute("ANALYZE")
    finally:
        conn.close()
    log(f"  SQLite store written in {time.perf_counter() - t1:.0f} s")
    done.write_text("ok")
    return hubdir, f"sqlite:{db}"


CPU: list[float] = []  # this process's CPU time of the last timed() call's runs, ms


def timed(fn, runs: int) -> tuple[list[float], object]:
    """Wall-clock ms of each run (and the process's CPU ms of each in CPU)."""
    out, result = [], None
    CPU.clear()
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        out.append((time.perf_counter() - t) * 1000)
        CPU.append((time.process_time() - c) * 1000)
    return out, result


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} ms (min {min(xs):,.0f}, max {max(xs):,.0f})"


def measure(engine: str, url: str, hubdir: Path, a) -> None:
    from hub.access import Actor
    from hub.config import HubConfig
    from hub.db import connect
    from hub.stats import Filter, compute
    from hub.stats_tables import tables
    from hub.store import load_calendar
    from iobase.config import load_config

    now = datetime.fromisoformat(NOW_S)
    # as the hub reads: a pooled reader on PostgreSQL (the parts run side by side), a read-only file on SQLite
    conn = connect(url, readonly=True, synchronous="NORMAL", pool=4 if engine == "postgresql" else 0)
    cal = load_calendar(conn)
    reply_days = load_config(hubdir / "hub.yaml", HubConfig).complaints.reply_days
    log(f"\n{engine}: November 2026, medians of {a.runs} runs")
    base, n = timed(lambda: conn.execute("SELECT count(*) FROM cases").fetchone()[0], a.runs)
    log(f"  baseline SELECT count(*) FROM cases ({n:,}): {med(base)}")
    month, m = timed(
        lambda: conn.execute(
            "SELECT count(*) FROM cases WHERE received_at >= '2026-11-01' AND received_at < '2026-12-01'"
        ).fetchone()[0],
        a.runs,
    )
    log(f"  baseline count of November's receipts ({m:,}): {med(month)}")
    for who, actor in (("admin (all sites)", Actor("a", "admin")), ("county supervisor 140702", Actor("s", "supervisor", "140702"))):  # fmt: skip

        def run_all(actor=actor):
            stats = compute(conn, Filter(actor), FIRST, LAST, cal, now, reply_days=reply_days)
            return stats, tables(stats, {})

        xs, (stats, _t) = timed(run_all, a.runs)
        s = stats["summary"]
        log(f"  all statistics, {who}: {med(xs)}; this process's CPU {statistics.median(CPU):,.0f} ms  [received {s['received']:,}, concluded {s['concluded']:,}, "
            f"ratings {s['ratings']:,}, complaints {s['complaints']:,}]")  # fmt: skip
    conn.close()
    page(engine, url, hubdir, a)


def page(engine: str, url: str, hubdir: Path, a) -> None:
    """GET /stats and one XLSX export on the hub's real app."""
    import aiohttp

    from hub.app import Hub
    from hub.config import HubConfig
    from iobase.config import load_config
    from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
    from tests.hub.hubapp import served

    cfg = load_config(hubdir / "hub.yaml", HubConfig)
    if engine == "postgresql":
        cfg.store.url = url
    hub = Hub(cfg)
    hub.ingest.now = lambda: datetime.fromisoformat(NOW_S)
    with contextlib.suppress(Exception):
        make_user(hub, "bench-admin", "admin")

    from hub.api_stats import CACHE as STATS_CACHE

    async def go() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"cold": [], "warm": [], "export": []}
        async with served(hub) as (base, app), aiohttp.ClientSession() as s:
            headers = cookie_headers(open_session(hub, "bench-admin"), base)
            for path, key in (("/stats?from=2026-11-01&to=2026-11-30", "cold"),
                              ("/stats?from=2026-11-01&to=2026-11-30", "warm"),
                              ("/api/stats/export?table=site&format=xlsx&from=2026-11-01&to=2026-11-30", "export")):  # fmt: skip
                for _ in range(a.runs * a.requests):
                    if key == "cold":
                        app[STATS_CACHE].data.clear()  # the first request after the cache expired
                    t = time.perf_counter()
                    async with s.get(base + path, headers=headers) as r:
                        await r.read()
                        assert r.status == 200, (path, r.status)
                    out[key].append((time.perf_counter() - t) * 1000)
        return out

    try:
        got = asyncio.run(go())
    finally:
        hub.close() if hasattr(hub, "close") else None
    log(f"  GET /stats (admin, November), request to last byte, statistics computed: {med(got['cold'])}")
    log(f"  GET /stats (admin, November), request to last byte, statistics cached (< 60 s old): {med(got['warm'])}")
    log(f"  GET /api/stats/export?table=site&format=xlsx (cached statistics): {med(got['export'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2, help="page requests per run")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--cache", type=Path, default=CACHE)
    a = ap.parse_args()
    engines = [e for e in a.engines.split(",") if e]
    log(machine_line())
    log(f"store: {a.cases:,} cases over {a.sites} sites (cache {a.cache})")
    a.cache.mkdir(parents=True, exist_ok=True)
    hubdir, sqlite_url = build(a)
    with contextlib.ExitStack() as stack:
        urls = {"sqlite": sqlite_url}
        if "postgresql" in engines:
            from bench import province

            pg = stack.enter_context(province.cached_postgres(a.cache / "pg"))
            ns = SimpleNamespace(cases=a.cases, sites=a.sites, cache=a.cache, rebuild=a.rebuild)
            urls["postgresql"] = province.pg_store(ns, pg, sqlite_url)
        for engine in engines:
            measure(engine, urls[engine], hubdir, a)


if __name__ == "__main__":
    main()
