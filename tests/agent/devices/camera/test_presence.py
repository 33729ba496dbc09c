from datetime import UTC, datetime, timedelta

import pytest

from agent.devices.camera.config import OfficeHours, PresenceConfig
from agent.devices.camera.presence import (
    WINDOW_ATTENDED,
    WINDOW_UNATTENDED,
    PresenceState,
    initial_state,
    is_office_hours,
    office_event,
    presence_state,
    region_activity,
    region_mask,
)
from protocol.calendar import CST, default_calendar

CFG = PresenceConfig(absent_seconds=60, present_seconds=10, present_gap_seconds=5)


def drive(state, observations, cfg=CFG):
    """Apply (t, present) observations; return the final state and the (t, event) list."""
    events = []
    for t, present in observations:
        state, ev = presence_state(state, present, t, cfg)
        if ev:
            events.append((t, ev))
    return state, events


def every(t0, t1, present, step=1.0):
    return [(t0 + i * step, present) for i in range(int((t1 - t0) / step))]


def test_unattended_after_n_seconds_without_presence():
    state, events = drive(initial_state(0.0), every(0, 70, False))
    assert events == [(60.0, WINDOW_UNATTENDED)]
    assert state.status == "unattended" and state.since == 0.0


def test_attended_after_m_seconds_of_presence_then_absent_n_seconds():
    state, events = drive(initial_state(0.0), every(0, 30, True) + every(30, 100, False))
    assert events == [(10.0, WINDOW_ATTENDED), (89.0, WINDOW_UNATTENDED)]
    assert state.since == 29.0  # the last frame with presence


def test_short_visit_does_not_count_and_short_gap_does_not_break_a_run():
    # 6 s of presence (< M) then gone: no attended
    _, events = drive(initial_state(0.0), every(0, 6, True) + every(6, 20, False))
    assert events == []
    # intermittent presence every 4 s (gaps < 5 s) is one run: attended after 10 s
    obs = [(t, t % 4 == 0) for t in range(0, 20)]
    _, events = drive(initial_state(0.0), obs)
    assert events == [(12, WINDOW_ATTENDED)]


def test_returning_clerk_needs_m_seconds_again():
    state, _ = drive(initial_state(0.0), every(0, 70, False))
    state, events = drive(state, every(70, 79, True))
    assert events == [] and state.status == "unattended"
    state, events = drive(state, [(80, True)])
    assert events == [(80, WINDOW_ATTENDED)] and state.since == 70


def test_presence_state_is_pure():
    prev = PresenceState("attended", 5.0, 5.0, 20.0)
    assert presence_state(prev, False, 30.0, CFG) == presence_state(prev, False, 30.0, CFG)
    assert prev == PresenceState("attended", 5.0, 5.0, 20.0)


@pytest.mark.parametrize(
    "event, status, in_hours, open_, expected",
    [
        (WINDOW_UNATTENDED, "unattended", True, False, (WINDOW_UNATTENDED, True)),
        (WINDOW_UNATTENDED, "unattended", False, False, (None, False)),
        (WINDOW_ATTENDED, "attended", True, True, (WINDOW_ATTENDED, False)),
        (WINDOW_ATTENDED, "attended", True, False, (None, False)),  # start of day: not news
        (None, "unattended", True, False, (WINDOW_UNATTENDED, True)),  # hours began, desk empty
        (None, "unattended", True, True, (None, True)),
        (None, "attended", True, False, (None, False)),
        (None, "unattended", False, True, (None, False)),  # hours ended: episode closed
    ],
)
def test_office_event(event, status, in_hours, open_, expected):
    assert office_event(event, status, in_hours, open_) == expected


CAL = default_calendar()
OH = OfficeHours(periods=["08:30-12:00", "14:00-17:30"])


@pytest.mark.parametrize(
    "local, expected",
    [
        ("2025-06-03 08:29", False),  # Tuesday, before opening
        ("2025-06-03 08:30", True),
        ("2025-06-03 11:59", True),
        ("2025-06-03 12:00", False),  # lunch
        ("2025-06-03 14:00", True),
        ("2025-06-03 17:30", False),
        ("2025-06-07 09:00", False),  # Saturday
        ("2025-10-01 09:00", False),  # National Day holiday (Wednesday)
        ("2025-09-28 09:00", True),  # Sunday 调休 make-up working day
    ],
)
def test_is_office_hours(local, expected):
    dt = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=CST)
    assert is_office_hours(dt, OH, CAL) is expected


def test_office_hours_use_china_time_whatever_the_zone():
    dt = datetime(2025, 6, 3, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
    assert is_office_hours(dt, OH, CAL)
    assert is_office_hours(dt + timedelta(days=4), OfficeHours(working_days_only=False), CAL)
    with pytest.raises(ValueError):
        is_office_hours(datetime(2025, 6, 3, 9), OH, CAL)


def test_region_mask_and_activity():
    import numpy as np

    mask = region_mask([(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)], (100, 50))
    assert mask.shape == (50, 100) and 0.45 < (mask > 0).mean() < 0.55
    motion = np.zeros_like(mask)
    motion[:, 60:] = 255  # outside the region
    assert region_activity(motion, mask) == 0.0
    motion[:10, :10] = 255
    assert region_activity(motion, mask) == pytest.approx(100 / (mask > 0).sum())
