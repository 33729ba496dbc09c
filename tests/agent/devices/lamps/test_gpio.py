"""GpioLamps on mock pins: one colour at a time, active-low relays, all dark on close."""

from __future__ import annotations

import pytest

from agent.devices.config import LampConfig
from agent.devices.lamps.gpio import GpioLamps


def states(pins, cfg):
    return tuple(pins.pin(p).state for p in (cfg.red, cfg.yellow, cfg.green))


def test_lamps_show_one_colour(mock_pins, hall):
    lamps = GpioLamps(hall.lamps)
    assert lamps.windows == ("1", "2", "3")
    w3 = hall.lamps[2]
    assert states(mock_pins, w3) == (False, False, False)
    lamps.set("3", "yellow")
    assert states(mock_pins, w3) == (False, True, False)
    lamps.set("3", "red")
    assert states(mock_pins, w3) == (True, False, False)
    assert states(mock_pins, hall.lamps[0]) == (False, False, False)  # other windows untouched
    lamps.set("3", None)
    assert states(mock_pins, w3) == (False, False, False)
    assert lamps.state["3"] is None
    lamps.close()


def test_active_low_relays(mock_pins):
    cfg = LampConfig(window="5", red=21, yellow=20, green=19, active_high=False)
    lamps = GpioLamps([cfg])
    assert states(mock_pins, cfg) == (True, True, True)  # high = relay off
    lamps.set("5", "green")
    assert states(mock_pins, cfg) == (True, True, False)  # green pulled low = on
    lamps.close()


def test_unknown_window_and_close(mock_pins, hall):
    lamps = GpioLamps(hall.lamps[:1])
    with pytest.raises(KeyError, match="window '2' has no lamp"):
        lamps.set("2", "red")
    lamps.set("1", "red")
    lamps.close()
    GpioLamps(hall.lamps[:1]).close()  # pins released
