from datetime import datetime, timedelta

import cv2  # noqa: F401

from agent.devices.camera.capture import CaptureLoop
from agent.devices.camera.config import CameraConfig, OfficeHours
from agent.devices.camera.fake import FakeCamera
from agent.devices.camera.monitor import PresenceMonitor
from agent.devices.camera.watcher import CameraWatcher, is_analysis_due
from protocol.calendar import CST


def test_is_analysis_due():
    assert is_analysis_due(None, 5.0, 5.0)
    assert not is_analysis_due(5.0, 5.1, 5.0) and is_analysis_due(5.0, 5.2, 5.0)


def test_watcher_analyses_at_fps_and_delivers_events(clock):
    cfg = CameraConfig(
        name="win1",
        rtsp_url="rtsp://cam/1",
        regions=[{"window": 1, "rect": (0.2, 0.05, 0.65, 0.7)}],
        presence={"absent_seconds": 5, "present_gap_seconds": 2},
        capture={"fps": 5},
    )
    wall0 = datetime(2025, 6, 3, 10, 0, tzinfo=CST)
    fake = FakeCamera(fps=25, clock=clock)  # the camera sends 25 fps
    got, calls = [], []

    def on_event(e):
        calls.append(e)
        raise RuntimeError("broker down")  # must not stop the camera

    w = CameraWatcher(
        CaptureLoop(lambda: fake, cfg.capture, clock),
        PresenceMonitor(cfg, OfficeHours()),
        on_event,
        clock=clock,
        wall=lambda: wall0 + timedelta(seconds=clock() - 1000.0),
    )
    for _ in range(25 * 8):
        got += w.step()
        clock.advance(1 / 25)
    assert w.frames == 200 and 39 <= w.analysed <= 41  # 8 s at 5 fps
    assert [e["type"] for e in got] == ["window_unattended"] and len(calls) == 1
    assert w.events == 1


def test_watcher_thread_starts_and_stops():
    import time

    fake = FakeCamera(fps=50, clock=time.monotonic, pace=True)
    cfg = CameraConfig(name="demo", rtsp_url="file:///fake", regions=[{"window": 1, "rect": (0, 0, 1, 1)}])
    w = CameraWatcher(CaptureLoop(lambda: fake, cfg.capture), PresenceMonitor(cfg, OfficeHours()), lambda e: None)
    w.start()
    time.sleep(0.3)
    w.stop()
    assert w.frames >= 5 and fake.closed
