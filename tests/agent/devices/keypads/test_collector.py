"""VoteCollector with FakeKeypads: arms, classifies, passes every vote on, survives bad keys."""

from __future__ import annotations

import pytest

from agent.devices import KeyPress
from agent.devices.keypads import FakeKeypad, VoteCollector, VoteDesk, get_mapping

S = 1_000_000_000


@pytest.fixture
def setup():
    now = {"ns": 50 * S}
    pad = FakeKeypad("2", list(get_mapping("keypad5-v1").keys))
    desk = VoteDesk({"2": get_mapping("keypad5-v1")})
    votes = []
    collector = VoteCollector(desk, [pad], votes.append, mono_ns=lambda: now["ns"])
    collector.start()
    return pad, collector, votes, now


def test_arm_press_vote(setup):
    pad, collector, votes, now = setup
    assert collector.arm("C-1", "2", "赵六", "公安").case_no == "C-1"
    pad.press("very_satisfied", mono_ns=now["ns"] + S, wall_ms=1)
    pad.press("very_satisfied", mono_ns=now["ns"] + 5 * S, wall_ms=2)
    assert [(v.case_no, v.misuse) for v in votes] == [("C-1", None), ("C-1", "repeat")]


def test_window_none_and_expire(setup):
    pad, collector, votes, now = setup
    assert collector.arm("C-2", None) is None
    collector.arm("C-3", "2")
    now["ns"] += 500 * S
    assert [s.case_no for s in collector.expire()] == ["C-3"]


def test_unknown_key_is_logged_not_raised(setup, caplog):
    _, collector, votes, _ = setup
    assert collector.on_press(KeyPress("2", "help", 1, 1)) is None
    assert collector.on_press(KeyPress("8", "satisfied", 1, 1)) is None
    assert votes == [] and "keypad press ignored" in caplog.text


def test_fake_keypad(setup):
    pad, collector, votes, _ = setup
    with pytest.raises(KeyError, match="no key 'help'"):
        pad.press("help")
    collector.close()
    pad.press("satisfied")
    assert pad.closed and votes == []
