"""Backlog drain: 50,000 records waiting at one site, from reconnect to fully acknowledged.

    .venv/bin/python bench/drain.py [--records 50000] [--runs 3] [--scenario both|agent-start|broker-back]
                                    [--batch-max N] [--inflight N] [--rate N] [--keep]

Each run uses a fresh provisioned hub directory, Mosquitto on a free 127.0.0.1 port, a running
hub and one site whose agent.db holds --records registrations nobody has seen yet.

  agent-start   broker and hub run; the agent process starts (t0 = just before its exec)
  broker-back   hub and agent run while the broker is down (they retry with paho's back-off,
                1 s doubling up to 30 s); t0 = the restarted broker accepts TLS clients

Times (median of runs): t0 -> hub has acked everything (hub.db sites.acked_seq, polled every
20 ms), t0 -> the agent's /api/health shows acked_seq == last_seq, and the pure drain from the
first record stored at the hub to hub-acked. Target: <= 15 s from reconnect to fully acked.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backlog import backlog_cache, catalog_of, install_backlog
from bench.cleanup import install_signal_handlers, run_main
from bench.env import add_agent_options, agent_sync_settings, bench_env, set_agent_devices, set_agent_sync, start_agents
from bench.figures import machine_line, median, spread
from bench.observe import CpuSampler, HubDB, env_pids, wait_agent_acked, wait_hub_acked
from tests.e2e.harness import wait_for

SITE = "S01"


def one_run(scenario: str, i: int, a, workdir: Path) -> dict:
    with bench_env([SITE], keep=a.keep) as env:
        set_agent_sync(env, SITE, batch_max_records=a.batch_max, max_inflight_records=a.inflight, rate_per_s=a.rate)
        sync = agent_sync_settings(env, SITE)
        sync["devices"] = set_agent_devices(env, SITE, a.devices)
        install_backlog(env, SITE, backlog_cache(workdir, SITE, a.records, catalog_of(env)))
        env.start_broker()
        env.start_hub()
        db = HubDB(env)
        try:
            if scenario == "agent-start":
                t0 = time.time()
                start_agents(env, [SITE], wait=False)
            else:
                env.broker.stop()
                start_agents(env, [SITE], wait=True)  # up, offline, retrying
                wait_for(lambda: not env.agent_health(SITE)["connected"], 10, what="agent offline")
                env.broker.start()  # returns once it accepts a TLS client
                t0 = time.time()
            sampler = CpuSampler(env_pids(env))
            t_hub = wait_hub_acked(db, a.records, timeout=a.timeout, sampler=sampler)
            t_agent = wait_agent_acked(env, SITE, timeout=a.timeout)
            first_ms, _ = db.received_span_ms()
            counters = db.counters()
        finally:
            db.close()
        h = env.agent_health(SITE)
        t_first = first_ms / 1000.0
        r = {
            "hub": t_hub - t0,
            "agent": t_agent - t0,
            "first": t_first - t0,
            "drain": t_hub - t_first,
            "cpu": sampler.between(t_first, t_hub),
            "sync": sync,
            "rewinds": h["rewinds"],
            "dup": counters.get("records_duplicate", 0),
            "resend": counters.get("resend_requests", 0),
        }
        cpu = ", ".join(f"{k} {v:.1f} s" for k, v in r["cpu"].items())
        print(
            f"  {scenario} run {i}: hub acked all {r['hub']:.2f} s, "
            f"agent saw it {r['agent']:.2f} s after t0 "
            f"| first record stored {r['first']:.2f} s after t0, drain {r['drain']:.2f} s "
            f"({a.records / r['drain']:,.0f} rec/s) | CPU in drain: {cpu} | duplicates {r['dup']}, "
            f"resend requests {r['resend']}, rewinds {r['rewinds']}",
            flush=True,
        )
        return r


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--records", type=int, default=50000, help="backlog records (default 50000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario; median reported (default 3)")
    ap.add_argument("--scenario", choices=("both", "agent-start", "broker-back"), default="both")
    add_agent_options(ap)
    ap.add_argument("--timeout", type=float, default=180.0, help="per-run limit, seconds")
    a = ap.parse_args(argv)
    install_signal_handlers()
    scenarios = ("agent-start", "broker-back") if a.scenario == "both" else (a.scenario,)
    print(machine_line(), flush=True)
    print(f"drain: {a.records:,} backlog records at one site, {a.runs} runs per scenario", flush=True)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="jiancha-bench-backlog-") as workdir:
        for s in scenarios:
            results[s] = [one_run(s, i, a, Path(workdir)) for i in range(1, a.runs + 1)]
    sync = next(iter(results.values()))[0]["sync"]
    print(
        f"\nagent sync: batch_max_records={sync['batch_max_records']} "
        f"max_inflight_records={sync['max_inflight_records']} rate_per_s={sync['rate_per_s']:g}; "
        f"devices.mode={sync['devices']}"
    )
    fmt = "{:.2f} s"
    for s, rs in results.items():
        t0 = "agent process start" if s == "agent-start" else "broker accepting again"
        print(f"{s}: from {t0}")
        print(f"  to hub acked all (median):        {spread([r['hub'] for r in rs], fmt)}")
        print(f"  to agent sees all acked (median): {spread([r['agent'] for r in rs], fmt)}")
        print(f"  to first record stored (median): {spread([r['first'] for r in rs], fmt)}")
        print(
            f"  drain first stored -> acked:      {spread([r['drain'] for r in rs], fmt)} = "
            f"{a.records / median([r['drain'] for r in rs]):,.0f} rec/s"
        )
        print(f"  records per CPU-second of the hub in the drain: {spread([a.records / r['cpu']['hub'] for r in rs])}")
        full = median([r["agent"] for r in rs])
        print(
            f"  target <= 15 s to fully acked: {'met' if full <= 15 else 'NOT met'} "
            f"(median {full:.2f} s to the agent seeing its last ack)"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
