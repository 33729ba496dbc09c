"""The clock shim of CI's second run (.ci/faketime/shift.c, docs/testing.md): it moves the wall
clock of a process and of every process that process starts, and nothing else: monotonic time,
sleeps and timeouts keep the real pace. If it stopped working the shifted run would silently test
today again, so this fails instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIM_SRC = REPO / ".ci" / "faketime" / "shift.c"
DAY = 86_400

# What a child reports: every way our processes read the wall clock (Python's time.time and
# datetime.now use clock_gettime(CLOCK_REALTIME); SQLite's 'now' uses gettimeofday; OpenSSL, as in
# Mosquitto, uses time()), plus the monotonic clock and a sleep measured with it.
PROBE = r"""
import ctypes, datetime, json, sqlite3, time
libc = ctypes.CDLL(None)
class TV(ctypes.Structure):
    _fields_ = [("s", ctypes.c_long), ("us", ctypes.c_long)]
tv = TV(); libc.gettimeofday(ctypes.byref(tv), None)
libc.time.restype = ctypes.c_long
m0 = time.monotonic(); time.sleep(0.2); slept = time.monotonic() - m0
print(json.dumps({
    "time": time.time(), "now": datetime.datetime.now(datetime.timezone.utc).timestamp(),
    "gettimeofday": tv.s, "c_time": libc.time(None),
    "sqlite": sqlite3.connect(":memory:").execute("select strftime('%s','now')").fetchone()[0],
    "monotonic": time.monotonic(), "slept": slept}))
"""


def _env_without_shim() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "JIANCHA_CLOCK_OFFSET_S")}
    return env


def _probe(env: dict) -> tuple[dict, float, float]:
    """(child's report, real wall time and our monotonic time just before the child started)."""
    real = json.loads(
        subprocess.run(
            [sys.executable, "-c", "import time; print(time.time())"],
            env=_env_without_shim(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    mono = time.monotonic()
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), real, mono


def _assert_shifted(report: dict, real: float, mono: float, offset: int) -> None:
    for key in ("time", "now", "gettimeofday", "c_time", "sqlite"):
        moved = float(report[key]) - real
        assert abs(moved - offset) < 30, f"{key}: moved by {moved:.0f}s, expected {offset}s"
    assert 0 <= report["monotonic"] - mono < 30, "monotonic time must not move"
    assert 0.15 < report["slept"] < 5, f"time.sleep(0.2) took {report['slept']:.3f}s of monotonic time"


def test_this_run_has_the_clock_it_says():
    """In the shifted run, a process we start inherits the offset (as the hub, agents and
    Mosquitto of the e2e tests do), and our own wall clock is moved the same way. In the
    real-clock run, nothing is shifted: no shim, and pytest and a C program read the same clock."""
    offset = int(os.environ.get("JIANCHA_CLOCK_OFFSET_S") or 0)
    date_s = int(subprocess.run(["date", "+%s"], capture_output=True, text=True, check=True).stdout)
    if not offset:
        assert "shift" not in os.environ.get("LD_PRELOAD", "")
        assert abs(time.time() - date_s) < 30
        return
    assert "shift" in os.environ.get("LD_PRELOAD", "")
    report, real, mono = _probe(dict(os.environ))
    _assert_shifted(report, real, mono, offset)
    assert abs(time.time() - real - offset) < 30  # pytest itself
    assert abs(date_s - real - offset) < 30  # and a plain C program


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build the clock shim")
def test_the_shim_moves_only_the_wall_clock(tmp_path):
    """Built from source here, so the real-clock run checks it too: +100 days and -1 day."""
    so = tmp_path / "shift.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(so), str(SHIM_SRC), "-ldl"], check=True, timeout=120)
    for offset in (100 * DAY + 17, -DAY):
        env = {**_env_without_shim(), "LD_PRELOAD": str(so), "JIANCHA_CLOCK_OFFSET_S": str(offset)}
        report, real, mono = _probe(env)
        _assert_shifted(report, real, mono, offset)
    report, real, mono = _probe({**_env_without_shim(), "LD_PRELOAD": str(so)})  # no offset: real time
    _assert_shifted(report, real, mono, 0)
