"""VoteDesk with a fake clock: one vote per service, misuse kept and flagged, debounce."""

from __future__ import annotations

import pytest

from agent.devices.keypads.desk import DeskSettings, Session, VoteDesk, classify, is_bounce, is_burst
from agent.devices.keypads.mapping import get_mapping

MS = 1_000_000
S = 1_000_000_000


class Clock:
    """Monotonic nanoseconds that only move when told."""

    def __init__(self):
        self.ns = 10 * S

    def after(self, seconds: float) -> int:
        self.ns += int(seconds * S)
        return self.ns


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def desk():
    return VoteDesk(
        {"1": get_mapping("keypad5-v1"), "3": get_mapping("keypad4-v1")},
        DeskSettings(debounce_ms=50, arm_timeout_s=120, burst_presses=4, burst_window_s=3),
    )


def press(desk, clock, key="satisfied", window="1", after=5.0):
    t = clock.after(after)
    return desk.press(window, key, t, 1_770_000_000_000 + t // MS)


def test_press_while_disarmed_is_kept_and_flagged(desk, clock):
    vote = press(desk, clock, "dissatisfied")
    assert vote.misuse == "disarmed" and vote.case_no is None
    assert (vote.level, vote.level_name, vote.mapping_version) == (4, "不满意", "keypad5-v1")


def test_first_press_after_arm_is_the_vote(desk, clock):
    desk.arm("C-001", "1", "张三", "市场监管", clock.ns)
    vote = press(desk, clock, "very_satisfied")
    assert vote.is_valid and vote.case_no == "C-001"
    assert (vote.staff, vote.department, vote.level) == ("张三", "市场监管", 1)
    assert vote.pressed_mono_ns == clock.ns


def test_one_vote_per_service_further_presses_are_repeats(desk, clock):
    desk.arm("C-001", "1", "张三", None, clock.ns)
    assert press(desk, clock, "satisfied").misuse is None
    again = press(desk, clock, "very_dissatisfied")
    assert again.misuse == "repeat" and again.case_no == "C-001" and again.level == 5


def test_arm_times_out(desk, clock):
    desk.arm("C-001", "1", None, None, clock.ns)
    vote = press(desk, clock, after=120.0)
    assert vote.misuse == "disarmed" and vote.case_no is None


def test_repeats_end_with_the_arm_timeout(desk, clock):
    desk.arm("C-001", "1", None, None, clock.ns)
    press(desk, clock, after=1)
    assert press(desk, clock, after=100).misuse == "repeat"
    assert press(desk, clock, after=30).misuse == "disarmed"


def test_four_key_unit_maps_explicitly(desk, clock):
    desk.arm("C-009", "3", "李四", None, clock.ns)
    vote = press(desk, clock, "basically_satisfied", window="3")
    assert (vote.key, vote.key_label, vote.level, vote.level_name, vote.mapping_version) == (
        "basically_satisfied",
        "一般",
        3,
        "基本满意",
        "keypad4-v1",
    )


def test_bounce_is_not_a_press(desk, clock):
    desk.arm("C-001", "1", None, None, clock.ns)
    assert press(desk, clock).is_valid
    assert press(desk, clock, after=0.010) is None  # same key 10 ms later: bounce
    assert press(desk, clock, after=0.030) is None  # chatter keeps it a bounce
    assert press(desk, clock, "very_satisfied", after=0.001).misuse == "repeat"  # another key
    assert press(desk, clock, after=0.060).misuse == "repeat"  # same key, after the interval


def test_burst_is_flagged_and_does_not_use_up_the_arm(desk, clock):
    for _ in range(3):
        assert press(desk, clock, after=0.5).misuse == "disarmed"
    desk.arm("C-002", "1", None, None, clock.ns)
    burst = press(desk, clock, "very_dissatisfied", after=0.5)
    assert burst.misuse == "burst" and burst.case_no == "C-002"
    calm = press(desk, clock, "satisfied", after=10)
    assert calm.is_valid and calm.case_no == "C-002"


def test_burst_after_a_vote(desk, clock):
    desk.arm("C-003", "1", None, None, clock.ns)
    flags = [press(desk, clock, after=0.2).misuse for _ in range(5)]
    assert flags == [None, "repeat", "repeat", "burst", "burst"]


def test_complete_then_deliver_is_one_service(desk, clock):
    desk.arm("C-004", "1", "张三", None, clock.ns)
    assert press(desk, clock).is_valid
    session = desk.arm("C-004", "1", None, None, clock.after(20))
    assert session.voted and session.staff == "张三"
    assert press(desk, clock).misuse == "repeat"


def test_a_new_case_rearms(desk, clock):
    desk.arm("C-005", "1", None, None, clock.ns)
    assert press(desk, clock).case_no == "C-005"
    desk.arm("C-006", "1", None, None, clock.after(1))
    vote = press(desk, clock)
    assert vote.is_valid and vote.case_no == "C-006"


def test_disarm_and_window_without_keypad(desk, clock):
    assert desk.arm("C-007", "9", None, None, clock.ns) is None
    desk.arm("C-007", "1", None, None, clock.ns)
    assert desk.disarm("1").case_no == "C-007"
    assert press(desk, clock).misuse == "disarmed"
    assert desk.disarm("9") is None


def test_expire_reports_unrated_services(desk, clock):
    desk.arm("C-010", "1", None, None, clock.ns)
    desk.arm("C-011", "3", None, None, clock.ns)
    press(desk, clock, "satisfied", window="3")
    assert desk.session("1", clock.ns).case_no == "C-010"
    unrated = desk.expire(clock.after(200))
    assert [s.case_no for s in unrated] == ["C-010"]
    assert desk.session("1", clock.ns) is None and desk.expire(clock.ns) == []


def test_unknown_window_or_key_is_an_error(desk, clock):
    with pytest.raises(KeyError, match="window '7' has no keypad"):
        press(desk, clock, window="7")
    with pytest.raises(KeyError, match="very_dissatisfied"):
        press(desk, clock, "very_dissatisfied", window="3")


def test_vote_record_shape(desk, clock):
    desk.arm("C-012", "1", "张三", "民政", clock.ns)
    record = press(desk, clock, "basically_satisfied").to_record()
    assert list(record) == [
        "case_no",
        "window",
        "staff",
        "department",
        "key",
        "key_label",
        "level",
        "level_name",
        "mapping_version",
        "misuse",
        "pressed_wall_ms",
        "pressed_mono_ns",
    ]
    assert record["level_name"] == "基本满意" and record["misuse"] is None


@pytest.mark.parametrize(
    "last, now, ms, bounce",
    [
        (None, 0, 50, False),
        (0, 49 * MS, 50, True),
        (0, 50 * MS, 50, False),
        (0, 10 * MS, 0, False),
    ],
)
def test_is_bounce(last, now, ms, bounce):
    assert is_bounce(last, now, ms) is bounce


@pytest.mark.parametrize(
    "recent, burst",
    [
        ([], False),
        ([1 * S, 2 * S], False),
        ([1 * S, 2 * S, 3 * S], True),
        ([0, 1 * S, 2 * S], False),
    ],
)
def test_is_burst(recent, burst):
    assert is_burst(recent, 3 * S, presses=4, window_s=3) is burst


def _session(voted=False, expires=100):
    return Session("C", "1", None, None, 0, expires, voted)


@pytest.mark.parametrize(
    "session, now, burst, flag",
    [
        (None, 5, False, "disarmed"),
        (None, 5, True, "burst"),
        (_session(), 5, False, None),
        (_session(voted=True), 5, False, "repeat"),
        (_session(), 100, False, "disarmed"),
        (_session(), 5, True, "burst"),
    ],
)
def test_classify(session, now, burst, flag):
    assert classify(session, now, burst) == flag
