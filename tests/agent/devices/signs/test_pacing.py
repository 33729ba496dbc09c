"""should_write: only changes, rate-limited, optional refresh of RAM areas."""

from __future__ import annotations

import pytest

from agent.devices.signs.pacing import Pacer, should_write


@pytest.mark.parametrize(
    "prev, new, last, now, interval, max_age, write",
    [
        (None, "a", None, 0, 5, None, True),  # never written
        ("a", "a", 0, 100, 5, None, False),  # unchanged
        ("a", "b", 0, 4.9, 5, None, False),  # changed, too soon
        ("a", "b", 0, 5, 5, None, True),  # changed, interval passed
        (None, "a", 0, 3, 5, None, False),  # failed write: retry after the interval
        (None, "a", 0, 6, 5, None, True),
        ("a", "a", 0, 599, 5, 600, False),  # refresh not yet due
        ("a", "a", 0, 600, 5, 600, True),  # refresh: a rebooted card forgot its RAM
    ],
)
def test_should_write(prev, new, last, now, interval, max_age, write):
    assert should_write(prev, new, last, now, interval, max_age) is write


def test_pacer_remembers_per_slot():
    p = Pacer(min_interval=5)
    assert p.due(0, "a", 0)
    p.written(0, "a", 0)
    assert not p.due(0, "a", 10) and p.due(1, "a", 1) and p.shown(0) == "a"
    p.failed(0, 11)
    assert p.shown(0) is None and not p.due(0, "a", 12) and p.due(0, "a", 16)
