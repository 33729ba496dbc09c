"""Hub store engines (issue 10): the hub's ingest code on SQLite and on PostgreSQL, each next to
a floor measured in the same run on the same sealed batches.

    .venv/bin/python bench/store_engines.py [--sites 20] [--records 2000] [--runs 3]
                                            [--batch-max N] [--group N] [--profile N] [--keep]

Set-up (once): a provisioned hub directory with --sites sites (tests/e2e/harness.Env, no
broker, no processes), a backlog of --records registrations per site written through
agent.store.AgentStore (bench/backlog.py), and the sealed batches each agent would send
(agent.sync's batching, seal_batch with the site's real keys). A PostgreSQL server of this
benchmark's own (tests/pgserver.PgServer: initdb into a temporary folder, a free 127.0.0.1
port, fsync=off, synchronous_commit=off; never a server the machine already runs) is started
and stopped at the end, also on Ctrl-C or SIGTERM.

Per run, for SQLite (a fresh hub.db through hub.store.open_db: WAL, synchronous=FULL, as the
hub opens it) and then PostgreSQL (a fresh database through open_db, i.e. hub.db.PgConnection):
  1. FLOOR: every batch opened with protocol.wire.open_batch (the same Ed25519 signature check,
     X25519/ChaCha20-Poly1305 decryption and record decoding the Ingestor does), each record's
     hash computed, and the rows inserted with one executemany per batch into `records` of a
     fresh store; the same transactions as the hub (BEGIN IMMEDIATE ... COMMIT per group);
  2. HUB: the same batches through hub.ingest.Ingestor.process_group into another fresh store
     (verify, decrypt, dedupe, chain, store, project cases, counters, acks computed).
Messages are interleaved across sites and grouped as the hub's writer thread groups them when
they are queued: up to hub.ingest.GROUP_MAX messages and about GROUP_BYTES of payload per
transaction (--group N: exactly N messages per transaction instead, as bench/hub_alone.py does).

Prints per engine (medians of --runs): records per wall-second, records per CPU-second of this
process (time.process_time around the work: the hub's CPU), µs of hub CPU per record, and the
ratios hub/floor. For PostgreSQL the server's CPU is NOT in the hub's CPU: it is read from
/proc/PID/stat of the server's processes and printed separately (the backend serving the
store's connection, and the whole server: postmaster, its live children and reaped ones).
--profile N: afterwards, one extra untimed pass of the Ingestor on PostgreSQL under cProfile;
prints its top N functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backlog import backlog_cache, catalog_of, sealed_batches
from bench.cleanup import run_main
from bench.env import agent_sync_settings, bench_env
from bench.figures import machine_line, spread
from bench.observe import CLK_TCK

RECORDS_INSERT = (
    "INSERT INTO records(site, seq, hash, prev, kind, wall_ms, clock, received_ms, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


# -- signals --------------------------------------------------------------------------------------
_signalled: list[int] = []


def _on_signal(signum, frame):
    _signalled.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """Ctrl-C, SIGTERM and SIGHUP unwind through `finally` (which stops the server and removes
    every temporary folder). Python only prints a KeyboardInterrupt raised inside a GC or
    weakref callback; `checkpoint()` raises it again between transactions."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def checkpoint() -> None:
    if _signalled:
        raise KeyboardInterrupt(f"signal {_signalled[0]}")


# -- our own PostgreSQL -----------------------------------------------------------------------------
def _stop_server(server) -> None:
    """Stop the server and remove its folder (idempotent); a 2nd Ctrl-C cannot interrupt it."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server.stop()
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def own_postgres():
    """A PgServer of this benchmark's own, stopped (and its folder removed) on exit, Ctrl-C,
    SIGTERM or error; also at interpreter exit should anything skip the `finally`."""
    from tests.pgserver import PgServer

    server = PgServer()

    def stop() -> None:
        _stop_server(server)

    atexit.register(stop)
    try:
        server.start()
        yield server
    finally:
        stop()
        atexit.unregister(stop)


def drop_db(server, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_cpu(pid: int) -> float:
    """utime + stime of one process, seconds."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / CLK_TCK if f else float("nan")


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the whole server: the postmaster (with its reaped children: cutime, cstime)
    and its live children (backends, walwriter, checkpointer, autovacuum, ...)."""
    f = _stat(postmaster)
    if f is None:
        return float("nan")
    total = sum(int(x) for x in f[11:15])
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            c = _stat(int(entry.name))
            if c is not None and c[1] == str(postmaster):
                total += int(c[11]) + int(c[12])
    return total / CLK_TCK


def postmaster_pid(server) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


# -- the work ---------------------------------------------------------------------------------------
def interleave(batches: dict[str, list[tuple[bytes, int]]]) -> list[tuple[str, str, bytes]]:
    """(site, topic, payload) with the sites interleaved, as hub_alone orders them."""
    from protocol import topics

    queues = [[(code, topics.site_batch(code), p) for p, _ in bs] for code, bs in batches.items()]
    return [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)]


def writer_groups(msgs: list, group: int | None) -> list[list]:
    """Transactions as hub.ingest.Ingestor._run forms them from a full queue: up to GROUP_MAX
    messages, closed once GROUP_BYTES of payload are in (or exactly `group` messages)."""
    from hub.ingest import GROUP_BYTES, GROUP_MAX

    out, cur, size = [], [], 0
    for m in msgs:
        cur.append(m)
        size += len(m[2])
        if (group and len(cur) >= group) or (not group and (len(cur) >= GROUP_MAX or size >= GROUP_BYTES)):
            out.append(cur)
            cur, size = [], 0
    if cur:
        out.append(cur)
    return out


def open_store(url: str):
    from hub.store import open_db

    return open_db(url)


def floor_pass(conn, env, groups) -> tuple[float, float]:
    """Signature check + decryption + decoding (protocol.wire.open_batch, as the Ingestor calls
    it), each record's hash, one executemany per batch into `records`; one transaction per group."""
    from hub.keys import HubKeys, SiteKeys
    from iobase.sqlite import transaction
    from protocol.records import record_hash
    from protocol.wire import open_batch

    seal_key = HubKeys.load(env.hub_cfg).seal_key
    sites = SiteKeys(env.hub_cfg.registry)
    timed = _timed_start()
    for grp in groups:
        checkpoint()
        now_ms = int(time.time() * 1000)
        with transaction(conn):
            for site, _topic, payload in grp:
                _, records = open_batch(payload, site=site, verify_key=sites.verify_key(site), hub_seal_key=seal_key)
                conn.executemany(
                    RECORDS_INSERT,
                    [(site, r.seq, record_hash(e), r.prev, r.kind, r.wall_ms, r.clock, now_ms, e) for r, e in records],
                )
    return timed


def hub_pass(conn, env, groups, profiler=None) -> tuple[float, float]:
    """The same batches through hub.ingest.Ingestor.process_group (acks computed, not sent)."""
    from hub.ingest import Ingestor
    from hub.keys import HubKeys, SiteKeys
    from hub.store import CATALOG_VERSION_UPSERT

    version, payload = catalog_of(env)  # the hub checks each item against the catalog it signed
    conn.execute(CATALOG_VERSION_UPSERT, (version, json.dumps(payload, ensure_ascii=False), 0))
    ing = Ingestor(conn, HubKeys.load(env.hub_cfg), SiteKeys(env.hub_cfg.registry), publish=lambda *a: None)
    batches = [[(topic, p) for _site, topic, p in grp] for grp in groups]
    timed = _timed_start()
    if profiler is not None:
        profiler.enable()
    try:
        for grp in batches:
            checkpoint()
            ing.process_group(grp)
    finally:
        if profiler is not None:
            profiler.disable()
    return timed


def _timed_start() -> tuple[float, float]:
    gc.collect()
    return time.perf_counter(), time.process_time()


def measure(kind: str, url: str, env, groups, want: int, pg=None) -> dict:
    """One pass of `kind` ('floor' or 'hub') into a fresh store at `url`: wall s, hub CPU s and,
    on PostgreSQL, the CPU s of the backend serving the connection and of the whole server."""
    conn = open_store(url)
    try:
        backend = postmaster = None
        if pg is not None:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            postmaster = postmaster_pid(pg)
            b0, s0 = proc_cpu(backend), server_cpu(postmaster)
        t0, c0 = (floor_pass if kind == "floor" else hub_pass)(conn, env, groups)
        t1, c1 = time.perf_counter(), time.process_time()
        r = {"wall": t1 - t0, "cpu": c1 - c0}
        if pg is not None:  # before closing: the backend's time is still its own
            r["backend"] = proc_cpu(backend) - b0
            r["server"] = server_cpu(postmaster) - s0
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        conn.close()
    checkpoint()
    if stored != want:
        raise RuntimeError(f"{kind} stored {stored} of {want} records at {url.split('@')[-1]}")
    return r


def one_run(i: int, env, groups, want: int, pg, workdir: Path) -> dict:
    out = {}
    for engine in ("sqlite", "postgresql"):
        for kind in ("floor", "hub"):
            if engine == "sqlite":
                path = workdir / f"run{i}-{kind}.db"
                r = measure(kind, f"sqlite:{path}", env, groups, want)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            else:
                url = pg.create_db(f"bench_{kind}")
                r = measure(kind, url, env, groups, want, pg=pg)
                drop_db(pg, url)
            out[(engine, kind)] = r
    line = "; ".join(
        f"{e} {k} {want / r['wall']:,.0f} rec/s ({r['cpu']:.2f} s hub CPU"
        + (f", server {r['server']:.2f} s" if "server" in r else "")
        + ")"
        for (e, k), r in out.items()
    )
    print(f"  run {i}: {line}; load {os.getloadavg()[0]:.2f}", flush=True)
    return out


def profile_pass(env, groups, want: int, pg, top: int) -> None:
    """One untimed Ingestor pass on PostgreSQL under cProfile: top functions by cumulative and
    by own time (the benchmark's own frames left out)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    url = pg.create_db("bench_profile")
    conn = open_store(url)
    try:
        hub_pass(conn, env, groups, profiler=prof)
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        conn.close()
        drop_db(pg, url)
    if stored != want:
        raise RuntimeError(f"profile pass stored {stored} of {want} records")
    st = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = sum(v[2] for v in st.values())
    repo = str(Path(__file__).resolve().parent.parent) + os.sep

    def name(k) -> str:
        f, line, fn = k
        f = f.replace(repo, "")
        if "site-packages" in f:
            f = f.split("site-packages" + os.sep, 1)[1]
        return f"{fn} ({f}:{line})" if line else fn

    rows = [(k, v) for k, v in st.items() if not k[0].endswith("store_engines.py")]
    print(f"\ncProfile, one Ingestor pass on PostgreSQL ({want:,} records, {total:.2f} s profiled):")
    for title, idx in (("cumulative", 3), ("own", 2)):
        print(f"  top {top} by {title} time:      calls   own s   cum s")
        for k, v in sorted(rows, key=lambda kv: kv[1][idx], reverse=True)[:top]:
            print(f"    {name(k)[:80]:<80} {v[1]:>9,} {v[2]:7.2f} {v[3]:7.2f}")


def summarize(results: list[dict], want: int) -> None:
    def col(engine, kind, key):
        return [r[(engine, kind)][key] for r in results]

    print(f"\nfigures ({want:,} records per pass; medians of {len(results)} runs, min..max in brackets):")
    for engine, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        print(f"{label}:")
        for kind, what in (("floor", "floor (open_batch + executemany)"), ("hub", "hub (Ingestor.process_group)")):
            wall, cpu = col(engine, kind, "wall"), col(engine, kind, "cpu")
            print(
                f"  {what:<34} records/wall-s {spread([want / w for w in wall])}\n"
                f"  {'':<34} records/hub-CPU-s {spread([want / c for c in cpu])}\n"
                f"  {'':<34} µs of hub CPU per record {spread([1e6 * c / want for c in cpu], '{:,.1f}')}"
            )
            if engine == "postgresql":
                be, sv = col(engine, kind, "backend"), col(engine, kind, "server")
                print(
                    f"  {'':<34} server CPU (not in the hub CPU above), µs per record: backend "
                    f"{spread([1e6 * b / want for b in be], '{:,.1f}')}; whole server "
                    f"{spread([1e6 * s / want for s in sv], '{:,.1f}')}"
                )
        ratio_cpu = [r[(engine, "hub")]["cpu"] / r[(engine, "floor")]["cpu"] for r in results]
        ratio_wall = [r[(engine, "hub")]["wall"] / r[(engine, "floor")]["wall"] for r in results]
        print(
            f"  ratio hub/floor: hub CPU per record {spread(ratio_cpu, '{:.2f}x')}; "
            f"wall time {spread(ratio_wall, '{:.2f}x')}"
        )
        if engine == "postgresql":
            both = [
                (r[(engine, "hub")]["cpu"] + r[(engine, "hub")]["server"]) / r[("sqlite", "hub")]["cpu"]
                for r in results
            ]
            print(f"  hub: (hub + whole server CPU) on PostgreSQL / hub CPU on SQLite {spread(both, '{:.2f}x')}")
    print(
        "hub CPU = time.process_time() of this process around the work; PostgreSQL's server runs in "
        "its own processes, so its CPU is not in it (printed separately, from /proc/PID/stat)."
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--sites", type=int, default=20, help="sites (default 20)")
    ap.add_argument("--records", type=int, default=2000, help="registrations per site (default 2000)")
    ap.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default 3)")
    ap.add_argument("--batch-max", type=int, default=None, help="records per sealed batch (default: agent.yaml's)")
    ap.add_argument(
        "--group",
        type=int,
        default=None,
        help="messages per transaction (default: as the hub's writer thread, GROUP_MAX / GROUP_BYTES)",
    )
    ap.add_argument(
        "--profile", type=int, default=0, metavar="N", help="after the runs: cProfile one Ingestor pass on PostgreSQL"
    )
    ap.add_argument("--keep", action="store_true", help="keep the provisioned hub directory")
    a = ap.parse_args(argv)
    install_signal_handlers()
    from tests.pgserver import PgUnavailable

    print(machine_line(), flush=True)
    print(f"store engines: {a.sites} sites x {a.records:,} registrations, {a.runs} runs", flush=True)
    codes = [f"S{k + 1:02d}" for k in range(a.sites)]
    want = a.sites * a.records
    workdir = Path(tempfile.mkdtemp(prefix="jiancha-bench-engines-"))
    try:
        with bench_env(codes, keep=a.keep) as env:
            t = time.perf_counter()
            batch_max = a.batch_max or agent_sync_settings(env, codes[0])["batch_max_records"]
            catalog = catalog_of(env)
            batches = {}
            for c in codes:
                batches[c] = sealed_batches(env, c, backlog_cache(workdir, c, a.records, catalog), batch_max)
            msgs = interleave(batches)
            groups = writer_groups(msgs, a.group)
            size = sum(len(m[2]) for m in msgs)
            print(
                f"  set-up {time.perf_counter() - t:.0f} s: {len(msgs)} sealed batches of {want / len(msgs):.0f} "
                f"records ({size / len(msgs) / 1024:.0f} KiB, {size / want:.0f} B/record), "
                f"{len(groups)} transactions of {len(msgs) / len(groups):.1f} messages",
                flush=True,
            )
            with contextlib.ExitStack() as stack:
                try:
                    pg = stack.enter_context(own_postgres())
                except PgUnavailable as exc:
                    print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
                    return 2
                print(f"  PostgreSQL {pg.bindir.parent.name} of our own on 127.0.0.1:{pg.port} ({pg.root})", flush=True)
                results = [one_run(i, env, groups, want, pg, workdir) for i in range(1, a.runs + 1)]
                summarize(results, want)
                load = os.getloadavg()
                print(f"load average at the end {load[0]:.2f} / {load[1]:.2f} (1 / 5 min)", flush=True)
                if a.profile:
                    profile_pass(env, groups, want, pg, a.profile)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
