import cv2  # noqa: F401
import numpy as np
import pytest

from agent.devices.camera.config import MotionConfig
from agent.devices.camera.fake import FakeCamera, draw_person
from agent.devices.camera.motion import MotionDetector, analysis_size, is_whole_frame_change


def frames(cam, n):
    return [cam.read() for _ in range(n)]


@pytest.mark.parametrize(
    "w, h, fh, expected", [(640, 360, 100, (178, 100)), (1920, 1080, 100, (178, 100)), (160, 90, 100, (160, 90))]
)
def test_analysis_size_keeps_aspect(w, h, fh, expected):
    assert analysis_size(w, h, fh) == expected


def test_guard_predicate():
    assert is_whole_frame_change(0.85, 0.8) and not is_whole_frame_change(0.3, 0.8)


def test_empty_desk_with_sensor_noise_has_no_motion():
    det = MotionDetector()
    results = [det.detect(f) for f in frames(FakeCamera(noise=3), 30)]
    assert not any(r.has_motion for r in results)
    assert det.size == (178, 100)


def test_person_sized_moving_blob_is_motion():
    det = MotionDetector()
    results = [det.detect(f) for f in frames(FakeCamera(visits=[(2.0, 99)]), 25)]
    assert not any(r.has_motion for r in results[:10])  # 2 s of empty desk
    moving = results[11:]
    assert sum(r.has_motion for r in moving) >= len(moving) - 2
    x, y, w, h = max((b for r in moving for b in r.boxes), key=lambda b: b[2] * b[3])
    assert 20 <= x + w / 2 <= 120 and h >= 20  # around the seat, person-sized


def test_whole_frame_brightness_jump_is_ignored_and_relearned():
    det = MotionDetector()
    cam = FakeCamera(lights=[(2.0, 70)])
    results = [det.detect(f) for f in frames(cam, 25)]
    guarded = [i for i, r in enumerate(results) if r.guard]
    assert guarded == [10]  # the frame at t = 2.0 s
    assert not any(r.has_motion for r in results)  # neither then nor after
    assert det.guards == 1


def test_small_jitter_below_contour_area_is_dropped():
    base = FakeCamera(noise=0).read()
    det = MotionDetector(MotionConfig(contour_area=50))
    det.detect(base)
    speck = base.copy()
    speck[100:104, 100:104] = 255  # ~1 px at analysis size
    assert not det.detect(speck).has_motion


def test_draw_person_changes_pixels_in_place():
    img = np.zeros((360, 640, 3), np.uint8)
    draw_person(img, 320, 120)
    assert img.any()
