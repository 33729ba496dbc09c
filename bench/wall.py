"""The wall (issue 11): its data routes' server time over a large store, and how long a record
takes from the hub's ingest commit to an open wall's server-sent event, on SQLite and PostgreSQL.

    .venv/bin/python bench/wall.py [--cases 1000000] [--sites 200] [--runs 3] [--requests 30]
                                   [--records 20] [--walls 1,50] [--engines sqlite,postgresql]
                                   [--rebuild] [--cache /tmp/jiancha-bench-wall]

The store is bench/province.py's (part 2), at --cases over --sites (default 1,000,000 cases over
200 township sites, about 5 % open: 50,000), built once into the cache folder (SQLite through
the province generator, then copied into a PostgreSQL cluster of our own, tests/pgserver.py).
Every measurement passes the store's own "today" (province.STORE_NOW).

PART 1, ROUTES. The hub's real app (hub.api.create_app) on a free port, over the store, with a
middleware that times each request inside the server (from the first middleware to the
response: the "server time"). Routes: GET /api/wall as the admin with its per-scope cache
emptied before each request ("cold": the work of the first wall after a change) and with the
cache ("warm": the other walls of that scope), as a county supervisor and as a department
officer (cold), the wall's case list GET /api/cases?open=1&order=urgency&limit=300, a site
page's GET /api/sites/{code} and GET /api/sites/{code}/votes (30 days). p50 and p95 per run;
the medians over --runs are printed.

PART 2, LIVE. --walls clients (each value one scenario) hold GET /api/events/wall open; then
--records registrations are ingested one by one through hub.ingest.Ingestor.process_group (the
hub's real ingest path: verify, decrypt, store, project, commit), 0.3-0.6 s apart (so that the
records fall anywhere in the 250 ms poll). For each record: the time from the end of the commit
(process_group returned) to the change event at the last of the walls, and from the start of
process_group (the record arriving); and from the arrival until the last wall has the answer of
its refetch of GET /api/wall (each wall refetches on the event, as dashboard.js does: the wall
showing it). Client and server share this process and its event loop,
as walls and hub share a machine's CPU; the ingest runs in a thread, as in `jiancha hub run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import province
from bench.figures import machine_line

CACHE = Path("/tmp/jiancha-bench-wall")


def log(msg: str) -> None:
    print(msg, flush=True)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def stores(a, hubdir, codes, engines, pg) -> dict[str, str]:
    """{engine: url} of the filled store (built once, cached)."""
    ns = SimpleNamespace(cases=a.cases, sites=a.sites, cache=a.cache, rebuild=a.rebuild)
    sqlite_url, info = province.sqlite_store(ns, hubdir, codes)
    log(f"  store: {info['counts']['cases']:,} cases, {info['open']:,} open")
    out = {"sqlite": sqlite_url}
    if "postgresql" in engines:
        out["postgresql"] = province.pg_store(ns, pg, sqlite_url)
    return {e: out[e] for e in engines}


def accounts(hub) -> dict[str, dict]:
    """Sessions of a county supervisor and a department officer (created once in the store)."""
    from hub.accounts import get_user
    from tests.hub.accounts_helpers import make_user, open_session

    county = hub.sites.active()[len(hub.sites.active()) // 2][:6]
    dept = hub.reader.execute("SELECT department FROM catalog ORDER BY code LIMIT 1").fetchone()[0]
    for login, role, scope in (("bench-county", "supervisor", county), ("bench-dept", "department", dept)):
        if get_user(hub.reader, login) is None:
            make_user(hub, login, role, scope)
    return {"county": open_session(hub, "bench-county"), "dept": open_session(hub, "bench-dept")}


@contextlib.asynccontextmanager
async def serve(hub):
    """(base url, app, server times in ms) of the hub's app with a timing middleware in front."""
    from aiohttp import web

    from hub.api import create_app
    from hub.app import start_http

    app = create_app(hub, hub.reader, hub.cfg.api.admin_token)
    times: list[float] = []

    @web.middleware
    async def timing(request, handler):
        t = time.perf_counter()
        try:
            return await handler(request)
        finally:
            if request.path != "/api/events/wall":
                times.append(1000 * (time.perf_counter() - t))

    app.middlewares.insert(0, timing)
    runner, port = await start_http(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}", app, times
    finally:
        await runner.cleanup()


async def route_times(hub, requests: int) -> list[tuple[str, float, float]]:
    """(route, p50 ms, p95 ms) of the server time of each wall route."""
    import aiohttp

    from hub.api_wall import CACHE as WALL_CACHE
    from tests.hub.accounts_helpers import cookie_headers

    sess = accounts(hub)
    site = hub.sites.active()[len(hub.sites.active()) // 2]
    token = {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
    out = []
    async with serve(hub) as (base, app, times), aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(600)) as http:
        county, dept = cookie_headers(sess["county"], base), cookie_headers(sess["dept"], base)
        routes = [
            ("GET /api/wall (admin, cold)", "/api/wall", token, True),
            ("GET /api/wall (admin, warm: same scope, no change)", "/api/wall", token, False),
            ("GET /api/wall (county supervisor, cold)", "/api/wall", county, True),
            ("GET /api/wall (department officer, cold)", "/api/wall", dept, True),
            (
                "GET /api/cases?open=1&order=urgency&limit=300",
                "/api/cases?open=1&order=urgency&limit=300",
                token,
                False,
            ),
            ("GET /api/sites/{code} (site page)", f"/api/sites/{site}", token, False),
            ("GET /api/sites/{code}/votes (30 days)", f"/api/sites/{site}/votes", token, False),
        ]
        for name, path, headers, cold in routes:
            for k in range(requests + 1):
                if cold:
                    app[WALL_CACHE].data.clear()
                times.clear()
                async with http.get(base + path, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{path}: HTTP {r.status}")
                if k == 0:
                    continue  # warm-up
                out.append((name, times[0]))
    by: dict[str, list[float]] = {}
    for name, t in out:
        by.setdefault(name, []).append(t)
    return [(name, statistics.median(ts), pct(ts, 0.95)) for name, ts in by.items()]


async def _read_events(resp, seen: list[float], shown: list[float], ready: asyncio.Event, refetch) -> None:
    """Note the monotonic time of each change event on one stream, and when the wall's refetch
    of GET /api/wall (as dashboard.js does on each change) has its answer."""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line == "event: hello":
            ready.set()
        elif line == "event: change":
            seen.append(time.monotonic())
            await refetch()
            shown.append(time.monotonic())


async def live_times(hub, hubdir, walls: int, records: int) -> tuple[list[float], list[float], list[float]]:
    """(commit → event at the last wall, arrival → event at the last wall, arrival → the last
    wall's refetched data), ms per record."""
    import aiohttp

    from protocol import topics
    from tests.craft import SiteSigner, chain

    site = hub.sites.active()[0]
    signer = SiteSigner(hubdir.root, site)
    hub.cfg.api.wall_streams_per_session = max(walls, 4)
    hub.cfg.api.wall_streams = max(walls, 200)
    token = {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
    from_commit, from_arrival, to_shown = [], [], []
    async with serve(hub) as (base, _app, _times), aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(None)) as http:
        streams = [await http.get(base + "/api/events/wall", headers=token) for _ in range(walls)]
        seen: list[list[float]] = [[] for _ in streams]
        shown: list[list[float]] = [[] for _ in streams]
        ready = [asyncio.Event() for _ in streams]

        async def refetch():
            async with http.get(base + "/api/wall", headers=token) as r:
                await r.read()

        readers = [
            asyncio.create_task(_read_events(s, seen[i], shown[i], ready[i], refetch)) for i, s in enumerate(streams)
        ]
        for r in ready:
            await r.wait()
        rng = random.Random(7)
        for _ in range(records):
            acked, prev = hub.reader.execute("SELECT acked_seq, acked_hash FROM sites WHERE code=?", (site,)).fetchone()
            recs, _ = chain(site, 1, start_seq=acked + 1, prev=bytes(prev))
            batch = [(topics.site_batch(site), signer.seal(recs, acked + 1))]
            before = [len(s) for s in shown]
            marks = {}

            def ingest(batch=batch, marks=marks):
                marks["arrival"] = time.monotonic()
                hub.ingest.process_group(batch)
                marks["commit"] = time.monotonic()

            worker = threading.Thread(target=ingest)
            worker.start()
            async with asyncio.timeout(30):
                while any(len(s) <= b for s, b in zip(shown, before)) or worker.is_alive():
                    await asyncio.sleep(0.002)
            last = max(s[b] for s, b in zip(seen, before))
            from_commit.append(1000 * (last - marks["commit"]))
            from_arrival.append(1000 * (last - marks["arrival"]))
            to_shown.append(1000 * (max(s[b] for s, b in zip(shown, before)) - marks["arrival"]))
            await asyncio.sleep(rng.uniform(0.3, 0.6))
        for t in readers:
            t.cancel()
        for s in streams:
            s.close()
    return from_commit, from_arrival, to_shown


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--cases", type=int, default=1_000_000, help="cases in the store (default 1,000,000)")
    ap.add_argument("--sites", type=int, default=200, help="township sites (default 200)")
    ap.add_argument("--runs", type=int, default=3, help="runs; medians are printed (default 3)")
    ap.add_argument("--requests", type=int, default=30, help="requests per route and run (default 30)")
    ap.add_argument("--records", type=int, default=20, help="records ingested per live scenario and run (default 20)")
    ap.add_argument("--walls", default="1,50", help="open walls, one scenario per value (default 1,50)")
    ap.add_argument("--engines", default="sqlite,postgresql", help="sqlite,postgresql (default both)")
    ap.add_argument("--rebuild", action="store_true", help="build the store again")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"cache folder (default {CACHE})")
    a = ap.parse_args(argv)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    walls = [int(w) for w in a.walls.split(",")]
    province.install_signal_handlers()
    log(machine_line())
    log(province.load_line())
    codes = province.site_codes(a.sites)
    a.cache.mkdir(parents=True, exist_ok=True)
    hubdir = province.provision(a.cache / f"hub-{a.sites}", codes)
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(province.cached_postgres(a.cache / "pg")) if "postgresql" in engines else None
        urls = stores(a, hubdir, codes, engines, pg)
        for engine, url in urls.items():
            routes: dict[str, list[tuple[float, float]]] = {}
            live: dict[int, list[tuple[list[float], list[float], list[float]]]] = {}
            for run in range(a.runs):
                hub = province.make_hub(hubdir, url, province.STORE_NOW)
                hub.ingest.publish = lambda *x, **k: None  # no broker: acks go nowhere
                try:
                    for name, p50, p95 in asyncio.run(route_times(hub, a.requests)):
                        routes.setdefault(name, []).append((p50, p95))
                    for n in walls:
                        live.setdefault(n, []).append(asyncio.run(live_times(hub, hubdir, n, a.records)))
                finally:
                    province.close_hub(hub)
                log(f"  {engine}: run {run + 1} of {a.runs} done")
            log(
                f"\n{engine}: server time of the wall's routes, ms (median over {a.runs} runs of {a.requests} requests)"
            )
            for name, vals in routes.items():
                p50 = statistics.median(v[0] for v in vals)
                p95 = statistics.median(v[1] for v in vals)
                log(f"    {name:<58} p50 {p50:>8.1f}   p95 {p95:>8.1f}")
            log(
                f"{engine}: record → event at the last open wall, ms (median over {a.runs} runs of {a.records} records)"
            )
            for n, runs in live.items():
                c50, c95, r50, r95, s50, s95 = (
                    statistics.median(pct(run[k], q) for run in runs) for k in (0, 1, 2) for q in (0.5, 0.95)
                )
                log(
                    f"    {n:>3} wall(s): event from the commit p50 {c50:>5.0f} p95 {c95:>5.0f};"
                    f" from the arrival p50 {r50:>5.0f} p95 {r95:>5.0f};"
                    f" refetched data from the arrival p50 {s50:>5.0f} p95 {s95:>5.0f}"
                )
    log(province.load_line())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
