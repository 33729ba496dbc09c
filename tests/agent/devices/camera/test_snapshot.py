import cv2
import numpy as np
import pytest

from agent.devices.camera.snapshot import encode_capped_jpeg


def decode(jpeg):
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_plain_frame_keeps_size_and_good_quality():
    from agent.devices.camera.fake import FakeCamera

    snap = encode_capped_jpeg(FakeCamera().read())
    assert snap.quality == 85 and (snap.width, snap.height) == (640, 360)
    assert len(snap.jpeg) <= 48 * 1024 and decode(snap.jpeg).shape == (360, 640, 3)


def test_noisy_full_hd_frame_is_reduced_until_it_fits():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)  # worst case: pure noise
    snap = encode_capped_jpeg(frame, max_bytes=48 * 1024, max_width=1920)
    assert len(snap.jpeg) <= 48 * 1024
    assert snap.width < 1920  # had to shrink
    assert decode(snap.jpeg).shape == (snap.height, snap.width, 3)
    assert snap.width / snap.height == pytest.approx(16 / 9, rel=0.02)


def test_region_outline_is_drawn_and_dict_shape():
    frame = np.full((360, 640, 3), 128, np.uint8)
    snap = encode_capped_jpeg(frame, outline=[(0.1, 0.1), (0.5, 0.1), (0.5, 0.9), (0.1, 0.9)])
    img = decode(snap.jpeg)
    assert img[36, 200, 2] > 200 and img[180, 200, 2] < 160  # yellow edge, grey inside
    d = snap.as_dict()
    assert set(d) == {"content_type", "width", "height", "quality", "bytes", "jpeg"}


def test_impossible_cap_is_an_error():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError):
        encode_capped_jpeg(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), max_bytes=500)
