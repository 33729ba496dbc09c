"""Several hub workers (`jiancha hub run --workers N`) on one PostgreSQL store: scaling and a kill.

Two scenarios (issue 10):

* `scaling` -- 2,000 simulated sites (default) each send a backlog of sealed, signed batches
  through a real Mosquitto (mTLS, QoS 1) to: one hub on SQLite (the baseline), and 1, 2 and 4
  workers on PostgreSQL. Printed per configuration: seconds from the first publish to every
  site's chain acknowledged in the store, records per second, the hub's CPU (the hub process,
  or the supervisor and its workers) and the PostgreSQL server's CPU per record, and the ratio
  to the SQLite hub measured in the same run. The sites are simulated as the far side of the
  network: one publisher connects as the broker tool's identity (whose ACL may publish on every
  site's up-topics) and publishes exactly what each site's agent would send -- batches sealed to
  the hub and signed with that site's own key, registered in registry.yaml. Records are built
  as tests/craft.py builds them (case registrations with their hash chain); batches are made
  before the clock starts.
* `kill` -- the end-to-end test tests/e2e/test_workers.py at full size: 50 real agents draining
  4,000-record backlogs (200,000 records) into 3 workers, one worker killed -9 when 30 % is
  acknowledged; prints the time to complete and checks every chain and record.

    .venv/bin/python bench/workers.py --scenario scaling [--sites 2000] [--records 100] [--runs 3]
    .venv/bin/python bench/workers.py --scenario kill [--sites 50] [--records 4000]

The machine has 2 cores: the broker, the publisher, PostgreSQL and the workers share them, so
more than 2 workers cannot run in parallel here; the figures say how much the store and the
locks cost, not how far a many-core server scales.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cleanup import install_signal_handlers, run_main
from bench.figures import machine_line, median, spread
from bench.store_engines import drop_db, own_postgres, postmaster_pid, server_cpu


def make_sites(root: Path, n: int) -> dict[str, object]:
    """Register `n` sites (S0001…) in registry.yaml with fresh signing keys; {code: sign key}.
    (provision add-site would also issue each a certificate; the simulated sites need none.)"""
    from cryptography.hazmat.primitives import serialization

    from hub.config import Registry, RegistrySite
    from iobase.config import dump_config
    from protocol.crypto import generate_ed25519
    from provisioning.brokerconf import write_acl

    keys, sites = {}, []
    for i in range(1, n + 1):
        code = f"S{i:04d}"
        key = generate_ed25519()
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        keys[code] = key
        sites.append(RegistrySite(code=code, name=f"{code}便民服务中心", sign_pub=pub.decode("ascii")))
    registry = Registry(sites=sites)
    dump_config(registry, root / "registry.yaml")
    write_acl(root, registry)
    return keys


def sealed(root: Path, keys: dict, per_site: int, batch: int) -> list[tuple[str, bytes]]:
    """(topic, payload) of every site's batches, sites interleaved (as many boxes send)."""
    from protocol import topics
    from protocol.calendar import CST
    from protocol.crypto import load_public_pem
    from protocol.wire import seal_batch
    from tests.craft import chain, registration

    hub_seal = load_public_pem((root / "hub" / "seal.pub").read_bytes(), "x25519")
    now = datetime.now(CST)  # received today: green cases (a backlog of late ones would time the
    per = {}  # supervision of 200,000 red cards and their documents, not ingest)
    for code, key in keys.items():
        recs, _ = chain(code, per_site, body=lambda seq, code=code: registration(code, seq, received=now))
        per[code] = [
            (
                topics.site_batch(code),
                seal_batch(
                    code,
                    recs[i : i + batch],
                    sign_key=key,
                    hub_seal_pub=hub_seal,
                    sent_ms=int(time.time() * 1000),
                    first_seq=i + 1,
                ),
            )
            for i in range(0, per_site, batch)
        ]
    out = []
    for i in range(max(len(v) for v in per.values())):
        out += [v[i] for v in per.values() if i < len(v)]
    return out


def publisher(root: Path, port: int):
    """A paho client as the broker tool's identity (may publish on every site's up-topics)."""
    from iobase.mqtt import make_tls_client
    from provisioning.brokerconf import BrokerLayout

    layout = BrokerLayout(root)
    c = make_tls_client("jc-broker-tool", layout.ca_crt, layout.tool_crt, layout.tool_key, clean_session=True)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def acked_sum(url: str) -> int:
    from hub.db import connect

    conn = connect(url, readonly=True)
    try:
        return int(conn.execute("SELECT coalesce(sum(acked_seq), 0) FROM sites").fetchone()[0])
    finally:
        conn.close()


def one_config(tmp: Path, pg, label: str, workers: int, args, run: int) -> dict:
    from provisioning.setup import add_hub_workers
    from tests.e2e.harness import Env, Proc, wait_for
    from tests.e2e.test_workers import ready_workers

    url = pg.create_db(f"w{workers}r{run}") if pg is not None else None
    env = Env(tmp / f"{label}-{run}", sites=(), store_url=url)
    try:
        keys = make_sites(env.root, args.sites)
        if workers:
            add_hub_workers(env.root, count=workers)
        env.configure_hub(supervision={"sweep_interval_s": 30.0})
        msgs = sealed(env.root, keys, args.records, args.batch)
        total = args.sites * args.records
        store = url or f"sqlite:{env.root / 'data' / 'hub.db'}"
        env.start_broker()
        cmd = ["hub", "run", "--config", str(env.root / "hub.yaml")] + (["--workers", str(workers)] if workers else [])
        env.hub = Proc(cmd, env.root / "logs" / "hub.log", f"{env.hub_url}/api/health").start()
        if workers:
            wait_for(lambda: len(ready_workers(env.hub.log)) == workers, 60, what="workers ready")
        time.sleep(1.0)  # connected, subscribed
        pub = publisher(env.root, env.broker_port)
        hub_pid = env.hub.p.pid
        pm = postmaster_pid(pg) if pg is not None else None
        cpu0 = server_cpu(hub_pid)
        pg0 = server_cpu(pm) if pm else 0.0
        t0 = time.perf_counter()
        for topic, payload in msgs:
            pub.publish(topic, payload, qos=1)
        wait_for(lambda: acked_sum(store) >= total, args.timeout, 0.2, what=f"{label}: {total:,} records acked")
        wall = time.perf_counter() - t0
        cpu = server_cpu(hub_pid) - cpu0
        pgcpu = (server_cpu(pm) - pg0) if pm else 0.0
        pub.disconnect()
        pub.loop_stop()
        return {
            "label": label,
            "wall": wall,
            "rate": total / wall,
            "hub_us": cpu / total * 1e6,
            "pg_us": pgcpu / total * 1e6,
        }
    finally:
        env.close()
        import subprocess

        for _ in range(300):  # the supervisor is gone; wait for its workers too
            if not subprocess.run(["pgrep", "-f", str(env.root / "hub.yaml")], capture_output=True).stdout:
                break
            time.sleep(0.1)
        else:
            print(f"  (workers of {label} still running 30 s after the supervisor stopped)", flush=True)
        if url is not None:
            _drop(pg, url)


def _drop(pg, url: str) -> None:
    """Drop a run's database once the stopped workers' sessions are gone (they close as the
    processes exit, which may lag the supervisor's own exit a little on a loaded machine)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    for _ in range(600):
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]
            if not busy:
                break
            if _ == 300:  # 30 s: whoever it is, end it
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        time.sleep(0.1)
    drop_db(pg, url)


def scaling(args) -> int:
    print(machine_line())
    total = args.sites * args.records
    print(
        f"{args.sites:,} simulated sites × {args.records} records = {total:,} records in batches of {args.batch}, "
        f"{args.runs} run(s); configurations interleaved in each run"
    )
    configs = [("sqlite ×1", 0, False)] + [(f"postgresql ×{n}", n, True) for n in args.workers]
    results: dict[str, list[dict]] = {c[0]: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="jc-bench-workers-") as d, own_postgres() as pg:
        for run in range(args.runs):
            for label, n, on_pg in configs:
                r = one_config(Path(d), pg if on_pg else None, label.replace(" ", "").replace("×", "x"), n, args, run)
                results[label].append(r)
                print(
                    f"  run {run + 1} {label:16s} {r['wall']:6.1f} s  {r['rate']:8,.0f} rec/s  "
                    f"hub {r['hub_us']:6.1f} µs/rec  PostgreSQL {r['pg_us']:6.1f} µs/rec",
                    flush=True,
                )
    base = median([r["rate"] for r in results["sqlite ×1"]])
    print("\nmedians (spread):")
    print(f"  {'configuration':16s} {'rec/s':>30s} {'vs SQLite':>9s} {'hub µs/rec':>11s} {'PG µs/rec':>10s}")
    for label, rs in results.items():
        rate = median([r["rate"] for r in rs])
        print(
            f"  {label:16s} {spread([r['rate'] for r in rs]):>30s} {rate / base:>8.2f}× "
            f"{median([r['hub_us'] for r in rs]):>11.1f} {median([r['pg_us'] for r in rs]):>10.1f}"
        )
    return 0


def kill(args) -> int:
    from tests.e2e import test_workers as tw

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="jc-bench-kill-") as d, own_postgres() as pg:
        t = time.perf_counter()
        env = tw.make_env(Path(d), pg.create_db("kill"), sites=args.sites, per_site=args.records)
        print(f"set up {args.sites} sites × {args.records:,} records in {time.perf_counter() - t:.0f} s", flush=True)
        try:
            fig = tw.kill_burst(env, args.records, workers=3, timeout=args.timeout)
            tw.check_every_chain(env, args.records)
        finally:
            env.close()
    print(json.dumps({k: v for k, v in fig.items() if k != "restarted"}))
    print(
        f"{fig['records']:,} records from {args.sites} agents into 3 workers; {fig['victim']} killed -9 at "
        f"{fig['acked_at_kill']:,} acked; every chain complete after {fig['seconds']:.1f} s "
        f"({fig['records'] / fig['seconds']:,.0f} rec/s overall); each record and case stored once"
    )
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=["scaling", "kill"], default="scaling")
    ap.add_argument("--sites", type=int, default=None, help="scaling: 2000; kill: 50")
    ap.add_argument("--records", type=int, default=None, help="per site; scaling: 100; kill: 4000")
    ap.add_argument("--batch", type=int, default=50, help="records per batch (scaling)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts on PostgreSQL")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)
    install_signal_handlers()
    if args.scenario == "kill":
        args.sites, args.records = args.sites or 50, args.records or 4000
        return kill(args)
    args.sites, args.records = args.sites or 2000, args.records or 100
    return scaling(args)


if __name__ == "__main__":
    run_main(main)
