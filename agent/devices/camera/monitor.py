"""PresenceMonitor: motion + regions + hysteresis + office hours -> window events with a snapshot.

One monitor per camera; a camera may watch several windows (one region each). Feed it analysed
frames with both clocks; it returns the events to publish, each a plain dict:

    {"type": "window_unattended" | "window_attended", "camera": "win1", "window": 1,
     "at_ms": wall ms of the decision, "since_ms": wall ms the condition began,
     "unattended_s": whole seconds without presence (so far, or the episode that just ended),
     "clock": "ntp" | "hub" | "untrusted", "snapshot": Snapshot.as_dict()}

Integers only (records carry no floats). `device_event_body` maps an event onto the body of
a ``device.event`` record (protocol.models.DeviceEvent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from agent.devices.camera.config import CameraConfig, OfficeHours
from agent.devices.camera.motion import MotionDetector, MotionResult
from agent.devices.camera.person import PersonBlobDetector
from agent.devices.camera.presence import (
    WINDOW_ATTENDED,
    PresenceState,
    initial_state,
    is_office_hours,
    office_event,
    presence_state,
    region_activity,
    region_mask,
)
from agent.devices.camera.snapshot import encode_capped_jpeg
from agent.devices.camera.source import Frame

log = logging.getLogger(__name__)


@dataclass
class WindowWatch:
    """Per-window bookkeeping inside a monitor."""

    window: int
    points: list[tuple[float, float]]
    mask: np.ndarray | None = None
    state: PresenceState | None = None
    episode_open: bool = False
    activity: float = 0.0  # last frame's moving share of the region
    blob: bool = False  # last frame's person-blob verdict


class PresenceMonitor:
    """Turns one camera's frames into window events (see module doc for the event shape)."""

    def __init__(
        self, cam: CameraConfig, office: OfficeHours, calendar=None, clock_quality: Callable[[], str] = lambda: "ntp"
    ):
        if calendar is None:
            from protocol.calendar import default_calendar

            calendar = default_calendar()
        self.cam = cam
        self.office = office
        self.calendar = calendar
        self.clock_quality = clock_quality
        self.motion = MotionDetector(cam.motion)
        self.person = (
            PersonBlobDetector(cam.presence, cam.motion, cam.capture.fps) if cam.presence.person_blob else None
        )
        self.windows = [WindowWatch(r.window, r.points()) for r in cam.regions]
        self.last: MotionResult | None = None

    def observe(self, frame: Frame) -> MotionResult:
        """Run motion (and the blob heuristic) on a frame; updates each window's observation."""
        gray = self.motion.prepare(frame)
        result = self.motion.detect_prepared(gray)
        fg = self.person.update(gray, result.guard) if self.person else None
        for w in self.windows:
            if w.mask is None:
                w.mask = region_mask(w.points, self.motion.size)
            w.activity = 0.0 if result.guard else region_activity(result.active, w.mask)
            w.blob = bool(fg is not None and not result.guard and self.person.person_in(fg, w.mask))
        self.last = result
        return result

    def process(self, frame: Frame, now_mono: float, now_wall: datetime) -> list[dict]:
        """Observe one frame and return the events it causes (usually none)."""
        self.observe(frame)
        in_hours = is_office_hours(now_wall, self.office, self.calendar)
        events = []
        for w in self.windows:
            present = w.activity >= self.cam.presence.min_activity_fraction or w.blob
            prev = w.state or initial_state(now_mono)
            w.state, change = presence_state(prev, present, now_mono, self.cam.presence)
            kind, w.episode_open = office_event(change, w.state.status, in_hours, w.episode_open)
            if kind:
                events.append(self._event(kind, w, prev, frame, now_mono, now_wall))
        return events

    def _event(
        self, kind: str, w: WindowWatch, prev: PresenceState, frame: Frame, now_mono: float, now_wall: datetime
    ) -> dict:
        """The event dict, with a size-capped snapshot of this frame."""
        at_ms = int(now_wall.timestamp() * 1000)
        since = w.state.since
        if kind == WINDOW_ATTENDED:
            unattended_s = w.state.since - prev.since  # the episode that just ended
        else:
            unattended_s = now_mono - since
        snap = encode_capped_jpeg(
            frame,
            self.cam.snapshot.max_bytes,
            self.cam.snapshot.max_width,
            w.points if self.cam.snapshot.draw_region else None,
        )
        event = {
            "type": kind,
            "camera": self.cam.name,
            "window": w.window,
            "at_ms": at_ms,
            "since_ms": at_ms - int((now_mono - since) * 1000),
            "unattended_s": int(round(max(0.0, unattended_s))),
            "clock": self.clock_quality(),
            "snapshot": snap.as_dict(),
        }
        log.info("%s window %s: %s (%.0f s)", self.cam.name, w.window, kind, unattended_s)
        return event


def device_event_body(event: dict) -> dict:
    """The body of a ``device.event`` record for a window event (JPEG as the snapshot bytes)."""
    snap = event["snapshot"]
    return {
        "device": event["camera"],
        "event": event["type"],
        "window": str(event["window"]),
        "at": datetime.fromtimestamp(event["at_ms"] / 1000, UTC),
        "detail": {
            "since_ms": event["since_ms"],
            "unattended_s": event["unattended_s"],
            "clock": event["clock"],
            "snapshot_width": snap["width"],
            "snapshot_height": snap["height"],
            "snapshot_quality": snap["quality"],
        },
        "snapshot": snap["jpeg"],
    }
