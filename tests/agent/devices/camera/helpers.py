"""Shared test helpers for the camera package: a fake clock, ffmpeg-made videos, skips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HAS_FFMPEG = bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


def requires_ffmpeg(fn):
    """ffmpeg is a hard requirement of the recorder (bootstrap installs it): fail loudly without it."""
    return fn


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


def make_video(path: Path, seconds: float = 2.0, fps: int = 10, size: str = "160x120", gop: int | None = None) -> Path:
    """A small real H.264 MP4 (ffmpeg testsrc), keyframe every `gop` frames (default: 1 s)."""
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    codec = (
        ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        if "libx264" in encoders
        else ["-c:v", "mpeg4"]
    )
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate={fps}",
            "-t",
            str(seconds),
            *codec,
            "-g",
            str(gop or fps),
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path
