"""FakeKeypad: a keypad without hardware, for the demo, the simulator and tests."""

from __future__ import annotations

import time

from agent.devices import KeyPress, PressCallback


class FakeKeypad:
    """Keypad protocol; `press(key)` plays a citizen pressing a key."""

    def __init__(self, window: str, keys: tuple[str, ...] | list[str]):
        self.window = str(window)
        self.keys = tuple(keys)
        self._on_press: PressCallback | None = None
        self.closed = False

    def start(self, on_press: PressCallback) -> None:
        """Remember the callback."""
        self._on_press = on_press

    def press(self, key: str, mono_ns: int | None = None, wall_ms: int | None = None) -> KeyPress:
        """Report a press of `key` (times default to the real clocks); returns what was sent."""
        if key not in self.keys:
            raise KeyError(f"window {self.window} keypad has no key {key!r} ({', '.join(self.keys)})")
        press = KeyPress(
            self.window,
            key,
            time.monotonic_ns() if mono_ns is None else mono_ns,
            time.time_ns() // 1_000_000 if wall_ms is None else wall_ms,
        )
        if self._on_press is not None and not self.closed:
            self._on_press(press)
        return press

    def close(self) -> None:
        """Stop reporting."""
        self.closed = True
        self._on_press = None
