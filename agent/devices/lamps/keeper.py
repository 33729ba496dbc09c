"""LampKeeper: the thin shell that keeps lamps showing the worst light of open cases."""

from __future__ import annotations

from collections.abc import Iterable

from agent.devices import Lamps, Light
from agent.devices.lamps.logic import lamp_changes, window_lights


class LampKeeper:
    """Computes each window's light and sets only the lamps that changed."""

    def __init__(self, lamps: Lamps):
        self.lamps = lamps
        self.shown: dict[str, Light | None] = {}

    def update(self, open_cases: Iterable[tuple[str | None, str | None]]) -> dict[str, Light | None]:
        """Apply (window, light) of the open cases; returns the lamps that were set."""
        wanted = window_lights(open_cases, self.lamps.windows)
        changes = lamp_changes(self.shown, wanted)
        for window, light in changes.items():
            self.lamps.set(window, light)
            self.shown[window] = light
        return changes
