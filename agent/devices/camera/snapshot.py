"""Event snapshots: a JPEG that always fits the size cap (48 KB by default).

Quality is lowered first (85 → 30), then the picture is scaled down by a quarter and the
qualities are tried again, until the JPEG fits; a frame that cannot fit even at 80 px wide
is an error (it does not happen with camera pictures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

QUALITIES = (85, 75, 65, 55, 45, 35, 30)
SCALE_STEP = 0.75
MIN_WIDTH = 80


@dataclass(frozen=True)
class Snapshot:
    """An encoded JPEG and how it was made."""

    jpeg: bytes
    width: int
    height: int
    quality: int

    def as_dict(self) -> dict:
        """The event's ``snapshot`` field."""
        return {
            "content_type": "image/jpeg",
            "width": self.width,
            "height": self.height,
            "quality": self.quality,
            "bytes": len(self.jpeg),
            "jpeg": self.jpeg,
        }


def encode_capped_jpeg(
    frame: np.ndarray,
    max_bytes: int = 48 * 1024,
    max_width: int = 640,
    outline: Sequence[tuple[float, float]] | None = None,
) -> Snapshot:
    """JPEG of `frame` no larger than `max_bytes`; `outline`: normalized polygon to draw."""
    import cv2

    img = frame
    if img.shape[1] > max_width:
        img = cv2.resize(img, (max_width, round(img.shape[0] * max_width / img.shape[1])), interpolation=cv2.INTER_AREA)
    while True:
        h, w = img.shape[:2]
        drawn = img
        if outline:
            drawn = img.copy()
            pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in outline], np.int32)
            cv2.polylines(drawn, [pts], True, (0, 255, 255), max(1, w // 320))
        for q in QUALITIES:
            ok, buf = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok and len(buf) <= max_bytes:
                return Snapshot(buf.tobytes(), w, h, q)
        nw = int(w * SCALE_STEP)
        if nw < MIN_WIDTH:
            raise ValueError(f"cannot fit a JPEG into {max_bytes} bytes")
        img = cv2.resize(img, (nw, max(1, round(h * nw / w))), interpolation=cv2.INTER_AREA)
