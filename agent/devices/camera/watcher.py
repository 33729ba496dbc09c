"""CameraWatcher: the per-camera loop (capture -> analyse at `fps` -> events) in its own thread.

OpenCV decoding blocks, so each camera runs in a thread; events go to `on_event`, which the
agent wires to its outbox/MQTT. Decisions live elsewhere (`capture`, `presence`); this class
only fetches, calls and hands over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from agent.devices.camera.capture import CaptureLoop
from agent.devices.camera.monitor import PresenceMonitor

log = logging.getLogger(__name__)


def is_analysis_due(last_analysed: float | None, now: float, fps: float) -> bool:
    """True when a frame at `now` should be analysed to keep the analysis rate at `fps`."""
    return last_analysed is None or now - last_analysed >= 1.0 / fps - 1e-6


class CameraWatcher:
    """Runs one camera: `start()` a thread, `stop()` it; counters for health reporting."""

    def __init__(
        self,
        capture: CaptureLoop,
        monitor: PresenceMonitor,
        on_event: Callable[[dict], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.capture = capture
        self.monitor = monitor
        self.on_event = on_event
        self.clock = clock
        self.wall = wall
        self.frames = 0
        self.analysed = 0
        self.events = 0
        self._last: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> list[dict]:
        """One capture step; analyse the frame if due; deliver and return its events."""
        frame = self.capture.step()
        if frame is None:
            return []
        self.frames += 1
        now = self.clock()
        if not is_analysis_due(self._last, now, self.monitor.cam.capture.fps):
            return []
        self._last = now
        self.analysed += 1
        events = self.monitor.process(frame, now, self.wall())
        for e in events:
            self.events += 1
            try:
                self.on_event(e)
            except Exception:
                log.exception("%s: event handler failed", self.monitor.cam.name)
        return events

    def run(self) -> None:
        """Loop until `stop()`; sleeps through backoff instead of spinning."""
        while not self._stop.is_set():
            frames = self.frames
            self.step()
            if not self.capture.connected:
                self._stop.wait(max(0.05, self.capture.retry_at - self.clock()))
            elif self.frames == frames:
                self._stop.wait(0.02)  # a source that returns at once without a frame

    def start(self) -> None:
        """Start the camera thread."""
        self._thread = threading.Thread(target=self.run, name=f"camera-{self.monitor.cam.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the current read returns) and close the stream."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self.capture.close()
