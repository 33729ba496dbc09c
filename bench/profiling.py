"""Optional profiling: py-spy on a running process, and where the sampled time went."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from pathlib import Path

from bench.cleanup import children


def pyspy_start(pyspy: str, pid: int, out: Path, rate: int = 200) -> subprocess.Popen:
    """`py-spy record` of a running process into collapsed stacks (stopped by pyspy_stop)."""
    p = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(pid),
            "-r",
            str(rate),
            "--threads",
            "--nonblocking",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    children.append(p)
    return p


def pyspy_stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with contextlib.suppress(ValueError):
        children.remove(p)


def pyspy_summary(path: Path, must_contain: str, top: int = 15) -> str:
    """Share of samples (stacks containing `must_contain`) by our own source line (deepest
    frame in agent/, hub/ or protocol/; library time is charged to the line that called it),
    and by function inclusive."""
    import collections
    import re

    by_line, incl, total = collections.Counter(), collections.Counter(), 0
    ours = ("agent/", "hub/", "protocol/")
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if must_contain not in stack or not n.isdigit():
            continue
        n, frames = int(n), stack.split(";")
        total += n
        by_line[next((f for f in reversed(frames) if any(o in f for o in ours)), frames[-1])] += n
        for f in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            incl[f] += n
    if not total:
        return "(no samples)"
    out = [f"{total} samples in stacks through {must_contain}; by our source line (self + libraries it calls):"]
    out += [f"  {100 * v / total:5.1f} %  {k}" for k, v in by_line.most_common(top)]
    out.append("by function, inclusive:")
    out += [
        f"  {100 * v / total:5.1f} %  {k}"
        for k, v in incl.most_common()
        if "threading.py" not in k and not k.startswith("thread (")
    ][: top + 5]
    return "\n".join(out)
