"""Frigate-style motion detection, sized for a Raspberry Pi.

Each frame is reduced to grey at about 100 px height, blurred, and compared with a running
average of past frames; pixels that differ by more than `threshold` are motion, dilated once,
and blobs smaller than `contour_area` are dropped. When most of the picture changes at once
(lights switched, camera bumped, auto-exposure jump) the frame is not motion: the background
is re-seeded from it and the result says ``guard=True`` (Frigate's "lightning" check).

A running average keeps a "ghost" of someone who just left for as long as it takes to
re-learn the empty scene (~20 s at alpha 0.01). Presence therefore uses ``active``: motion
pixels that also differ from the previous frame, i.e. something is moving now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.devices.camera.config import MotionConfig
from agent.devices.camera.source import Frame


def analysis_size(width: int, height: int, frame_height: int) -> tuple[int, int]:
    """(width, height) of the analysis image: `frame_height` high, aspect kept, at least 1 px."""
    h = min(frame_height, height)
    return max(1, round(width * h / height)), h


def is_whole_frame_change(changed_fraction: float, lightning_threshold: float) -> bool:
    """True when so much of the picture changed at once that it is lighting or a moved camera."""
    return changed_fraction >= lightning_threshold


@dataclass
class MotionResult:
    """What one frame showed, at analysis size (see `MotionDetector.size`)."""

    mask: np.ndarray  # uint8 0/255 after contour filtering
    active: np.ndarray | None = None  # part of mask that changed since the
    #                                                    last frame (not a ghost, see module doc)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h
    changed_fraction: float = 0.0  # share of pixels over threshold
    guard: bool = False  # whole-frame change: ignored

    @property
    def has_motion(self) -> bool:
        """True when at least one blob survived the filters."""
        return bool(self.boxes)


class MotionDetector:
    """Grey, downscale, blur, running average, threshold, contours; one instance per camera."""

    def __init__(self, cfg: MotionConfig | None = None):
        self.cfg = cfg or MotionConfig()
        self.size: tuple[int, int] | None = None  # (width, height) of analysis images
        self._avg: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self.guards = 0  # whole-frame changes seen

    def prepare(self, frame: Frame) -> np.ndarray:
        """The blurred grey analysis image of a BGR (or grey) frame."""
        import cv2

        h, w = frame.shape[:2]
        if self.size is None:
            self.size = analysis_size(w, h, self.cfg.frame_height)
        small = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(small, (3, 3), 0)

    def detect(self, frame: Frame) -> MotionResult:
        """Motion in `frame` against the background; updates the background."""
        return self.detect_prepared(self.prepare(frame))

    def detect_prepared(self, gray: np.ndarray) -> MotionResult:
        """Motion in an analysis image from `prepare` (shared with the person-blob heuristic)."""
        import cv2

        prev, self._prev = self._prev, gray
        if self._avg is None:  # the first frame is the background
            self._avg = gray.astype(np.float32)
            return MotionResult(np.zeros_like(gray), np.zeros_like(gray))
        delta = cv2.absdiff(gray, cv2.convertScaleAbs(self._avg))
        _, thresh = cv2.threshold(delta, self.cfg.threshold, 255, cv2.THRESH_BINARY)
        changed = cv2.countNonZero(thresh) / thresh.size
        if is_whole_frame_change(changed, self.cfg.lightning_threshold):
            self.guards += 1
            self._avg = gray.astype(np.float32)  # re-seed: the new light is the new normal
            return MotionResult(np.zeros_like(gray), np.zeros_like(gray), [], changed, guard=True)
        cv2.accumulateWeighted(gray, self._avg, self.cfg.frame_alpha)
        dilated = cv2.dilate(thresh, None, iterations=1)
        contours, _ = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        mask = np.zeros_like(gray)
        boxes = []
        for c in contours:
            if cv2.contourArea(c) >= self.cfg.contour_area:
                boxes.append(tuple(int(v) for v in cv2.boundingRect(c)))
                cv2.drawContours(mask, [c], -1, 255, thickness=-1)
        mask &= dilated  # keep only pixels that really moved
        _, fresh = cv2.threshold(cv2.absdiff(gray, prev), self.cfg.threshold // 2, 255, cv2.THRESH_BINARY)
        active = cv2.bitwise_and(mask, cv2.dilate(fresh, None, iterations=2))
        return MotionResult(mask, active, boxes, changed)

    def reset(self) -> None:
        """Forget the background (after a reconnect the picture may have moved)."""
        self._avg = self._prev = None
