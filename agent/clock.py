"""The box's own clock: boot id, NTP state, the hub's time, and jumps of the wall clock.

A Pi has no RTC: after a power cut fake-hwclock restores an old time and NTP jumps it later, and
an operator can set any time by hand. Every record therefore says how much its wall time can be
trusted (clock quality), and carries the box's *best-known* time, not simply the system clock:

- The wall clock is checked against the monotonic clock at every reading: the wall time may
  move only as far as the monotonic time did (within `JUMP_TOLERANCE_S`). A larger move is a
  jump. A jump that an NTP synchronisation explains (timesyncd touched its flag after the last
  good reading) is accepted; any other jump makes the quality `untrusted` and the box keeps the
  time it had, continued with the monotonic clock, until the wall clock agrees again or the
  hub's time or NTP re-syncs it.
- The hub's time (`hub_ms` in every ack) is kept against the monotonic clock, so a later jump
  of the wall clock does not move it. While it is recent (`HUB_OFFSET_MAX_AGE_S`) it is the
  reference: a wall clock further than the tolerance from it is `untrusted`, and the box uses
  the hub's time instead (for record times, case numbers and default times).
- Time never runs back past the log (`set_floor`: the newest record's time, given at start-up):
  a clock behind it is `untrusted` and the floor, continued with the monotonic clock, is used,
  unless the hub's recent time or an NTP sync since that record says otherwise. Given the
  record's monotonic time and boot id, a jump while the agent was down (same boot) is found too.

All clocks are injectable (`wall_ns`, `mono_ns`, `ntp_flag`): tests move time without sleeping.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.store import ClockInfo

log = logging.getLogger("jiancha.agent.clock")

NTP_SYNC_FLAG = Path("/run/systemd/timesync/synchronized")
HUB_TOLERANCE_S = 120.0  # wall clock within this of the hub's time counts as "hub"
HUB_OFFSET_MAX_AGE_S = 6 * 3600.0
JUMP_TOLERANCE_S = HUB_TOLERANCE_S  # a wall clock this far from the best-known time has jumped
FLOOR_SLACK_MS = 1000  # behind the log by more than this: the clock went back


def clock_quality(
    ntp_synced: bool,
    hub_offset_s: float | None,
    offset_age_s: float | None,
    tolerance_s: float = HUB_TOLERANCE_S,
    max_age_s: float = HUB_OFFSET_MAX_AGE_S,
) -> str:
    """ntp | hub | untrusted: NTP sync wins; else a recent hub time within tolerance; else untrusted.
    (BoxClock.quality() first demotes a clock that jumped or runs behind its log to untrusted.)"""
    if ntp_synced:
        return "ntp"
    if (
        hub_offset_s is not None
        and offset_age_s is not None
        and offset_age_s <= max_age_s
        and abs(hub_offset_s) <= tolerance_s
    ):
        return "hub"
    return "untrusted"


def read_boot_id() -> str:
    """Kernel boot id (changes at every boot), or a per-process id where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "proc-" + uuid.uuid4().hex


@dataclass(frozen=True)
class Reading:
    """One look at the clocks: the system wall time, the monotonic time, the best-known time
    and why they differ (`off_ms`: wall clock minus the reference when it jumped; `behind`:
    the best time was held at the log's floor)."""

    real_ms: int
    mono_ns: int
    best_ms: int
    off_ms: int | None
    behind: bool
    ntp_synced: bool
    hub_offset_ms: int | None
    hub_age_s: float | None


class BoxClock:
    """Tracks the hub's time (from acks) and jumps of the wall clock; produces ClockInfo for
    each record, with the best-known time and an honest quality."""

    def __init__(
        self,
        ntp_flag: Path = NTP_SYNC_FLAG,
        force: str | None = None,
        *,
        wall_ns: Callable[[], int] = time.time_ns,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        boot_id: str | None = None,
        tolerance_s: float = JUMP_TOLERANCE_S,
    ):
        self.boot_id = boot_id or read_boot_id()
        self.ntp_flag = Path(ntp_flag)
        self.force = force if force is not None else os.environ.get("JIANCHA_CLOCK_QUALITY")
        self._wall_ns = wall_ns
        self._mono_ns = mono_ns
        self._tol_ms = int(tolerance_s * 1000)
        self._ref: tuple[int, int] | None = None  # (best ms, mono ns) of the last good reading
        self._hub: tuple[int, int] | None = None  # (hub ms, mono ns) of the newest ack
        self._floor: tuple[int, int] | None = None  # (floor ms, mono ns when set)
        self._floor_ntp_after: float = float("inf")  # an NTP sync after this mono ns overrides the floor
        self._jumped_ms: int | None = None  # last reported jump (for logs and health)
        self._flag_seen: int | None = None  # the NTP flag's mtime at the last good reading
        self._lock = threading.Lock()
        self.read()  # the first reading anchors jump detection

    # -- inputs -----------------------------------------------------------------------------
    def set_floor(self, wall_ms: int, mono_ns: int | None = None, boot_id: str | None = None) -> None:
        """Time never runs backwards past the newest record (fake-hwclock restores an old time
        after a power cut, and with no network NTP cannot fix it). With the record's monotonic
        time and boot id, a record of this boot also anchors jump detection: a wall clock that
        moved further than the monotonic clock since that record (forward or back) jumped."""
        with self._lock:
            now_mono = self._mono_ns()
            same_boot = (
                boot_id is not None and boot_id == self.boot_id and mono_ns is not None and 0 <= mono_ns <= now_mono
            )
            if same_boot:
                self._floor = (wall_ms, mono_ns)
                self._floor_ntp_after = mono_ns
                self._ref = (wall_ms, mono_ns)
            else:
                self._floor = (wall_ms, now_mono)
                # a record of another boot: any NTP sync of this boot came after it
                self._floor_ntp_after = float("-inf") if boot_id is not None else float("inf")

    def observe_hub_time(self, hub_ms: int) -> None:
        """Record the hub's time from an ack (one-way delay is ignored: tolerance is minutes)."""
        with self._lock:
            mono = self._mono_ns()
            self._hub = (int(hub_ms), mono)
            self._ref = (int(hub_ms), mono)

    def _ntp_flag_mtime(self) -> int | None:
        """timesyncd's flag file's mtime (ns; touched at every sync), or None."""
        try:
            return self.ntp_flag.stat().st_mtime_ns
        except OSError:
            return None

    def _ntp_sync_mono(self, real_ms: int, mono: int, mtime_ns: int | None) -> float | None:
        """Monotonic time of timesyncd's last sync, or None. The mtime is converted with the
        current wall clock: after a jump back that puts the sync in the future, which is
        impossible, so it is not taken as a sync."""
        if mtime_ns is None:
            return None
        at = mono - (real_ms - mtime_ns // 1_000_000) * 1_000_000
        return at if at <= mono else None

    # -- the reading ------------------------------------------------------------------------
    def read(self) -> Reading:
        """Look at the clocks once: detect jumps, pick the best-known time."""
        with self._lock:
            real = self._wall_ns() // 1_000_000
            mono = self._mono_ns()
            flag = self._ntp_flag_mtime()
            ntp_mono = self._ntp_sync_mono(real, mono, flag)
            synced_since = flag is not None and flag != self._flag_seen and ntp_mono is not None
            hub_est = hub_age = None
            if self._hub is not None:
                hub_est = self._hub[0] + (mono - self._hub[1]) // 1_000_000
                hub_age = (mono - self._hub[1]) / 1e9
            hub_recent = hub_age is not None and hub_age <= HUB_OFFSET_MAX_AGE_S
            if self._ref is None:
                self._ref = (real, mono)
            expected = hub_est if hub_recent else self._ref[0] + (mono - self._ref[1]) // 1_000_000
            off = None
            if abs(real - expected) <= self._tol_ms:
                self._ref = (real, mono)  # the wall clock agrees: follow it
                self._flag_seen = flag
            elif not hub_recent and synced_since and ntp_mono > self._ref[1]:
                # NTP set the clock since the last good reading: the flag was touched again since
                # (a clock set by hand leaves it as it was)
                self._ref = (real, mono)
                self._flag_seen = flag
                log.info("wall clock set by NTP (%+.0f s); following it", (real - expected) / 1000)
            else:
                off = real - expected
            best = real if off is None else expected
            behind = False
            if self._floor is not None and not hub_recent:
                floor_now = self._floor[0] + (mono - self._floor[1]) // 1_000_000
                ntp_after_floor = ntp_mono is not None and ntp_mono > self._floor_ntp_after and off is None
                if best < floor_now - FLOOR_SLACK_MS and not ntp_after_floor:
                    best, behind = floor_now, True
            self._report(off)
            return Reading(
                real,
                mono,
                best,
                off,
                behind,
                ntp_mono is not None,
                None if hub_est is None else hub_est - real,
                hub_age,
            )

    def _report(self, off: int | None) -> None:
        if off is not None and (self._jumped_ms is None or abs(off - self._jumped_ms) > self._tol_ms):
            log.warning(
                "wall clock jumped: %+.0f s from the best-known time (%s); records use the "
                "best-known time and say clock=untrusted until it is re-synced",
                off / 1000,
                "the hub's" if self._hub else "continued with the monotonic clock",
            )
        elif off is None and self._jumped_ms is not None:
            log.warning("wall clock agrees with the best-known time again")
        self._jumped_ms = off

    # -- what callers use -------------------------------------------------------------------
    def wall_ms(self) -> int:
        """The box's best-known wall time (Unix ms)."""
        return self.read().best_ms

    def is_behind(self) -> bool:
        """The system clock is more than a second behind what the log proves."""
        return self.read().behind

    def jump_s(self) -> float | None:
        """How far the wall clock is from the best-known time, when it jumped (else None)."""
        r = self.read()
        return None if r.off_ms is None else r.off_ms / 1000

    def now(self):
        """Aware datetime in Asia/Shanghai from wall_ms()."""
        from datetime import datetime

        from protocol.calendar import CST

        return datetime.fromtimestamp(self.wall_ms() / 1000, CST)

    @property
    def hub_offset_s(self) -> float | None:
        """Hub time minus our wall time, seconds, if known."""
        r = self.read()
        return None if r.hub_offset_ms is None else r.hub_offset_ms / 1000

    def quality(self) -> str:
        """Current clock quality."""
        return self._quality(self.read())

    def _quality(self, r: Reading) -> str:
        if self.force:
            return self.force
        if r.off_ms is not None or r.behind:
            return "untrusted"
        return clock_quality(
            r.ntp_synced,
            None if r.hub_offset_ms is None else r.hub_offset_ms / 1000,
            r.hub_age_s,
            tolerance_s=self._tol_ms / 1000,
        )

    def problem(self) -> str | None:
        """What an operator should read about the clock, when it jumped or runs behind the log."""
        r = self.read()
        if r.off_ms is not None:
            src = (
                "集控中心时间 (the hub's time)"
                if r.hub_age_s is not None
                else "跳变前的时间 (the time before the jump)"
            )
            return (
                f"时钟跳变 (clock jumped): system clock {r.off_ms / 3_600_000:+.1f} h off; "
                f"records and case numbers use {src}"
            )
        if r.behind:
            return "时钟落后于记录 (clock behind the log): system clock is earlier than the newest record"
        return None

    def __call__(self) -> ClockInfo:
        r = self.read()
        return ClockInfo(r.best_ms, r.mono_ns, self.boot_id, self._quality(r))
