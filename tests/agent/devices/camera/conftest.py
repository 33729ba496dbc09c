"""Fixtures for the camera tests; everything runs locally (127.0.0.1, temp folders)."""

from __future__ import annotations

import pytest

from .helpers import HAS_FFMPEG, FakeClock, make_video


@pytest.fixture
def clock():
    """A hand-moved monotonic clock."""
    return FakeClock()


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory):
    """A 2-second 160x120 H.264 file made once per session with ffmpeg."""
    assert HAS_FFMPEG, "ffmpeg/ffprobe missing: apt-get install ffmpeg (bootstrap does)"
    return make_video(tmp_path_factory.mktemp("video") / "tiny.mp4")
