"""Ingest throughput: records/s from agents' SQLite logs through Mosquitto (mutual TLS, QoS 1,
sealed + signed batches) into the hub's SQLite, next to a raw paho baseline on the same broker.

    .venv/bin/python bench/ingest.py [--sites 2] [--records 20000] [--runs 3]
                                     [--batch-max N] [--inflight N] [--rate N] [--raw-reps 5]
                                     [--alone-groups 8,16] [--py-spy PATH] [--keep]

Each run uses a fresh provisioned hub directory (tests/e2e/harness.Env) and a fresh
Mosquitto on a free 127.0.0.1 port:
  1. every site's agent.db gets a backlog of --records registrations (written once through
     agent.store.AgentStore, copied per run);
  2. RAW baseline: one paho publisher process per site (site certificate, QoS 1, the agent's
     client settings) publishes random payloads of exactly the sealed batch sizes the agents
     will send, as many messages; one paho subscriber (hub certificate, ALL_BATCHES) counts
     them. Time from "go" to the last message received; median of --raw-reps;
  3. HUB CODE ALONE: the same sealed batches through hub.ingest.Ingestor.process_group in this
     process (no MQTT, no agents), GROUP_MAX messages per transaction, with the cyclic GC's
     share (--alone-groups N adds runs with N messages per transaction, a diagnostic);
  4. the agents start (hub offline: nothing drains), then the hub starts; everything drains.
     Time from the first record stored at the hub (min records.received_ms) to the moment the
     hub's acked seqs add up to all records (polled from hub.db every 20 ms).
Prints records/s (median of runs), the raw records/s-equivalent (same messages carry the same
records), their ratio, the hub-code-alone rate, records per CPU-second of the hub process and
the CPU share of each process in the timed window. --py-spy profiles the hub in run 1.
Targets: >= 10,000 records/s and >= 50 % of raw.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backlog import backlog_cache, catalog_of, install_backlog, sealed_batches
from bench.cleanup import install_signal_handlers, run_main
from bench.env import add_agent_options, agent_sync_settings, bench_env, set_agent_devices, set_agent_sync, start_agents
from bench.figures import machine_line, median, spread
from bench.hub_alone import hub_alone
from bench.observe import CpuSampler, HubDB, env_pids, wait_agent_acked, wait_hub_acked
from bench.profiling import pyspy_start, pyspy_stop, pyspy_summary
from bench.rawmqtt import raw_baseline
from tests.e2e.harness import Proc


def one_run(i: int, a, workdir: Path) -> dict:
    codes = [f"S{k + 1:02d}" for k in range(a.sites)]
    with bench_env(codes, keep=a.keep) as env:
        for code in codes:
            set_agent_sync(env, code, batch_max_records=a.batch_max, max_inflight_records=a.inflight, rate_per_s=a.rate)
            devices = set_agent_devices(env, code, a.devices)
        sync = agent_sync_settings(env, codes[0])
        sync["devices"] = devices
        catalog = catalog_of(env)
        templates = {c: backlog_cache(workdir, c, a.records, catalog) for c in codes}
        for code in codes:
            install_backlog(env, code, templates[code])
        batches = {c: sealed_batches(env, c, templates[c], sync["batch_max_records"]) for c in codes}
        sizes = [len(p) for bs in batches.values() for p, _ in bs]
        total = a.sites * a.records
        if i == 1:
            print(
                f"  sealed batches: {len(sizes)} messages of {total / len(sizes):.0f} records and "
                f"{sum(sizes) / len(sizes) / 1024:.0f} KiB on average ({sum(sizes) / total:.0f} B/record)",
                flush=True,
            )
        env.start_broker()

        # raw baseline (hub not connected yet), and the hub's ingest code alone without MQTT
        raw_times = raw_baseline(env, {c: [len(p) for p, _ in bs] for c, bs in batches.items()}, reps=a.raw_reps)
        raw_s = median(raw_times)
        alone_s, alone_gc = hub_alone(env, batches)
        variants = {g: hub_alone(env, batches, group=g, tag=f"-{g}") for g in a.alone_groups}
        del batches

        # agents first (hub offline -> they wait), then the hub: every site drains at once
        start_agents(env, codes)
        db = HubDB(env)
        spy = None
        try:
            hub = Proc(
                ["hub", "run", "--config", str(env.root / "hub.yaml")],
                env.root / "logs" / "hub.log",
                f"{env.hub_url}/api/health",
            )
            env.hub = hub.start(wait=False)
            if a.py_spy and i == 1:
                spy = pyspy_start(a.py_spy, hub.p.pid, Path(workdir) / "hub.pyspy")
            sampler = CpuSampler(env_pids(env))
            t_hub = time.time()
            t_end = wait_hub_acked(db, total, timeout=a.timeout, sampler=sampler)
            if spy:
                pyspy_stop(spy)
            first_ms, _ = db.received_span_ms()
            t_first = first_ms / 1000.0
            t_agents = max(wait_agent_acked(env, c) for c in codes)
            counters = db.counters()
        finally:
            if spy:
                pyspy_stop(spy)
            db.close()
        health = {c: env.agent_health(c) for c in codes}
        elapsed = t_end - t_first
        cpu = sampler.between(t_first, t_end)
        r = {
            "rate": total / elapsed,
            "elapsed": elapsed,
            "raw_rate": total / raw_s,
            "raw_s": raw_s,
            "raw_msgs": len(sizes) / raw_s,
            "alone_rate": total / alone_s,
            "alone_gc2": alone_gc[2][1] / alone_s,
            "variants": {g: (total / s_, gc_[2][1] / s_) for g, (s_, gc_) in variants.items()},
            "hub_to_first": t_first - t_hub,
            "agents_acked_after": t_agents - t_end,
            "cpu": cpu,
            "dup": counters.get("records_duplicate", 0),
            "resend": counters.get("resend_requests", 0),
            "rewinds": sum(h["rewinds"] for h in health.values()),
            "acks": sum(h["acks"] for h in health.values()),
            "sync": sync,
        }
        cpu_txt = ", ".join(f"{k} {v:.1f} s ({100 * v / elapsed:.0f} %)" for k, v in cpu.items())
        print(
            f"  run {i}: {r['rate']:,.0f} rec/s ({total:,} records in {elapsed:.2f} s from the first "
            f"stored to all acked; agents had the last ack {r['agents_acked_after']:.2f} s later)\n"
            f"         raw {r['raw_rate']:,.0f} rec/s-equiv ({r['raw_msgs']:,.0f} msg/s; "
            f"{', '.join(f'{t * 1000:.0f}' for t in raw_times)} ms) "
            f"-> ratio {r['rate'] / r['raw_rate']:.1%}\n"
            f"         hub code alone, no MQTT: {r['alone_rate']:,.0f} rec/s "
            f"-> ratio {r['rate'] / r['alone_rate']:.0%}"
            f" (full GC {alone_gc[2][0]}x, {r['alone_gc2']:.0%} of its time)"
            + "".join(
                f"; {g} msgs/transaction: {v[0]:,.0f} rec/s (full GC {v[1]:.0%})" for g, v in r["variants"].items()
            )
            + "\n"
            f"         CPU in window: {cpu_txt}; acks {r['acks']}, duplicates {r['dup']}, "
            f"resend requests {r['resend']}, agent rewinds {r['rewinds']}",
            flush=True,
        )
        if spy:
            print(pyspy_summary(Path(workdir) / "hub.pyspy", "process_group"), flush=True)
        return r


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--sites", type=int, default=2, help="agents draining at once (default 2)")
    ap.add_argument("--records", type=int, default=20000, help="backlog records per site (default 20000)")
    ap.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    add_agent_options(ap)
    ap.add_argument("--timeout", type=float, default=180.0, help="per-run limit, seconds")
    ap.add_argument(
        "--raw-reps", type=int, default=5, help="raw baseline repetitions per run (median taken; default 5)"
    )
    ap.add_argument(
        "--alone-groups",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        metavar="N,N",
        help="diagnostic: also run the in-process hub code with N messages "
        "per transaction instead of hub.ingest.GROUP_MAX",
    )
    ap.add_argument(
        "--py-spy",
        metavar="PATH",
        default=None,
        help="py-spy binary: profile the hub during run 1 and print where its time goes",
    )
    a = ap.parse_args(argv)
    install_signal_handlers()
    print(machine_line(), flush=True)
    print(f"ingest: {a.sites} sites x {a.records:,} registrations, {a.runs} runs", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="jiancha-bench-backlog-") as workdir:
        for i in range(1, a.runs + 1):
            results.append(one_run(i, a, Path(workdir)))
    sync = results[0]["sync"]
    total_records = a.sites * a.records
    rate = median([r["rate"] for r in results])
    raw = median([r["raw_rate"] for r in results])
    ratios = [r["rate"] / r["raw_rate"] for r in results]
    print(
        f"\nagent sync: batch_max_records={sync['batch_max_records']} "
        f"max_inflight_records={sync['max_inflight_records']} rate_per_s={sync['rate_per_s']:g}; "
        f"devices.mode={sync['devices']}"
    )
    print(f"ingest records/s (median):            {spread([r['rate'] for r in results])}")
    print(f"raw paho records/s-equivalent (median): {spread([r['raw_rate'] for r in results])}")
    print(f"ratio ingest/raw (median of per-run ratios): {median(ratios):.1%} (ratio of medians {rate / raw:.1%})")
    print(
        f"hub ingest code alone, in-process, no MQTT (median): {spread([r['alone_rate'] for r in results])}"
        f" -> end-to-end reaches {median([r['rate'] / r['alone_rate'] for r in results]):.0%} of it; "
        f"full GC takes {median([r['alone_gc2'] for r in results]):.0%} of the hub code's time"
    )
    for g in a.alone_groups:
        print(f"  with {g} messages per transaction (median): {spread([r['variants'][g][0] for r in results])}")
    print(
        f"records per CPU-second of the hub process (median; less sensitive to other load on the "
        f"machine): {spread([total_records / r['cpu']['hub'] for r in results])}"
    )
    cpu = {k: median([r["cpu"][k] / r["elapsed"] for r in results]) for k in results[0]["cpu"]}
    print(
        "CPU use in the timed window (median, 100 % = one core): " + ", ".join(f"{k} {v:.0%}" for k, v in cpu.items())
    )
    print(
        f"target >= 10,000 records/s: {'met' if rate >= 10_000 else 'NOT met'}; "
        f"target >= 50 % of raw: {'met' if median(ratios) >= 0.5 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    run_main(main)
