"""Devices on the agent (DESIGN §8): the small interfaces every driver and fake implements.

Only driver modules (``*/gpio.py``, ``signs/bx.py``, ``signs/png.py``) import hardware or
imaging libraries, and they do it lazily, so the agent and its tests run on any laptop.

    Keypad   评价器 evaluator keypad: reports key presses by key name   keypads/
    Lamps    红黄绿灯 per-window traffic lamps                          lamps/
    Sign     LED 显示屏 text sign                                       signs/
    CameraSource                                                        camera/ (a colleague's)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - typing only
    from agent.devices.signs.content import SignContent

Light = Literal["green", "yellow", "red"]


@dataclass(frozen=True)
class KeyPress:
    """One key press as the driver saw it, stamped on both clocks at the moment of the edge."""

    window: str
    key: str  # board key name, e.g. "basically_satisfied"
    mono_ns: int  # time.monotonic_ns(): debounce and bursts are judged on this clock
    wall_ms: int  # time.time() in ms: what the record shows; may jump (no RTC on a Pi)


PressCallback = Callable[[KeyPress], None]


@runtime_checkable
class Keypad(Protocol):
    """评价器: one window's evaluator keypad; calls back with every raw key press."""

    window: str
    keys: tuple[str, ...]

    def start(self, on_press: PressCallback) -> None:
        """Begin reporting presses to `on_press` (may be called from a driver thread)."""

    def close(self) -> None:
        """Release the pins; no callback happens afterwards."""


@runtime_checkable
class Lamps(Protocol):
    """Traffic lamps above the windows: one light (or dark) per window."""

    windows: tuple[str, ...]

    def set(self, window: str, light: Light | None) -> None:
        """Show `light` on the window's lamp; None switches it off (no open cases)."""

    def close(self) -> None:
        """Switch all lamps off and release the pins."""


@runtime_checkable
class Sign(Protocol):
    """LED text sign: shows one window's content; writes only what changed, rate-limited."""

    windows: tuple[str, ...]

    def show(self, content: SignContent, now_mono: float | None = None) -> bool:
        """Offer new content for `content.window`; True if something was written now."""

    def flush(self, now_mono: float | None = None) -> bool:
        """Write content held back by the rate limit once allowed; True if written."""

    def close(self) -> None:
        """Release the connection or files."""


# CameraSource: defined by a colleague in agent/devices/camera/ (ONVIF discovery, OpenCV
# capture, snapshots). Import it from there; it is deliberately not redefined here.

__all__ = ["Keypad", "KeyPress", "Lamps", "Light", "PressCallback", "Sign"]
