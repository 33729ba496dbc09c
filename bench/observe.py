"""Watching the running processes: the hub's database, the agents' health, CPU and memory.

* `HubDB`             read-only polling of the hub database (acked seqs, counters, received_ms)
* `wait_hub_acked`, `wait_agent_acked`  until every record is acked, as each side sees it
* `CpuSampler`        CPU seconds per process from /proc, to say where the cores went
* `cpu_seconds`, `proc_status`, `env_pids`  /proc/PID/stat and status, the pids of an Env
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from tests.e2e.harness import Env, wait_for


# -- hub database ------------------------------------------------------------------------------------
class HubDB:
    """Read-only view of the running hub's SQLite (WAL readers do not block its writer)."""

    def __init__(self, env: Env):
        self.conn = sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True, timeout=10)

    def acked(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT code, acked_seq FROM sites").fetchall())

    def acked_total(self) -> int:
        return self.conn.execute("SELECT coalesce(sum(acked_seq), 0) FROM sites").fetchone()[0]

    def received_span_ms(self) -> tuple[int | None, int | None]:
        """min/max received_ms of stored records (the hub's clock at each group)."""
        return self.conn.execute("SELECT min(received_ms), max(received_ms) FROM records").fetchone()

    def counters(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT name, value FROM counters").fetchall())

    def close(self) -> None:
        self.conn.close()


def wait_hub_acked(
    db: HubDB, total: int, timeout: float, interval: float = 0.02, sampler: CpuSampler | None = None
) -> float:
    """Poll until the hub's acked seqs add up to `total`; returns time.time() at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sampler:
            sampler.sample()
        if db.acked_total() >= total:
            t = time.time()
            if sampler:
                sampler.sample()
            return t
        time.sleep(interval)
    raise TimeoutError(f"hub acked {db.acked_total():,} of {total:,} records within {timeout:.0f} s")


def wait_agent_acked(env: Env, code: str, timeout: float = 120.0) -> float:
    """Until the agent's own health says its whole log is acked; returns time.time()."""

    def done():
        h = env.agent_health(code)
        return h["acked_seq"] == h["last_seq"] and h

    wait_for(done, timeout, 0.02, what=f"{code} fully acked (agent side)")
    return time.time()


# -- /proc ---------------------------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem (kB) and Threads from /proc/PID/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
            out[key] = int(val.split()[0])
    return out


class CpuSampler:
    """Samples CPU seconds of named pids; `between(t0, t1)` gives CPU used in a time window."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.sample()

    def sample(self) -> None:
        self.samples.append((time.time(), {k: cpu_seconds(p) for k, p in self.pids.items()}))

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds per process from the last sample at/before t0 to the first at/after t1."""
        before = [s for s in self.samples if s[0] <= t0] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= t1] or self.samples[-1:]
        a, b = before[-1][1], after[0][1]
        return {k: b[k] - a[k] for k in self.pids}


def env_pids(env: Env) -> dict[str, int]:
    """pids of the broker, hub and agents that are running."""
    pids = {}
    if env.broker and env.broker.pid:
        pids["mosquitto"] = env.broker.pid
    if env.hub and env.hub.p and env.hub.p.poll() is None:
        pids["hub"] = env.hub.p.pid
    for code, a in env.agents.items():
        if a.p and a.p.poll() is None:
            pids[f"agent {code}"] = a.p.pid
    return pids
