"""The hall's cameras wired to the log: presence events (window_unattended/attended with a
JPEG snapshot) become `device.event` records; real cameras also record in segments with
retention. Fake cameras (demo, laptops) produce synthetic frames with a clerk who comes and goes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.devices.camera.capture import CaptureLoop, opencv_opener
from agent.devices.camera.config import CameraConfig, CamerasConfig
from agent.devices.camera.monitor import PresenceMonitor, device_event_body
from agent.devices.camera.watcher import CameraWatcher
from protocol.models import KIND_DEVICE_EVENT

log = logging.getLogger("jiancha.agent.cameras")


def cameras_for(
    board_name: str, configured: CamerasConfig | None, fake_windows: list[str] | None, fake_absent_s: float = 120.0
) -> CamerasConfig:
    """What to watch: agent.yaml's cameras if given, else the board's, else one fake per window."""
    if configured is not None and configured.cameras:
        return configured
    base = configured or CamerasConfig()
    if fake_windows is not None:
        presence = {
            "absent_seconds": fake_absent_s,
            "present_seconds": min(10.0, fake_absent_s / 2),
            "present_gap_seconds": min(15.0, fake_absent_s / 2),
        }
        cams = [
            CameraConfig(
                name=f"win{w}",
                rtsp_url=f"file://fake/win{w}",
                record=False,
                presence=presence,
                regions=[{"window": int(w) if w.isdigit() else w, "rect": (0.0, 0.0, 1.0, 1.0)}],
            )
            for w in fake_windows
        ]
        return base.model_copy(update={"cameras": cams})
    from agent.config import load_board

    return base.model_copy(update={"cameras": [CameraConfig.from_board(c) for c in load_board(board_name).cameras]})


class Cameras:
    """Watchers (one thread per camera), recorders and retention for one site."""

    def __init__(
        self,
        store,
        config: CamerasConfig,
        *,
        fake: bool,
        data_dir: Path,
        calendar,
        clock_quality: Callable[[], str],
        fake_visits: list | None = None,
    ):
        self.store = store
        self.config = config
        self.fake = fake
        self.data_dir = Path(data_dir)
        self.calendar = calendar
        self.clock_quality = clock_quality
        self.fake_visits = fake_visits
        self.watchers: list[CameraWatcher] = []
        self.recorders = []
        self.retention = None
        self.index = None
        self._stop = threading.Event()
        self._housekeeping: threading.Thread | None = None
        self.tickers: list = []  # more periodic work (clip resends)

    def start(self) -> None:
        """Start a watcher per camera; recorders and retention for real cameras."""
        for cam in self.config.cameras:
            monitor = PresenceMonitor(cam, self.config.office_hours, self.calendar, self.clock_quality)
            capture = CaptureLoop(self._opener(cam), cam.capture, name=cam.name)
            watcher = CameraWatcher(capture, monitor, self._on_event)
            watcher.start()
            self.watchers.append(watcher)
        if not self.fake and any(c.record for c in self.config.cameras):
            self._start_recording()
        log.info("%d camera(s) watched%s", len(self.watchers), " (fake)" if self.fake else "")

    def _opener(self, cam: CameraConfig):
        if self.fake:
            from agent.devices.camera.fake import FakeCamera

            if self.fake_visits:
                return lambda: FakeCamera(
                    visits=_repeat(self.fake_visits), clock=time.monotonic, pace=True, seed=sum(map(ord, cam.name))
                )
            return lambda: FakeCamera.demo(seed=sum(map(ord, cam.name)))
        return opencv_opener(cam.rtsp_url, cam.capture)

    def _on_event(self, event: dict) -> None:
        """A window event → a durable device.event record (synced to the hub with its snapshot)."""
        self.store.append(KIND_DEVICE_EVENT, _plain(device_event_body(event)))

    def _start_recording(self) -> None:
        from agent.devices.camera.record.index import RecordingsIndex
        from agent.devices.camera.record.recorder import SegmentRecorder, probe_duration
        from agent.devices.camera.record.retention import Retention, reconcile

        rec = self.config.recording
        root = rec.root if rec.root.is_absolute() else self.data_dir / rec.root
        self.index = RecordingsIndex(root)
        report = reconcile(self.index, probe_duration, clock=self.clock_quality())
        log.info("recordings reconciled: %s", report)
        for cam in self.config.cameras:
            if cam.record:
                r = SegmentRecorder(cam.name, cam.rtsp_url, self.index, rec, clock_quality=self.clock_quality)
                r.start()
                self.recorders.append(r)
        self.retention = Retention(self.index, rec.retention_days, rec.min_free_bytes)
        self._housekeeping = threading.Thread(target=self._housekeep, name="recordings", daemon=True)
        self._housekeeping.start()

    def _housekeep(self) -> None:
        while not self._stop.wait(5.0):
            for r in self.recorders:
                try:
                    r.poll()
                except Exception:
                    log.exception("recorder %s failed", r.camera)
            try:
                self.retention.run_once(int(time.time() * 1000), self.clock_quality())
            except Exception:
                log.exception("retention failed")
            for fn in self.tickers:
                try:
                    fn()
                except Exception:
                    log.exception("periodic task failed")

    def states(self) -> dict[str, str]:
        """Per camera: ok / offline (for heartbeats)."""
        return {f"camera-{w.monitor.cam.name}": "ok" if w.capture.connected else "offline" for w in self.watchers}

    def stop(self) -> None:
        """Stop watchers and recorders."""
        self._stop.set()
        for w in self.watchers:
            w.stop()
        for r in self.recorders:
            try:
                r.stop()
            except Exception:
                log.exception("stopping recorder %s", r.camera)


def _repeat(visits: list, horizon_s: float = 86_400.0) -> list[tuple[float, float]]:
    """A visit schedule repeated for a day (the cycle is the end of the last span plus a gap)."""
    cycle = max(b for _, b in visits) * 1.5
    out, t = [], 0.0
    while t < horizon_s:
        out += [(t + a, t + b) for a, b in visits]
        t += cycle
    return out


def _plain(body: dict) -> dict:
    """Record bodies carry ISO times, not datetime objects."""
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in body.items()}
