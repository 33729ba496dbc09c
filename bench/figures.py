"""Printed figures: the machine line every benchmark starts with, medians and their spread."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def machine_line() -> str:
    """Cores, load and code version: other work on the machine slows every timing figure."""
    load = os.getloadavg()
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        rev = f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return (
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) "
        f"at start; Python {sys.version.split()[0]}; code {rev}"
    )


def median(xs) -> float:
    return statistics.median(xs)


def spread(xs, fmt: str = "{:,.0f}") -> str:
    """'median (min..max, n runs)'."""
    return f"{fmt.format(median(xs))} (min {fmt.format(min(xs))}, max {fmt.format(max(xs))}, {len(xs)} runs)"
