from datetime import datetime, timedelta

import cv2
import numpy as np
import pytest

from agent.devices.camera.config import CameraConfig, OfficeHours
from agent.devices.camera.fake import FakeCamera
from agent.devices.camera.monitor import PresenceMonitor, device_event_body
from protocol.calendar import CST

FPS = 5
SEAT = {"window": 1, "rect": (0.2, 0.05, 0.65, 0.7)}
TUESDAY_9 = datetime(2025, 6, 3, 9, 0, tzinfo=CST)


def small(**kw):
    """The synthetic scene at 320x180: the same analysis image (~178x100), a quarter the work."""
    return FakeCamera(width=320, height=180, fps=FPS, **kw)


def camera(**presence):
    p = {"absent_seconds": 20, "present_seconds": 5, "present_gap_seconds": 4, **presence}
    return CameraConfig(name="win1", rtsp_url="rtsp://cam/1", regions=[SEAT], presence=p)


def simulate(cam_cfg, fake, seconds, wall0=TUESDAY_9, clock_quality=lambda: "ntp"):
    """Feed `seconds` of the fake scene at 5 fps with both clocks; return the events."""
    mon = PresenceMonitor(cam_cfg, OfficeHours(), clock_quality=clock_quality)
    events = []
    for i in range(int(seconds * FPS)):
        t = i / FPS
        events += mon.process(fake.read(), 1000.0 + t, wall0 + timedelta(seconds=t))
    return mon, events


def at(event, wall0=TUESDAY_9):
    return (event["at_ms"] - int(wall0.timestamp() * 1000)) / 1000


def test_clerk_leaves_and_returns_during_office_hours():
    fake = small(visits=[(0, 30), (80, 120)])
    mon, events = simulate(camera(), fake, 100)
    assert [e["type"] for e in events] == ["window_unattended", "window_attended"]
    away, back = events
    assert 49 <= at(away) <= 51  # last movement ~30 s + N = 20 s
    assert away["unattended_s"] == pytest.approx(20, abs=0.5)
    assert (away["at_ms"] - away["since_ms"]) / 1000 == pytest.approx(20, abs=0.5)
    assert 84 <= at(back) <= 86  # back at 80 s + M = 5 s
    assert back["unattended_s"] == pytest.approx(50, abs=1.5)
    assert {k for k in away} == {"type", "camera", "window", "at_ms", "since_ms", "unattended_s", "clock", "snapshot"}
    assert away["camera"] == "win1" and away["window"] == 1 and away["clock"] == "ntp"


def test_snapshot_is_a_capped_jpeg_of_the_moment():

    fake = FakeCamera(fps=FPS, visits=[(0, 10)], noise=12)  # full size
    _, events = simulate(camera(), fake, 35)
    snap = events[0]["snapshot"]
    assert snap["content_type"] == "image/jpeg" and snap["bytes"] == len(snap["jpeg"]) <= 48 * 1024
    img = cv2.imdecode(np.frombuffer(snap["jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (snap["height"], snap["width"], 3) == (360, 640, 3)


def test_no_events_outside_office_hours():
    fake = small(visits=[(0, 10)])
    mon, events = simulate(camera(), fake, 60, wall0=datetime(2025, 6, 3, 12, 10, tzinfo=CST))
    assert events == [] and mon.windows[0].state.status == "unattended"


def test_office_hours_opening_with_an_empty_desk_is_reported_at_opening():
    wall0 = datetime(2025, 6, 3, 8, 29, 30, tzinfo=CST)
    _, events = simulate(camera(), small(), 40, wall0=wall0)
    assert [e["type"] for e in events] == ["window_unattended"]
    assert at(events[0], wall0) == pytest.approx(30, abs=0.3)  # 08:30:00
    assert events[0]["since_ms"] == int(wall0.timestamp() * 1000)  # empty since start-up


def test_lights_switched_on_in_an_empty_hall_is_not_a_clerk():
    fake = small(lights=[(30, 70), (45, -40)])
    mon, events = simulate(camera(), fake, 60)
    assert [e["type"] for e in events] == ["window_unattended"]
    assert mon.motion.guards == 2


def test_still_clerk_fades_from_motion_but_not_from_the_blob_heuristic():
    visits = [(5, 200)]
    _, plain = simulate(camera(), small(visits=visits, still=True), 90)
    _, blob = simulate(camera(person_blob=True), small(visits=visits, still=True), 90)
    assert [e["type"] for e in plain] == ["window_unattended"]  # a documented limit of motion
    assert blob == []


def test_untrusted_clock_is_stamped_on_events():
    _, events = simulate(camera(), small(), 25, clock_quality=lambda: "untrusted")
    assert events[0]["clock"] == "untrusted"


def test_movement_outside_the_region_is_not_presence():
    cfg = camera()
    cfg.regions[0] = cfg.regions[0].model_copy(update={"rect": (0.75, 0.05, 0.99, 0.5)})
    fake = small(visits=[(0, 60)])  # clerk sits at x = 0.4, region right
    mon, events = simulate(cfg, fake, 30)
    assert [e["type"] for e in events] == ["window_unattended"]


def test_events_are_integer_only_and_map_onto_device_event_records():
    from protocol.models import DeviceEvent
    from protocol.records import canonical_value

    _, events = simulate(camera(), small(visits=[(0, 10), (40, 60)]), 50)
    assert [e["type"] for e in events] == ["window_unattended", "window_attended"]
    for e in events:
        canonical_value({k: v for k, v in e.items() if k != "snapshot"})  # no floats
        body = device_event_body(e)
        rec = DeviceEvent.model_validate(body)
        assert rec.window == "1" and rec.device == "win1" and rec.snapshot == e["snapshot"]["jpeg"]
        assert int(rec.at.timestamp() * 1000) == e["at_ms"]
        canonical_value(body["detail"])
