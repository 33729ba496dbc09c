"""Fixtures for device tests: gpiozero mock pins, reset between tests, and board configs."""

from __future__ import annotations

import pytest

from agent.config import load_board
from agent.devices.config import DevicesConfig, devices_from_board


@pytest.fixture
def mock_pins():
    """gpiozero's MockFactory as the default pin factory; every pin released afterwards."""
    import gpiozero
    from gpiozero.pins.mock import MockFactory

    old = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = MockFactory()
    yield gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory.reset()  # closes devices, forgets pins
    gpiozero.Device.pin_factory = old


@pytest.fixture
def hall() -> DevicesConfig:
    """Devices of the three-window Raspberry Pi hall (two 5-key keypads, one 4-key)."""
    return devices_from_board(load_board("rpi4-hall-3win"))


@pytest.fixture
def generic() -> DevicesConfig:
    """Devices of the laptop/demo board (mock GPIO, PNG sign)."""
    return devices_from_board(load_board("generic"))
