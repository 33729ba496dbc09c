"""Pulling frames: an OpenCV/FFmpeg driver with timeouts, and a watchdog that reconnects.

OpenCV's ``read()`` on an RTSP stream can block forever when the camera stops sending; the
driver therefore always opens with ``CAP_FFMPEG`` and both the open and the read timeout.
`CaptureLoop` is the maintainer: it opens lazily, counts failures, waits `next_backoff`
between attempts (the first connection included) and rebuilds the connection when
`should_restart` says no frame came for too long. Both decisions are pure functions.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from agent.devices.camera.config import CaptureConfig
from agent.devices.camera.source import CameraSource, Frame

log = logging.getLogger(__name__)


def next_backoff(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before connection attempt `attempt` (1 = first retry): base·2^(n-1), capped."""
    if attempt <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(attempt - 1, 30))


def should_restart(last_frame_mono: float, now_mono: float, timeout: float) -> bool:
    """True when the last frame (or the moment the stream opened) is `timeout` seconds old."""
    return now_mono - last_frame_mono >= timeout


class CaptureOpenError(RuntimeError):
    """The stream could not be opened (unreachable, refused, wrong URL or credentials)."""


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*):[^\s@/'\"]*@")


def url_password(url: str) -> str | None:
    """The password in the URL's userinfo (as written, still URL-quoted), or None."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text (a log line, ffmpeg's stderr) with URL passwords and the given secrets as ***."""
    from urllib.parse import unquote

    text = _USERINFO.sub(r"\1:***@", text)
    for s in secrets:
        for form in {s, unquote(s)}:
            if form:
                text = text.replace(form, "***")
    return text


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and errors."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


class OpenCVCapture:
    """CameraSource over ``cv2.VideoCapture(url, CAP_FFMPEG, [open/read timeouts])``."""

    def __init__(
        self, url: str, open_timeout_ms: int = 10_000, read_timeout_ms: int = 5_000, rtsp_transport: str = "tcp"
    ):
        import cv2  # lazy: only this driver needs OpenCV

        # FFmpeg options for OpenCV's backend are process-wide; set TCP unless the operator set them.
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{rtsp_transport}")
        self.url = url
        self._cap = cv2.VideoCapture(
            url,
            cv2.CAP_FFMPEG,
            [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(open_timeout_ms),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(read_timeout_ms),
            ],
        )
        if not self._cap.isOpened():
            self._cap.release()
            raise CaptureOpenError(f"cannot open {redact_url(url)} (timeout {open_timeout_ms} ms)")

    def read(self) -> Frame | None:
        """The next decoded frame, or None (read timeout, end of stream, closed)."""
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        """Release the FFmpeg context (idempotent)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def opencv_opener(url: str, cfg: CaptureConfig) -> Callable[[], CameraSource]:
    """A no-argument opener for `CaptureLoop` that builds an `OpenCVCapture` from settings."""
    return lambda: OpenCVCapture(url, cfg.open_timeout_ms, cfg.read_timeout_ms, cfg.rtsp_transport)


class CaptureLoop:
    """Watchdog and reconnect around a source: call `step()` in the camera's thread."""

    def __init__(
        self,
        open_source: Callable[[], CameraSource],
        cfg: CaptureConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "camera",
    ):
        self.open_source = open_source
        self.cfg = cfg or CaptureConfig()
        self.clock = clock
        self.name = name
        self.source: CameraSource | None = None
        self.failures = 0  # consecutive failed opens / stalled streams
        self.retry_at = 0.0  # monotonic time of the next open attempt
        self.last_frame = 0.0  # monotonic time of the last frame (or of the open)
        self.opens = 0  # successful opens (1 + reconnects)
        self.last_error = ""

    @property
    def connected(self) -> bool:
        """True while a stream is open."""
        return self.source is not None

    def _fail(self, now: float, why: str) -> None:
        self.failures += 1
        delay = next_backoff(self.failures, self.cfg.backoff_base_seconds, self.cfg.backoff_max_seconds)
        self.retry_at = now + delay
        self.last_error = why
        log.warning("%s: %s; retry in %.1f s (failure %d)", self.name, why, delay, self.failures)

    def _drop(self) -> None:
        if self.source is not None:
            try:
                self.source.close()
            except Exception:  # a broken driver must not stop the loop
                log.exception("%s: close failed", self.name)
            self.source = None

    def step(self) -> Frame | None:
        """Open if due, read one frame; on a stall close and schedule a reconnect. Never raises."""
        now = self.clock()
        if self.source is None:
            if now < self.retry_at:
                return None
            try:
                self.source = self.open_source()
            except Exception as exc:
                self._fail(now, f"open failed: {exc}")
                return None
            self.opens += 1
            self.last_frame = now  # the watchdog counts from the open
        try:
            frame = self.source.read()
        except Exception as exc:
            frame = None
            self.last_error = f"read failed: {exc}"
        now = self.clock()
        if frame is not None:
            self.last_frame = now
            self.failures = 0
            return frame
        if should_restart(self.last_frame, now, self.cfg.watchdog_seconds):
            self._drop()
            self._fail(now, f"no frame for {now - self.last_frame:.1f} s")
        return None

    def close(self) -> None:
        """Close the current stream; a later `step()` reopens it."""
        self._drop()
