"""The camera seam: anything that hands out frames (an RTSP stream, a file, a synthetic scene).

A frame is a numpy ``uint8`` array of shape (height, width, 3) in OpenCV's BGR order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

    Frame = np.ndarray
else:
    Frame = Any


@runtime_checkable
class CameraSource(Protocol):
    """A source of BGR frames; `read()` never blocks longer than the driver's read timeout."""

    def read(self) -> Frame | None:
        """The next frame, or None when none came (timeout, end of stream, broken connection)."""

    def close(self) -> None:
        """Release the stream; `read()` returns None afterwards."""
