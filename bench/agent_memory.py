"""Agent resident memory (VmRSS from /proc/PID/status) when idle, empty log vs 100,000 records.

    .venv/bin/python bench/agent_memory.py [--records 100000] [--runs 3] [--settle 3] [--keep]

Each run uses a fresh provisioned hub directory and Mosquitto on a free 127.0.0.1 port, and
two sites: S01 with an empty log, S02 with --records registrations in its agent.db.
  1. unsynced: broker up, hub not running: the S02 agent starts, connects, sees no hub and
     stays idle with all --records records unsent; RSS after --settle seconds. Then it stops.
  2. the hub starts; agents S01 (empty log: the baseline) and S02 (same 100,000 records) start;
     S02 drains everything. Once the agent's /api/health shows acked_seq == last_seq, both are
     left idle for --settle seconds and their RSS is read (S02: synced). VmHWM of S02 is its
     peak while draining.
Prints medians over runs. Target: <= 80 MB (synced and unsynced, 100,000 records).
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
from bench.observe import cpu_seconds, proc_status, wait_agent_acked
from tests.e2e.harness import wait_for

EMPTY, FULL, BARE = "S01", "S02", "S03"  # S03: empty log and devices.mode off


def idle_status(pid: int, settle: float) -> dict[str, int]:
    """/proc status after `settle` seconds, VmRSS as the median of 5 samples over a second."""
    time.sleep(settle)
    samples = []
    for _ in range(5):
        samples.append(proc_status(pid))
        time.sleep(0.25)
    out = dict(samples[-1])
    out["VmRSS"] = int(median([s["VmRSS"] for s in samples]))
    return out


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def one_run(i: int, a, workdir: Path) -> dict:
    with bench_env([EMPTY, FULL, BARE], keep=a.keep) as env:
        for code in (EMPTY, FULL, BARE):
            set_agent_sync(env, code, batch_max_records=a.batch_max, max_inflight_records=a.inflight, rate_per_s=a.rate)
            set_agent_devices(env, code, "off" if code == BARE else a.devices)
        sync = agent_sync_settings(env, FULL)
        sync["devices"] = set_agent_devices(env, FULL, None)
        install_backlog(env, FULL, backlog_cache(workdir, FULL, a.records, catalog_of(env)))
        env.start_broker()
        # 1. unsynced: no hub online, so the agent holds its whole backlog and idles
        p = start_agents(env, [FULL])[FULL]
        wait_for(lambda: env.agent_health(FULL)["connected"], 20, what="agent connected")
        unsynced = idle_status(p.p.pid, a.settle)
        h = env.agent_health(FULL)
        if h["acked_seq"] != 0 or h["records_sent"] != 0:
            raise RuntimeError(f"the agent was meant to stay unsynced: {h}")
        p.stop()
        # 2. hub up: baseline agent with an empty log, and the same 100,000 records synced
        env.start_hub()
        procs = start_agents(env, [EMPTY, FULL, BARE])
        t0 = time.time()
        wait_agent_acked(env, FULL, timeout=a.timeout)
        drain_s = time.time() - t0
        wait_for(lambda: env.agent_health(EMPTY)["catalog_version"] > 0, 20, what="catalog at S01")
        empty = idle_status(procs[EMPTY].p.pid, 0)
        bare = idle_status(procs[BARE].p.pid, 0)
        cpu0 = cpu_seconds(procs[FULL].p.pid)
        synced = idle_status(procs[FULL].p.pid, a.settle)
        idle_cpu = (cpu_seconds(procs[FULL].p.pid) - cpu0) / (a.settle + 1.25)
        h = env.agent_health(FULL)
        r = {
            "empty": empty,
            "bare": bare,
            "unsynced": unsynced,
            "synced": synced,
            "sync": sync,
            "drain_s": drain_s,
            "last_seq": h["last_seq"],
            "idle_cpu": idle_cpu,
        }
        print(
            f"  run {i}: empty log {mb(empty['VmRSS'])} | {a.records:,} records unsynced "
            f"{mb(unsynced['VmRSS'])} | synced {mb(synced['VmRSS'])} (peak while draining "
            f"{mb(synced['VmHWM'])}, drained in {drain_s:.1f} s incl. start) | RssAnon/RssFile "
            f"synced {mb(synced['RssAnon'])}/{mb(synced['RssFile'])}, threads {synced['Threads']}, "
            f"idle CPU {idle_cpu:.0%} of a core | empty log with devices off {mb(bare['VmRSS'])}",
            flush=True,
        )
        return r


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--records", type=int, default=100000, help="records in the log (default 100000)")
    ap.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    ap.add_argument("--settle", type=float, default=3.0, help="idle seconds before reading RSS")
    add_agent_options(ap)
    ap.add_argument("--timeout", type=float, default=180.0, help="drain limit per run, seconds")
    a = ap.parse_args(argv)
    install_signal_handlers()
    print(machine_line(), flush=True)
    print(f"agent memory: empty log vs {a.records:,} records, {a.runs} runs", flush=True)
    with tempfile.TemporaryDirectory(prefix="jiancha-bench-backlog-") as workdir:
        rs = [one_run(i, a, Path(workdir)) for i in range(1, a.runs + 1)]
    sync = rs[0]["sync"]
    fmt = "{:.1f} MB"
    mbs = lambda key, field="VmRSS": [r[key][field] / 1024 for r in rs]
    print(
        f"\nagent sync: batch_max_records={sync['batch_max_records']} "
        f"max_inflight_records={sync['max_inflight_records']} rate_per_s={sync['rate_per_s']:g}; "
        f"devices.mode={sync['devices']} (S03: off)"
    )
    print(f"idle agent, empty log (baseline) VmRSS:        {spread(mbs('empty'), fmt)}")
    print(f"  same with devices.mode off:                  {spread(mbs('bare'), fmt)}")
    print(f"idle agent, {a.records:,} records unsynced VmRSS: {spread(mbs('unsynced'), fmt)}")
    print(f"idle agent, {a.records:,} records synced VmRSS:   {spread(mbs('synced'), fmt)}")
    print(f"  peak VmHWM of that agent while draining:     {spread(mbs('synced', 'VmHWM'), fmt)}")
    print(
        f"  its CPU while idle after the drain:           "
        f"{spread([100 * r['idle_cpu'] for r in rs], '{:.0f} %')} of a core"
    )
    worst = max(median(mbs("unsynced")), median(mbs("synced")))
    print(
        f"target <= 80 MB idle with {a.records:,} records: {'met' if worst <= 80 else 'NOT met'} "
        f"(larger median {worst:.1f} MB; baseline {median(mbs('empty')):.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    run_main(main)
