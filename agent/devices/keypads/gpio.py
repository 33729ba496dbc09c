"""GpioKeypad: an evaluator keypad on GPIO, one gpiozero Button per key, by key NAME.

Pins come from the board profile by key name (``very_satisfied: 4``), never by position, so
rewiring a unit changes one line of YAML and never the meaning of a key. gpiozero is imported
lazily. ``bounce_time`` is left off on purpose: the mock pin factory ignores it and the
VoteDesk debounces on the monotonic clock for every factory alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from agent.devices import KeyPress, PressCallback
from agent.devices.config import KeypadConfig


def _clock_ns() -> int:
    return time.monotonic_ns()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class GpioKeypad:
    """Keypad protocol over gpiozero Buttons; the callback receives KeyPress(window, key, ...)."""

    def __init__(
        self,
        config: KeypadConfig,
        *,
        pin_factory: Any = None,
        mono_ns: Callable[[], int] = _clock_ns,
        wall_ms: Callable[[], int] = _wall_ms,
    ):
        if config.bus != "gpio":
            raise ValueError(f"window {config.window} keypad is on the {config.bus} bus, not GPIO")
        from gpiozero import Button  # lazy: only this driver needs the Pi library

        self.window = config.window
        self.keys = tuple(config.keys)
        self._mono_ns, self._wall_ms = mono_ns, wall_ms
        self._on_press: PressCallback | None = None
        self._lock = threading.Lock()
        self._buttons: dict[str, Any] = {}
        try:
            for key, pin in config.keys.items():
                self._buttons[key] = Button(pin, pull_up=config.pull_up, bounce_time=None, pin_factory=pin_factory)
        except Exception:
            self.close()
            raise

    def start(self, on_press: PressCallback) -> None:
        """Wire each Button's when_pressed to `on_press` with this key's name."""
        self._on_press = on_press
        for key, button in self._buttons.items():
            button.when_pressed = self._handler(key)

    def _handler(self, key: str) -> Callable[[], None]:
        def pressed() -> None:
            # stamp first: the callback may queue behind another key's
            press = KeyPress(self.window, key, self._mono_ns(), self._wall_ms())
            with self._lock:
                callback = self._on_press
            if callback is not None:
                callback(press)

        return pressed

    def close(self) -> None:
        """Detach the callback and close every Button."""
        with self._lock:
            self._on_press = None
        for button in self._buttons.values():
            try:
                button.close()
            except Exception:  # closing must not stop the others from closing
                pass
        self._buttons.clear()
