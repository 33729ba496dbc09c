"""Optional person-blob heuristic: a clerk who sits still still counts as present.

Motion alone loses a clerk who reads without moving: the running average absorbs them within
a minute. This heuristic keeps a second, *selective* background that is only updated where
nothing stands out (so a still figure is not learned), plus a very slow update everywhere
(`absorb_seconds`) so a moved chair or a new plant ("ghost") fades in the end. A blob counts
as a person when it overlaps the region by a person-like share of its area and is upright.

Limits (see docs/cameras.md): it is not a person detector. A coat on the chair, a moved chair
or a parcel counts until absorbed; a clerk dressed like the wall is missed; a clerk already
sitting when the box starts is learned as background until they get up once.
"""

from __future__ import annotations

import numpy as np

from agent.devices.camera.config import MotionConfig, PresenceConfig

FOLLOW_ALPHA = 0.02  # how fast the background follows slow light drift where empty


def absorb_alpha(absorb_seconds: float, fps: float) -> float:
    """Per-frame weight that blends a still blob 95 % into the background in `absorb_seconds`."""
    n = max(1.0, absorb_seconds * fps)
    return 1.0 - 0.05 ** (1.0 / n)


def is_person_blob(overlap_fraction: float, box_w: int, box_h: int, cfg: PresenceConfig) -> bool:
    """True for a blob covering a person-like share of the region that is not lying flat."""
    return cfg.blob_min_fraction <= overlap_fraction <= cfg.blob_max_fraction and box_h * 2 >= box_w


class PersonBlobDetector:
    """Selective background over the motion detector's analysis images."""

    def __init__(self, presence: PresenceConfig, motion: MotionConfig, fps: float):
        self.cfg = presence
        self.threshold = motion.threshold
        self.absorb = absorb_alpha(presence.absorb_seconds, fps)
        self._ref: np.ndarray | None = None

    def update(self, gray: np.ndarray, guard: bool = False) -> np.ndarray:
        """Foreground mask (0/255) of `gray` against the reference; then updates the reference."""
        import cv2

        if self._ref is None or guard:
            self._ref = gray.astype(np.float32)
            return np.zeros_like(gray)
        diff = cv2.absdiff(gray, cv2.convertScaleAbs(self._ref))
        _, fg = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        fg = cv2.dilate(fg, None, iterations=2)
        cv2.accumulateWeighted(gray, self._ref, FOLLOW_ALPHA, mask=cv2.bitwise_not(fg))
        cv2.accumulateWeighted(gray, self._ref, self.absorb)
        return fg

    def person_in(self, fg: np.ndarray, region: np.ndarray) -> bool:
        """True when a person-like blob of `fg` stands in `region` (both at analysis size)."""
        import cv2

        area = cv2.countNonZero(region)
        if not area:
            return False
        inside = cv2.bitwise_and(fg, region)
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            if is_person_blob(cv2.contourArea(c) / area, w, h, self.cfg):
                return True
        return False
