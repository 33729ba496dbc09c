"""Cameras (DESIGN §8): ONVIF discovery, capture, motion, window presence, recording, clips.

    source.py       CameraSource protocol (read() -> frame | None, close())
    capture.py      OpenCVCapture driver (CAP_FFMPEG, open/read timeouts), CaptureLoop watchdog,
                    next_backoff / should_restart
    fake.py         FakeCamera: synthetic desk scene with a clerk schedule (tests, bench, demo)
    discovery.py    WS-Discovery probe and ProbeMatch parsing
    onvif_device.py OnvifDevice (onvif-zeep-async): device info, profiles, stream/snapshot URIs
    motion.py       Frigate-style motion with a whole-frame-change guard
    person.py       optional person-blob heuristic (selective background)
    presence.py     presence_state, office_event, is_office_hours, region masks (pure)
    monitor.py      PresenceMonitor: frames -> window_unattended / window_attended events
    snapshot.py     size-capped JPEG snapshots
    watcher.py      CameraWatcher: the per-camera thread
    record/         ffmpeg segments, recordings.db index, retention, reconcile, clip uploads
    config.py       pydantic settings

Only driver modules import OpenCV, numpy, ffmpeg or onvif, and lazily where it matters, so
importing this package costs nothing on a box without cameras.
"""

from agent.devices.camera.source import CameraSource, Frame

__all__ = ["CameraSource", "Frame"]
