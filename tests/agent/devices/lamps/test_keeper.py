"""LampKeeper with FakeLamps: worst light per window, only changes are written."""

from __future__ import annotations

import pytest

from agent.devices.lamps import FakeLamps, LampKeeper


def test_keeper_sets_only_changes():
    lamps = FakeLamps(["1", "2"])
    keeper = LampKeeper(lamps)
    assert keeper.update([("1", "green"), ("1", "yellow")]) == {"1": "yellow", "2": None}
    assert keeper.update([("1", "yellow"), ("2", "green")]) == {"2": "green"}
    assert keeper.update([("1", "yellow"), ("2", "green")]) == {}
    keeper.update([("2", "red")])
    assert lamps.state == {"1": None, "2": "red"}
    assert lamps.history == [("1", "yellow"), ("2", None), ("2", "green"), ("1", None), ("2", "red")]


def test_fake_lamps_check_input():
    lamps = FakeLamps(["1"])
    with pytest.raises(KeyError):
        lamps.set("2", "red")
    with pytest.raises(ValueError):
        lamps.set("1", "purple")
    lamps.set("1", "red")
    lamps.close()
    assert lamps.state == {"1": None} and lamps.closed
