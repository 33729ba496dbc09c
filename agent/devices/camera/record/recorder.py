"""SegmentRecorder: ffmpeg copies the camera stream into segments; we validate, file and index them.

ffmpeg (``-f segment -segment_time 60 -strftime 1 -reset_timestamps 1 -c copy``, no
re-encoding, so a Pi records several cameras) writes into ``<root>/.incoming`` with the UTC
start time in the name. A segment is complete once ffmpeg has opened the next one (or has
exited); then it is checked with ffprobe, moved into its ``YYYY-MM-DD/HH/`` folder (same disk:
an atomic rename) and indexed. A segment ffprobe cannot read is a partial write and is
deleted. When ffmpeg exits, or no segment completes for `stall_seconds`, it is restarted
after `next_backoff`.

Camera passwords never reach ffmpeg's command line (world-readable in ``ps`` and
``/proc/PID/cmdline``): a URL with credentials is handed over on ffmpeg's stdin as a
one-entry ffconcat script (``-f concat -safe 0 -i pipe:0``), whose ``option`` lines carry the
RTSP options; the concat demuxer opens the RTSP URL in-process. ffmpeg's stderr is copied
to ``<camera>.ffmpeg.log`` (0600) with passwords replaced by ``***``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from agent.devices.camera.capture import next_backoff, redact_text, redact_url, should_restart, url_password
from agent.devices.camera.config import RecordingConfig
from agent.devices.camera.record.index import RecordingsIndex, Segment
from agent.devices.camera.record.layout import (
    CACHE_PATTERN,
    INCOMING,
    parse_cache_name,
    resolve_inside,
    segment_relpath,
)

log = logging.getLogger(__name__)


RTSP_OPTIONS = {"rtsp_transport": "tcp", "timeout": "10000000"}  # timeout in µs: a silent
#                                          camera ends ffmpeg, and poll() restarts it
# protocols the concat demuxer may open for the camera (pipe: the script itself)
STDIN_WHITELIST = "pipe,rtsp,rtsps,rtp,srtp,tcp,udp,tls,http,https,httpproxy,crypto"
LOG_MAX_BYTES = 256 * 1024  # ffmpeg's stderr copy starts over beyond this


class FfmpegRun(NamedTuple):
    """What to start: argv (no secrets in it) and the bytes to write to ffmpeg's stdin."""

    argv: list[str]
    stdin: bytes | None


def _concat_escape(value: str) -> str:
    """One ffconcat token: all but letters and digits backslash-escaped (read by av_get_token)."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("camera URL contains a line break")
    return "".join(c if c.isascii() and c.isalnum() else "\\" + c for c in value)


def ffmpeg_run(
    input_url: str,
    incoming: Path,
    camera: str,
    segment_seconds: int = 60,
    *,
    input_args: Sequence[str] | None = None,
    ffmpeg: str = "ffmpeg",
) -> FfmpegRun:
    """How to run ffmpeg so that it records `input_url` into segments in `incoming` (with TZ=UTC).

    Without a password the URL is ffmpeg's `-i`. With one, argv says ``-i pipe:0`` and the URL
    goes to stdin in an ffconcat script, the RTSP options as its ``option`` lines.
    """
    rtsp = input_url.startswith(("rtsp://", "rtsps://"))
    output = [
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_time",
        str(segment_seconds),
        "-segment_format",
        "mp4",
        "-reset_timestamps",
        "1",
        "-strftime",
        "1",
        str(Path(incoming) / CACHE_PATTERN.format(camera=camera)),
    ]
    head = [ffmpeg, "-hide_banner", "-loglevel", "warning"]
    if url_password(input_url) is None:
        if input_args is None:
            input_args = [a for k, v in RTSP_OPTIONS.items() for a in (f"-{k}", v)] if rtsp else []
        return FfmpegRun([*head, "-nostdin", *input_args, "-i", input_url, *output], None)
    lines = ["ffconcat version 1.0", f"file {_concat_escape(input_url)}"]
    lines += [f"option {k} {_concat_escape(v)}" for k, v in (RTSP_OPTIONS if rtsp else {}).items()]
    script = ("\n".join(lines) + "\n").encode()
    # -nostdin would not stop pipe:0 being read, but it keeps ffmpeg from treating it as a console
    argv = [
        *head,
        "-nostdin",
        *(input_args or []),
        "-f",
        "concat",
        "-safe",
        "0",
        "-protocol_whitelist",
        STDIN_WHITELIST,
        "-i",
        "pipe:0",
        *output,
    ]
    return FfmpegRun(argv, script)


def ffmpeg_command(
    input_url: str,
    incoming: Path,
    camera: str,
    segment_seconds: int = 60,
    *,
    input_args: Sequence[str] | None = None,
    ffmpeg: str = "ffmpeg",
) -> list[str]:
    """The ffmpeg argv that records `input_url` (its stdin, if any, is in `ffmpeg_run`)."""
    return ffmpeg_run(input_url, incoming, camera, segment_seconds, input_args=input_args, ffmpeg=ffmpeg).argv


def probe_duration(path: Path, ffprobe: str = "ffprobe", timeout: float = 15.0) -> float | None:
    """Duration in seconds of a media file per ffprobe, or None when it cannot be read."""
    try:
        out = subprocess.run(
            [
                ffprobe,
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "default=noprint_wrappers=1:nokey=1",
                str(path),
            ],
            capture_output=True,
            timeout=timeout,
            text=True,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_duration(out.stdout) if out.returncode == 0 else None


def parse_duration(text: str) -> float | None:
    """The first line of ffprobe's duration output as seconds, None for N/A or garbage."""
    try:
        value = float(text.strip().splitlines()[0])
    except (ValueError, IndexError):
        return None
    return value if value > 0 else None


def completed_cache_files(names: Sequence[str], camera: str, running: bool) -> list[str]:
    """This camera's finished files in .incoming, oldest first: all but the newest while running."""
    mine = sorted(
        (parse_cache_name(n)[1], n) for n in names if parse_cache_name(n) and parse_cache_name(n)[0] == camera
    )
    files = [n for _, n in mine]
    return files[:-1] if running and files else files


def _copy_redacted(src: IO[bytes], path: Path, secrets: tuple[str, ...]) -> None:
    """Copy ffmpeg's stderr line by line into `path` (0600), passwords as ***, size bounded."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older log may have been 0644
    with src, os.fdopen(fd, "wb") as out:
        for line in iter(lambda: src.readline(8192), b""):
            text = redact_text(line.decode("utf-8", "replace"), secrets)
            if out.tell() > LOG_MAX_BYTES:
                out.seek(0)
                out.truncate()
            out.write(text.encode())
            out.flush()


class SegmentRecorder:
    """One camera's ffmpeg process and the filing of its segments; call `poll()` every few s."""

    def __init__(
        self,
        camera: str,
        input_url: str,
        index: RecordingsIndex,
        cfg: RecordingConfig | None = None,
        *,
        input_args: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        clock_quality: Callable[[], str] = lambda: "ntp",
        probe: Callable[[Path], float | None] = probe_duration,
        backoff_base: float = 2.0,
        backoff_max: float = 120.0,
    ):
        self.camera, self.input_url, self.index = camera, input_url, index
        self.cfg = cfg or RecordingConfig(root=index.root)
        self.root = index.root
        self.incoming = self.root / INCOMING
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.log_path = self.incoming / f"{camera}.ffmpeg.log"
        self.input_args = input_args
        self.clock, self.clock_quality, self.probe = clock, clock_quality, probe
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.proc: subprocess.Popen | None = None
        self._stderr: threading.Thread | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.last_segment = 0.0
        self.filed = 0
        self.discarded = 0

    def command(self) -> list[str]:
        """The ffmpeg argv for this camera (never with its password)."""
        return self.run_spec().argv

    def run_spec(self) -> FfmpegRun:
        """The ffmpeg argv and stdin for this camera."""
        return ffmpeg_run(
            self.input_url, self.incoming, self.camera, self.cfg.segment_seconds, input_args=self.input_args
        )

    @property
    def running(self) -> bool:
        """True while ffmpeg runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start ffmpeg now."""
        env = dict(os.environ, TZ="UTC")  # strftime names in UTC, whatever the box zone
        spec = self.run_spec()
        # stderr through a pipe that a thread drains at once into the log file, passwords
        # replaced (ffmpeg names the URL in its errors); a pipe nobody drained would block ffmpeg
        self.proc = subprocess.Popen(
            spec.argv,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
        )
        self._stderr = threading.Thread(
            target=_copy_redacted,
            args=(self.proc.stderr, self.log_path, self._secrets()),
            name=f"ffmpeg-log-{self.camera}",
            daemon=True,
        )
        self._stderr.start()
        if spec.stdin is not None:
            try:
                self.proc.stdin.write(spec.stdin)
                self.proc.stdin.close()
            except OSError:  # ffmpeg died at once: poll() restarts it
                pass
        self.last_segment = self.clock()
        log.info("%s: recording %s", self.camera, redact_url(self.input_url))

    def _secrets(self) -> tuple[str, ...]:
        pw = url_password(self.input_url)
        return (pw,) if pw else ()

    def _end(self, timeout: float = 10.0) -> None:
        """Ask ffmpeg to finish (SIGINT writes the segment trailer), kill it if it will not."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.join(5.0)
            self._stderr = None
        try:
            err = self.log_path.read_bytes()[-500:].decode(errors="replace").strip()
        except OSError:
            err = ""
        if err:
            log.warning("%s: ffmpeg exited %s: %s", self.camera, proc.returncode, redact_text(err, self._secrets()))

    def file_completed(self, running: bool | None = None) -> list[Segment]:
        """Validate, move and index this camera's finished segments; returns the ones filed."""
        running = self.running if running is None else running
        names = [p.name for p in self.incoming.iterdir()]
        filed = []
        for name in completed_cache_files(names, self.camera, running):
            src = self.incoming / name
            _, start_ms = parse_cache_name(name)
            duration = self.probe(src)
            if not duration:
                log.warning("%s: discarding unreadable segment %s", self.camera, name)
                src.unlink(missing_ok=True)
                self.discarded += 1
                continue
            n, rel = 0, segment_relpath(self.camera, start_ms)
            while (dst := resolve_inside(self.root, rel)) is not None and dst.exists():
                n += 1  # ffmpeg restarted within the same second
                rel = segment_relpath(self.camera, start_ms, n)
            if dst is None:
                src.unlink(missing_ok=True)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            size = src.stat().st_size
            os.replace(src, dst)
            filed.append(
                Segment(rel, self.camera, start_ms, start_ms + int(duration * 1000), size, self.clock_quality())
            )
        if filed:
            self.index.add(filed)
            self.filed += len(filed)
            self.last_segment = self.clock()
            self.failures = 0
        return filed

    def poll(self) -> list[Segment]:
        """File finished segments; restart ffmpeg (with backoff) if it died or stalled."""
        filed = self.file_completed()
        now = self.clock()
        if self.proc is not None and not self.running:
            self._end()
            self.file_completed(running=False)
            self._schedule(now, "ffmpeg exited")
        elif self.running and should_restart(self.last_segment, now, self.cfg.stall_seconds):
            self._end()
            self.file_completed(running=False)
            self._schedule(now, f"no segment for {now - self.last_segment:.0f} s")
        if self.proc is None and now >= self.retry_at:
            try:
                self.start()
            except OSError as exc:  # ffmpeg missing or not executable
                self._schedule(now, f"cannot start ffmpeg: {exc}")
        return filed

    def _schedule(self, now: float, why: str) -> None:
        self.failures += 1
        delay = next_backoff(self.failures, self.backoff_base, self.backoff_max)
        self.retry_at = now + delay
        log.warning("%s: %s; restarting ffmpeg in %.0f s", self.camera, why, delay)

    def stop(self) -> list[Segment]:
        """Stop ffmpeg cleanly and file what it wrote."""
        self._end()
        return self.file_completed(running=False)
