"""Which light a window's lamp shows: the worst light of that window's open cases. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.devices import Light

_RANK = {"green": 0, "yellow": 1, "red": 2}


def worst_light(lights: Iterable[str | None]) -> Light | None:
    """Worst of the lights (red > yellow > green); None when there is none (lamp dark)."""
    worst: str | None = None
    for light in lights:
        if light is None:
            continue
        if light not in _RANK:
            raise ValueError(f"unknown light {light!r}; expected green, yellow or red")
        if worst is None or _RANK[light] > _RANK[worst]:
            worst = light
    return worst  # type: ignore[return-value]


def window_lights(cases: Iterable[tuple[str | None, str | None]], windows: Iterable[str]) -> dict[str, Light | None]:
    """Lamp state per window from (window, light) of the open cases; windows without cases dark."""
    per: dict[str, list[str | None]] = {str(w): [] for w in windows}
    for window, light in cases:
        if window is not None and str(window) in per:
            per[str(window)].append(light)
    return {w: worst_light(ls) for w, ls in per.items()}


def lamp_changes(shown: Mapping[str, Light | None], wanted: Mapping[str, Light | None]) -> dict[str, Light | None]:
    """Only the windows whose lamp must change (a window never set counts as changed)."""
    return {w: light for w, light in wanted.items() if w not in shown or shown[w] != light}


def lamp_pattern(light: Light | None) -> tuple[bool, bool, bool]:
    """(red, yellow, green) on/off for a light; exactly one lamp on, or none."""
    return (light == "red", light == "yellow", light == "green")
