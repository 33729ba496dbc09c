"""The box's own clock: boot id, NTP state and the offset to the hub's time.

A Pi has no RTC: after a power cut fake-hwclock restores an old time and NTP jumps it later.
Every record therefore says how much its wall time can be trusted (clock quality).
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from agent.store import ClockInfo

NTP_SYNC_FLAG = Path("/run/systemd/timesync/synchronized")
HUB_TOLERANCE_S = 120.0      # wall clock within this of the hub's time counts as "hub"
HUB_OFFSET_MAX_AGE_S = 6 * 3600.0


def clock_quality(ntp_synced: bool, hub_offset_s: float | None, offset_age_s: float | None,
                  tolerance_s: float = HUB_TOLERANCE_S, max_age_s: float = HUB_OFFSET_MAX_AGE_S) -> str:
    """ntp | hub | untrusted: NTP sync wins; else a recent hub time within tolerance; else untrusted."""
    if ntp_synced:
        return "ntp"
    if hub_offset_s is not None and offset_age_s is not None and offset_age_s <= max_age_s \
            and abs(hub_offset_s) <= tolerance_s:
        return "hub"
    return "untrusted"


def read_boot_id() -> str:
    """Kernel boot id (changes at every boot), or a per-process id where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "proc-" + uuid.uuid4().hex


class BoxClock:
    """Tracks hub offset (from acks) and produces ClockInfo for each record."""

    def __init__(self, ntp_flag: Path = NTP_SYNC_FLAG, force: str | None = None):
        self.boot_id = read_boot_id()
        self.ntp_flag = ntp_flag
        self.force = force if force is not None else os.environ.get("JIANCHA_CLOCK_QUALITY")
        self._offset: float | None = None
        self._offset_mono: float | None = None
        self._floor_ms: int | None = None
        self._floor_mono = 0.0
        self._lock = threading.Lock()

    def set_floor(self, wall_ms: int) -> None:
        """Time never runs backwards past the newest record (fake-hwclock restores an old time
        after a power cut, and with no network NTP cannot fix it)."""
        self._floor_ms = wall_ms
        self._floor_mono = time.monotonic()

    def _floor_now_ms(self) -> int | None:
        if self._floor_ms is None:
            return None
        return self._floor_ms + int((time.monotonic() - self._floor_mono) * 1000)

    def wall_ms(self) -> int:
        """The box's best wall time: the system clock, but never behind the floor."""
        real = time.time_ns() // 1_000_000
        floor = self._floor_now_ms()
        return real if floor is None else max(real, floor)

    def is_behind(self) -> bool:
        """The system clock is more than a second behind what the log proves."""
        floor = self._floor_now_ms()
        return floor is not None and time.time_ns() // 1_000_000 < floor - 1000

    def now(self):
        """Aware datetime in Asia/Shanghai from wall_ms()."""
        from datetime import datetime

        from protocol.calendar import CST
        return datetime.fromtimestamp(self.wall_ms() / 1000, CST)

    def observe_hub_time(self, hub_ms: int) -> None:
        """Record the hub's time from an ack (one-way delay is ignored: tolerance is minutes)."""
        with self._lock:
            self._offset = hub_ms / 1000.0 - time.time()
            self._offset_mono = time.monotonic()

    @property
    def hub_offset_s(self) -> float | None:
        """Hub time minus our wall time, seconds, if known."""
        return self._offset

    def quality(self) -> str:
        """Current clock quality."""
        if self.force:
            return self.force
        if self.is_behind():
            return "untrusted"
        age = None if self._offset_mono is None else time.monotonic() - self._offset_mono
        return clock_quality(self.ntp_flag.exists(), self._offset, age)

    def __call__(self) -> ClockInfo:
        return ClockInfo(self.wall_ms(), time.monotonic_ns(), self.boot_id, self.quality())
