"""Window presence (在岗/离岗) with hysteresis, and office hours (办公时间). Pure functions.

`presence_state` turns per-frame observations ("something moved in the clerk's region") into
a status with hysteresis: unattended after N seconds without presence, attended after M
seconds of presence (quiet gaps shorter than ``present_gap_seconds`` do not break a run,
since a working clerk does not move in every frame). `office_event` decides which status
changes are reported: only during office hours on working days, an "unattended" episode
opened when office hours begin with an empty window, and "attended" only to close a
reported episode. Times are monotonic seconds; office hours use the wall clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from protocol.calendar import CST

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

    from agent.devices.camera.config import OfficeHours, PresenceConfig
    from protocol.calendar import WorkCalendar

Status = Literal["unknown", "attended", "unattended"]
WINDOW_UNATTENDED = "window_unattended"
WINDOW_ATTENDED = "window_attended"


@dataclass(frozen=True)
class PresenceState:
    """Status of one window and the timers behind it (monotonic seconds)."""

    status: Status = "unknown"
    since: float = 0.0  # when the condition behind `status` began
    run_start: float | None = None  # start of the current run of presence
    last_present: float | None = None  # last frame with presence


def initial_state(now: float) -> PresenceState:
    """State at start-up: unknown; absence is counted from `now`."""
    return PresenceState("unknown", now)


def presence_state(
    prev: PresenceState, present_now: bool, now: float, cfg: PresenceConfig
) -> tuple[PresenceState, str | None]:
    """Next state after one observation, and the event name if the status changed."""
    run_start, last = prev.run_start, prev.last_present
    if present_now:
        if last is None or now - last > cfg.present_gap_seconds:
            run_start = now
        last = now
    elif last is not None and now - last > cfg.present_gap_seconds:
        run_start = None  # the run of presence is over
    state = replace(prev, run_start=run_start, last_present=last)
    if prev.status != "attended" and present_now and now - run_start >= cfg.present_seconds:
        return replace(state, status="attended", since=run_start), WINDOW_ATTENDED
    absent_from = last if last is not None else prev.since
    if prev.status != "unattended" and not present_now and now - absent_from >= cfg.absent_seconds:
        return replace(state, status="unattended", since=absent_from), WINDOW_UNATTENDED
    return state, None


def office_event(event: str | None, status: Status, in_hours: bool, episode_open: bool) -> tuple[str | None, bool]:
    """(event to report or None, unattended episode open) for one step; see module doc."""
    if not in_hours:
        return None, False  # episodes end with office hours
    if event == WINDOW_UNATTENDED:
        return WINDOW_UNATTENDED, True
    if event == WINDOW_ATTENDED:
        return (WINDOW_ATTENDED if episode_open else None), False
    if status == "unattended" and not episode_open:  # office hours began, nobody there
        return WINDOW_UNATTENDED, True
    return None, episode_open


def is_office_hours(dt: datetime, cfg: OfficeHours, calendar: WorkCalendar) -> bool:
    """True when aware `dt` (any zone) falls in an office-hours span of a working day, China time."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no time zone")
    local = dt.astimezone(CST)
    if cfg.working_days_only and not calendar.is_working_day(local.date()):
        return False
    t = local.time().replace(tzinfo=None)
    return any(p.start <= t < p.end for p in cfg.periods)


def region_mask(points: Sequence[tuple[float, float]], size: tuple[int, int]) -> np.ndarray:
    """uint8 mask (0/255) of a normalized polygon at analysis size (width, height)."""
    import cv2
    import numpy as np

    w, h = size
    pts = np.array([[min(w - 1, round(x * w)), min(h - 1, round(y * h))] for x, y in points], dtype=np.int32)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(mask, [pts], 255)
    return mask


def region_activity(motion_mask: np.ndarray, mask: np.ndarray) -> float:
    """Share of the region's pixels that moved in this frame (0..1)."""
    import cv2

    area = cv2.countNonZero(mask)
    return cv2.countNonZero(cv2.bitwise_and(motion_mask, mask)) / area if area else 0.0
