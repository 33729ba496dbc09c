"""Camera passwords stay out of ffmpeg's command line (world-readable) and out of every log.

A real recorder runs real ffmpeg against a local fake RTSP camera that demands Basic auth:
segments arrive (so the password did reach ffmpeg), yet no /proc/PID/cmdline on the machine,
no log record and no ffmpeg log file holds it.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from agent.devices.camera.capture import redact_text
from agent.devices.camera.config import RecordingConfig
from agent.devices.camera.record.index import RecordingsIndex
from agent.devices.camera.record.recorder import SegmentRecorder, ffmpeg_run

from .helpers import make_video
from .rtsp_server import FakeRtspCamera

PASSWORD = "Pw'9 x:Q@r/z"  # quote, space, ':' '@' '/' all need care
QUOTED = "Pw%279%20x%3AQ%40r%2Fz"


def _cmdlines() -> dict[int, bytes]:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out[int(d.name)] = (d / "cmdline").read_bytes()
            except OSError:
                pass
    return out


def _leaks(data: bytes) -> bool:
    return any(s.encode() in data for s in (PASSWORD, QUOTED, "x:Q@r"))


def test_password_goes_to_stdin_not_argv(tmp_path):
    url = f"rtsp://admin:{QUOTED}@10.0.0.9:554/h264"
    run = ffmpeg_run(url, tmp_path, "win1", 60)
    assert not any(_leaks(a.encode()) for a in run.argv)
    assert run.argv[run.argv.index("-i") + 1] == "pipe:0"
    assert b"ffconcat version 1.0" in run.stdin and b"option" in run.stdin
    assert b"rtsp_transport" in run.stdin and b"tcp" in run.stdin
    # without a password nothing changes: the URL is ffmpeg's -i
    plain = ffmpeg_run("rtsp://10.0.0.9/h264", tmp_path, "win1", 60)
    assert plain.stdin is None and "rtsp://10.0.0.9/h264" in plain.argv
    with pytest.raises(ValueError):
        ffmpeg_run("rtsp://a:b@h/x\nfile '/etc/passwd'", tmp_path, "win1", 60)


def test_redact_text_hides_userinfo_and_literal_secrets():
    line = f"[concat] Impossible to open 'rtsp://admin:{QUOTED}@10.0.0.9/x' ({PASSWORD})"
    out = redact_text(line, (QUOTED,))
    assert not _leaks(out.encode()) and "rtsp://admin:***@10.0.0.9/x" in out


def test_recorder_against_rtsp_camera_keeps_password_out_of_ps_and_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    video = make_video(tmp_path / "camera.mp4", seconds=4, fps=10)
    root = tmp_path / "recordings"
    idx = RecordingsIndex(root)
    cfg = RecordingConfig(root=root, segment_seconds=2, stall_seconds=30)
    with FakeRtspCamera(video, "admin", PASSWORD) as cam:
        url = cam.url()
        assert QUOTED in url
        rec = SegmentRecorder("win1", url, idx, cfg)
        rec.start()
        seen_ffmpeg, filed = False, []
        deadline = time.monotonic() + 30
        while len(filed) < 1 and time.monotonic() < deadline:
            procs = _cmdlines()
            assert not any(_leaks(c) for c in procs.values()), "password visible in ps"
            seen_ffmpeg |= rec.proc.pid in procs
            filed += rec.file_completed()
            time.sleep(0.2)
        assert seen_ffmpeg and b"pipe:0" in (Path(f"/proc/{rec.proc.pid}/cmdline").read_bytes())
        filed += rec.stop()
        assert cam.auth_ok >= 1  # the camera saw the right password...
        assert len(filed) >= 1  # ...and recording works through the stdin route

        # a wrong password: ffmpeg fails and says so, the log names the camera but no password
        bad = SegmentRecorder("win2", cam.url(password=PASSWORD[::-1]), idx, cfg)
        bad.start()
        bad.proc.wait(20)
        bad.stop()
    log_file = root / ".incoming" / "win2.ffmpeg.log"
    text = log_file.read_bytes()
    assert b"401" in text or b"Unauthorized" in text or b"Impossible" in text, text
    for f in (root / ".incoming").glob("*.ffmpeg.log"):
        assert not _leaks(f.read_bytes()) and not _leaks(PASSWORD[::-1].encode() + b"")
        assert PASSWORD[::-1].encode() not in f.read_bytes()
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "win2: ffmpeg exited" in messages
    assert not _leaks(messages.encode()) and PASSWORD[::-1] not in messages
    idx.close()


def test_a_bad_camera_config_does_not_echo_its_url():
    """agent run logs a refused cameras: section; pydantic would quote the URL with its password."""
    from pydantic import ValidationError

    from agent.devices.camera.config import CamerasConfig

    with pytest.raises(ValidationError) as err:
        CamerasConfig.model_validate({"cameras": [{"name": "win1", "rtsp_url": f"http://admin:{QUOTED}@cam/"}]})
    assert "rtsp_url" in str(err.value) and not _leaks(str(err.value).encode())
