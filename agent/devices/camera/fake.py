"""FakeCamera: a synthetic service-window scene for tests, the benchmark and the demo.

An empty desk (wall gradient, counter, monitor, fixed texture) with light sensor noise; during
the scheduled visits a clerk-sized figure (torso and head) sits behind the desk and sways.
Scene time is ``frame index / fps`` (deterministic, for tests) or, with a clock, real time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from agent.devices.camera.source import Frame


def _desk_scene(width: int, height: int, seed: int) -> np.ndarray:
    """The static background: wall, counter with a monitor, a little fixed texture."""
    rng = np.random.default_rng(seed)
    wall = np.linspace(185, 150, height, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(wall, (height, width, 3)).astype(np.float32).copy()
    img[..., 0] -= 10  # a slightly warm wall
    desk_top = int(height * 0.62)
    img[desk_top:, :] = (60, 90, 120)  # brown counter (BGR)
    img[desk_top : desk_top + 4, :] = (40, 60, 80)  # its front edge
    mx0, mx1 = int(width * 0.70), int(width * 0.86)  # monitor on the counter
    img[int(height * 0.40) : desk_top, mx0:mx1] = (30, 30, 30)
    img += rng.normal(0, 4, img.shape).astype(np.float32)  # paint and grain
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_person(
    img: np.ndarray, cx: float, cy: float, scale: float = 1.0, color: tuple[int, int, int] = (90, 40, 30)
) -> None:
    """Draw a seated clerk (torso + head) centred at pixel (cx, cy) of the torso top, in place."""
    import cv2

    h = img.shape[0]
    tw, th = int(0.28 * h * scale), int(0.40 * h * scale)  # torso
    hw, hh = int(0.10 * h * scale), int(0.13 * h * scale)  # head
    x0, y0 = int(cx - tw / 2), int(cy)
    cv2.rectangle(img, (x0, y0), (x0 + tw - 1, y0 + th - 1), color, thickness=-1)
    cv2.ellipse(
        img, (int(cx), int(cy - hh / 2)), (hw // 2, hh // 2), 0, 0, 360, (120, 150, 200), thickness=-1
    )  # skin tone (BGR)
    cv2.rectangle(
        img, (int(cx - hw / 2), int(cy - hh)), (int(cx + hw / 2), int(cy - hh * 0.7)), (20, 20, 20), thickness=-1
    )  # hair


class FakeCamera:
    """CameraSource of synthetic frames: empty desk, or a clerk present during `visits`."""

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        fps: float = 5.0,
        visits: Sequence[tuple[float, float]] = (),
        *,
        seat: tuple[float, float] = (0.4, 0.32),
        sway_px: float = 10.0,
        still: bool = False,
        lights: Sequence[tuple[float, int]] = (),
        noise: int = 2,
        seed: int = 0,
        duration: float | None = None,
        clock: Callable[[], float] | None = None,
        pace: bool = False,
    ):
        """`visits`: (start_s, end_s) spans with the clerk present; `seat`: normalized torso-top
        centre; `still`: the clerk does not move; `lights`: (from_s, brightness delta) steps;
        `pace`: with a clock, `read()` waits for the next frame time like a real camera."""
        self.width, self.height, self.fps = width, height, fps
        self.visits = [tuple(v) for v in visits]
        self.seat = seat
        self.sway_px = 0.0 if still else sway_px
        self.lights = sorted(lights)
        self.noise = noise
        self.duration = duration
        self.clock = clock
        self.pace = pace and clock is not None
        self._t0 = clock() if clock else 0.0
        rng = np.random.default_rng(seed + 1)
        # a bank of noise frames, cycled: per-frame random numbers would dominate the cost
        bank = (
            rng.integers(-noise, noise + 1, size=(7, height, width, 1), dtype=np.int16)
            if noise
            else np.zeros((1, height, width, 1), np.int16)
        )
        self._noise = [
            (
                np.clip(n, 0, None).astype(np.uint8).repeat(3, axis=2),
                np.clip(-n, 0, None).astype(np.uint8).repeat(3, axis=2),
            )
            for n in bank
        ]
        self._bg = _desk_scene(width, height, seed)
        self._desk_top = int(height * 0.62)
        self.index = 0
        self.closed = False

    @classmethod
    def demo(cls, **kw) -> FakeCamera:
        """Real-time demo, every 8 minutes: clerk present 0–60 s, away 60–240 s (long enough
        for "unattended" with the default 120 s), back 240–420 s, away 420–480 s."""
        visits = [(c + a, c + b) for c in range(0, 86_400, 480) for a, b in ((0, 60), (240, 420))]
        return cls(visits=visits, clock=kw.pop("clock", time.monotonic), pace=kw.pop("pace", True), **kw)

    @property
    def t(self) -> float:
        """Scene time of the next frame, seconds."""
        return self.clock() - self._t0 if self.clock else self.index / self.fps

    def is_present(self, t: float) -> bool:
        """True when the schedule has the clerk at the desk at scene time t."""
        return any(a <= t < b for a, b in self.visits)

    def brightness(self, t: float) -> int:
        """Brightness offset in force at scene time t (lights switched)."""
        delta = 0
        for start, d in self.lights:
            if t >= start:
                delta = d
        return delta

    def render(self, t: float) -> np.ndarray:
        """The frame at scene time t (before sensor noise)."""
        img = self._bg.copy()
        if self.is_present(t):
            cx = self.seat[0] * self.width + self.sway_px * math.sin(2 * math.pi * t / 2.5)
            cy = self.seat[1] * self.height + 0.3 * self.sway_px * math.sin(2 * math.pi * t / 1.7)
            draw_person(img, cx, cy)
            img[self._desk_top :, :] = self._bg[self._desk_top :, :]  # the counter hides the legs
        delta = self.brightness(t)
        if delta:
            import cv2

            img = cv2.add(img, (delta,) * 3) if delta > 0 else cv2.subtract(img, (-delta,) * 3)
        return img

    def read(self) -> Frame | None:
        """The next frame, or None once closed or past `duration`."""
        if self.pace:
            wait = self._t0 + self.index / self.fps - self.clock()
            if wait > 0:
                time.sleep(wait)
        t = self.t
        if self.closed or (self.duration is not None and t >= self.duration):
            return None
        img = self.render(t)
        if self.noise:
            import cv2

            up, down = self._noise[self.index % len(self._noise)]
            img = cv2.subtract(cv2.add(img, up), down)
        self.index += 1
        return img

    def close(self) -> None:
        """Stop producing frames."""
        self.closed = True
