"""open_devices: fakes for the demo, gpiozero mock pins end to end, lazy hardware imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.devices import Keypad, Lamps, Sign
from agent.devices.build import open_devices
from agent.devices.keypads import VoteCollector
from agent.devices.pins import GpioUnavailable, make_pin_factory


def test_fakes_need_no_hardware(hall):
    devices = open_devices(hall, fake=True)
    assert [k.window for k in devices.keypads] == ["1", "2", "3"]
    assert all(isinstance(k, Keypad) for k in devices.keypads)
    assert isinstance(devices.lamps, Lamps) and isinstance(devices.sign, Sign)
    votes = []
    collector = VoteCollector(devices.desk, devices.keypads, votes.append)
    collector.start()
    collector.arm("C-1", "3")
    devices.keypads[2].press("basically_satisfied")
    assert votes[0].key_label == "一般" and votes[0].level_name == "基本满意"
    devices.close()


def test_mock_pins_end_to_end(tmp_path, generic, mock_pins):
    devices = open_devices(generic, data_dir=tmp_path, pin_factory=mock_pins)
    votes = []
    VoteCollector(devices.desk, devices.keypads, votes.append).start()
    mock_pins.pin(10).drive_low()  # window 1 very_dissatisfied
    assert (votes[0].window, votes[0].level, votes[0].misuse) == ("1", 5, "disarmed")
    devices.lamps.set("2", "red")
    assert mock_pins.pin(15).state is True
    devices.close()


def test_serial_keypads_are_reported_missing(mock_pins):
    from agent.devices.config import DevicesConfig, KeypadConfig, LampConfig

    keys = {"very_satisfied": 1, "satisfied": 2, "basically_satisfied": 3, "dissatisfied": 4, "very_dissatisfied": 5}
    cfg = DevicesConfig(
        gpio="mock",
        keypads=[KeypadConfig(window="1", model="five_key", keys=keys, bus="serial", port="/dev/ttyUSB0", address=1)],
        lamps=[LampConfig(window="1", red=4, yellow=17, green=27)],
    )
    devices = open_devices(cfg, pin_factory=mock_pins)
    assert devices.keypads == [] and devices.missing == ["window 1 keypad on serial /dev/ttyUSB0 #1"]
    devices.close()
    assert [k.window for k in open_devices(cfg, fake=True).keypads] == ["1"]
    with pytest.raises(ValueError, match="gpio is none but window 1 lamp"):
        DevicesConfig(gpio="none", lamps=cfg.lamps)


def test_pin_factories():
    assert type(make_pin_factory("mock")).__name__ == "MockFactory"
    with pytest.raises(GpioUnavailable, match="unknown gpio pin factory 'gpio9'"):
        make_pin_factory("gpio9")
    with pytest.raises(GpioUnavailable, match="no GPIO"):
        make_pin_factory("none")


def test_hardware_libraries_are_imported_lazily():
    code = (
        "import sys, agent.devices, agent.devices.config, agent.devices.build, "
        "agent.devices.keypads, agent.devices.lamps, agent.devices.signs, "
        "agent.devices.signs.bx, agent.devices.signs.bx_sign, agent.devices.signs.png, "
        "agent.devices.keypads.gpio, agent.devices.lamps.gpio;"
        "print(sorted(m for m in ('gpiozero', 'PIL', 'serial', 'lgpio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
