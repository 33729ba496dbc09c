"""GpioLamps: red/yellow/green lamps on GPIO through gpiozero (imported lazily).

Active-high lamps use gpiozero's TrafficLights. TrafficLights has no ``active_high`` option,
and the common relay boards switch on a low pin, so active-low lamps use an LEDBoard with the
same red/yellow/green members instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.devices import Light
from agent.devices.config import LampConfig
from agent.devices.lamps.logic import lamp_pattern


def _traffic_lights(cfg: LampConfig, pin_factory: Any) -> Any:
    from gpiozero import LEDBoard, TrafficLights  # lazy: only this driver needs the Pi library

    if cfg.active_high:
        return TrafficLights(red=cfg.red, yellow=cfg.yellow, green=cfg.green, pin_factory=pin_factory)
    return LEDBoard(red=cfg.red, yellow=cfg.yellow, green=cfg.green, active_high=False, pin_factory=pin_factory)


class GpioLamps:
    """Lamps protocol: one TrafficLights per window."""

    def __init__(self, configs: Iterable[LampConfig], *, pin_factory: Any = None):
        self._boards: dict[str, Any] = {}
        self.state: dict[str, Light | None] = {}
        try:
            for cfg in configs:
                self._boards[cfg.window] = _traffic_lights(cfg, pin_factory)
                self.state[cfg.window] = None
        except Exception:
            self.close()
            raise
        self.windows = tuple(self._boards)

    def set(self, window: str, light: Light | None) -> None:
        """Light exactly one lamp of the window (or none)."""
        try:
            board = self._boards[str(window)]
        except KeyError:
            raise KeyError(f"window {window!r} has no lamp (lamps: {', '.join(self._boards) or 'none'})") from None
        red, yellow, green = lamp_pattern(light)
        # switch off before on, so two colours are never lit together
        for led, on in sorted(
            ((board.red, red), (board.yellow, yellow), (board.green, green)), key=lambda pair: pair[1]
        ):
            led.value = 1 if on else 0
        self.state[str(window)] = light

    def close(self) -> None:
        """All lamps off, pins released."""
        for board in self._boards.values():
            try:
                board.off()
                board.close()
            except Exception:  # one broken board must not keep the others lit
                pass
        self._boards.clear()
