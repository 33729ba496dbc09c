"""worst_light and friends: one-line decisions."""

from __future__ import annotations

import pytest

from agent.devices.lamps.logic import lamp_changes, lamp_pattern, window_lights, worst_light


@pytest.mark.parametrize(
    "lights, worst",
    [
        ([], None),
        ([None], None),
        (["green"], "green"),
        (["green", "yellow"], "yellow"),
        (["yellow", "red", "green"], "red"),
        ([None, "green", None], "green"),
        (("red",), "red"),
    ],
)
def test_worst_light(lights, worst):
    assert worst_light(lights) == worst


def test_unknown_light_is_an_error():
    with pytest.raises(ValueError, match="unknown light 'blue'"):
        worst_light(["green", "blue"])


def test_window_lights():
    cases = [("1", "green"), ("1", "red"), ("2", "yellow"), (None, "red"), ("9", "red"), (3, "green")]
    assert window_lights(cases, ["1", "2", "3", "4"]) == {"1": "red", "2": "yellow", "3": "green", "4": None}


def test_lamp_changes():
    assert lamp_changes({"1": "red", "2": None}, {"1": "red", "2": "green", "3": None}) == {"2": "green", "3": None}


@pytest.mark.parametrize(
    "light, pattern",
    [
        (None, (False, False, False)),
        ("red", (True, False, False)),
        ("yellow", (False, True, False)),
        ("green", (False, False, True)),
    ],
)
def test_lamp_pattern(light, pattern):
    assert lamp_pattern(light) == pattern
