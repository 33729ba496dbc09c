"""FakeLamps: lamps without hardware; records every state for the demo and tests."""

from __future__ import annotations

from collections.abc import Iterable

from agent.devices import Light


class FakeLamps:
    """Lamps protocol; `state` is what each lamp shows, `history` every set() in order."""

    def __init__(self, windows: Iterable[str]):
        self.windows = tuple(str(w) for w in windows)
        self.state: dict[str, Light | None] = {w: None for w in self.windows}
        self.history: list[tuple[str, Light | None]] = []
        self.closed = False

    def set(self, window: str, light: Light | None) -> None:
        """Record the light."""
        if str(window) not in self.state:
            raise KeyError(f"window {window!r} has no lamp (lamps: {', '.join(self.windows)})")
        if light not in (None, "green", "yellow", "red"):
            raise ValueError(f"unknown light {light!r}")
        self.state[str(window)] = light
        self.history.append((str(window), light))

    def close(self) -> None:
        """All dark."""
        self.state = {w: None for w in self.windows}
        self.closed = True
