"""Open the devices a DevicesConfig describes: real drivers, or fakes for the demo and tests."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.devices import Keypad, Lamps, Sign
from agent.devices.config import DevicesConfig
from agent.devices.keypads.desk import VoteDesk

log = logging.getLogger(__name__)


@dataclass
class Devices:
    """The opened devices of one agent; `close()` releases them all."""

    desk: VoteDesk
    keypads: list[Keypad] = field(default_factory=list)
    lamps: Lamps | None = None
    sign: Sign | None = None
    missing: list[str] = field(default_factory=list)  # configured devices without a driver

    def close(self) -> None:
        """Close keypads, lamps and sign (each even if another fails)."""
        for device in [*self.keypads, self.lamps, self.sign]:
            if device is not None:
                try:
                    device.close()
                except Exception:  # releasing one device must not keep the rest open
                    pass


def open_devices(
    config: DevicesConfig, data_dir: str | Path | None = None, *, fake: bool = False, pin_factory: Any = None
) -> Devices:
    """Drivers for `config`; `fake` = FakeKeypad/FakeLamps/FakeSign, no hardware libraries."""
    desk = VoteDesk({k.window: k.mapping() for k in config.keypads}, config.desk.settings())
    if fake:
        from agent.devices.keypads.fake import FakeKeypad
        from agent.devices.lamps.fake import FakeLamps
        from agent.devices.signs.base import FakeSign

        return Devices(
            desk,
            [FakeKeypad(k.window, list(k.keys)) for k in config.keypads],
            FakeLamps([lc.window for lc in config.lamps]) if config.lamps else None,
            FakeSign(config.sign) if config.sign and config.sign.type != "none" else None,
        )
    from agent.devices.signs import make_sign

    devices = Devices(desk)
    gpio_keypads = [k for k in config.keypads if k.bus == "gpio"]
    for k in config.keypads:
        if k.bus != "gpio":  # RS-485 keypad units: no driver yet; the rest of the agent runs
            devices.missing.append(f"window {k.window} keypad on {k.bus} {k.port} #{k.address}")
            log.error("no driver for %s keypads: window %s keypad not opened", k.bus, k.window)
    try:
        if gpio_keypads or config.lamps:
            if pin_factory is None:
                from agent.devices.pins import make_pin_factory

                pin_factory = make_pin_factory(config.gpio)
            from agent.devices.keypads.gpio import GpioKeypad
            from agent.devices.lamps.gpio import GpioLamps

            devices.keypads = [GpioKeypad(k, pin_factory=pin_factory) for k in gpio_keypads]
            devices.lamps = GpioLamps(config.lamps, pin_factory=pin_factory) if config.lamps else None
        devices.sign = make_sign(config.sign, data_dir)
    except Exception:
        devices.close()
        raise
    return devices
