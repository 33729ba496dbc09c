import time

import pytest

from agent.devices.camera.config import RecordingConfig
from agent.devices.camera.record.clips import ClipUpload, build_clip
from agent.devices.camera.record.index import RecordingsIndex
from agent.devices.camera.record.layout import parse_segment_relpath
from agent.devices.camera.record.recorder import (
    SegmentRecorder,
    completed_cache_files,
    ffmpeg_command,
    parse_duration,
    probe_duration,
)

from ..helpers import make_video, requires_ffmpeg


def test_ffmpeg_command_copies_into_strftime_segments(tmp_path):
    cmd = ffmpeg_command("rtsp://cam/1", tmp_path, "win1", 60)
    joined = " ".join(cmd)
    for part in (
        "-rtsp_transport tcp",
        "-c copy",
        "-f segment",
        "-segment_time 60",
        "-strftime 1",
        "-reset_timestamps 1",
        "-segment_format mp4",
    ):
        assert part in joined
    assert cmd[-1] == str(tmp_path / "win1@%Y%m%dT%H%M%SZ.mp4")
    assert "-rtsp_transport" not in ffmpeg_command("file:///x.mp4", tmp_path, "win1")


def test_completed_cache_files_keeps_the_newest_while_running():
    names = ["win1@20250603T060200Z.mp4", "win1@20250603T060100Z.mp4", "win2@20250603T060000Z.mp4", "win1.ffmpeg.log"]
    assert completed_cache_files(names, "win1", running=True) == ["win1@20250603T060100Z.mp4"]
    assert completed_cache_files(names, "win1", running=False) == [
        "win1@20250603T060100Z.mp4",
        "win1@20250603T060200Z.mp4",
    ]
    assert completed_cache_files([], "win1", running=True) == []


@pytest.mark.parametrize("text, expected", [("2.000000\n", 2.0), ("N/A\n", None), ("", None), ("0.000\n", None)])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@requires_ffmpeg
def test_records_a_real_stream_into_indexed_hour_folders(tmp_path):
    src = make_video(tmp_path / "camera.mp4", seconds=4, fps=10)  # keyframe every 1 s
    root = tmp_path / "recordings"
    idx = RecordingsIndex(root)
    cfg = RecordingConfig(root=root, segment_seconds=2, stall_seconds=30)
    rec = SegmentRecorder("win1", str(src), idx, cfg, input_args=["-re"])  # real-time, like RTSP
    t0 = time.time()
    rec.start()
    filed_live = []
    while rec.running and time.time() - t0 < 15:
        filed_live += rec.file_completed()
        time.sleep(0.1)
    filed = filed_live + rec.stop()
    assert len(filed_live) >= 1  # a segment was filed while ffmpeg still ran
    assert 2 <= len(filed) <= 3
    segs = idx.segments("win1")
    assert [s.path for s in segs] == [s.path for s in filed]
    assert sum(s.end_ms - s.start_ms for s in segs) == pytest.approx(4000, abs=300)
    for s in segs:
        assert parse_segment_relpath(s.path)[0] == "win1"
        path = root / s.path
        assert path.stat().st_size == s.bytes and probe_duration(path) > 0
        assert abs(s.start_ms / 1000 - t0) < 10
    assert not any(p.suffix == ".mp4" for p in (root / ".incoming").iterdir())

    # a clip request over the whole span: joined without re-encoding, uploaded in chunks
    clip = build_clip(idx, "win1", segs[0].start_ms, segs[-1].end_ms, "clip-1")
    assert probe_duration(clip) == pytest.approx(4.0, abs=0.5)
    up = ClipUpload(clip, "clip-1", 16 * 1024, index=idx)
    assert b"".join(d for _, _, d in up) == clip.read_bytes()
    with pytest.raises(LookupError):
        build_clip(idx, "win2", 0, 10**13, "clip-2")
    idx.close()


@requires_ffmpeg
def test_dead_ffmpeg_is_restarted_with_backoff(tmp_path):
    from ..helpers import FakeClock

    clock = FakeClock()
    idx = RecordingsIndex(tmp_path)
    rec = SegmentRecorder(
        "win1",
        str(tmp_path / "no-such-camera.mp4"),
        idx,
        RecordingConfig(root=tmp_path, segment_seconds=2, stall_seconds=10),
        clock=clock,
        backoff_base=2,
    )
    rec.poll()  # starts ffmpeg, which fails at once
    rec.proc.wait(10)
    rec.poll()
    assert rec.proc is None and rec.failures == 1 and rec.retry_at == clock() + 2
    clock.advance(2)
    rec.poll()
    assert rec.proc is not None
    rec.proc.wait(10)
    rec.poll()
    assert rec.failures == 2 and rec.retry_at == clock() + 4
    assert "no-such-camera" in (tmp_path / ".incoming" / "win1.ffmpeg.log").read_text()
    idx.close()


def test_stalled_recorder_is_restarted(tmp_path):
    from ..helpers import FakeClock

    class Hung:
        returncode = None

        def poll(self):
            return None

        def send_signal(self, sig):
            self.returncode = -2

        def wait(self, timeout=None):
            return self.returncode

    clock = FakeClock()
    idx = RecordingsIndex(tmp_path)
    rec = SegmentRecorder(
        "win1", "rtsp://cam/1", idx, RecordingConfig(root=tmp_path, segment_seconds=60, stall_seconds=150), clock=clock
    )
    rec.proc, rec.last_segment = Hung(), clock()
    clock.advance(149)
    rec.file_completed = lambda running=None: []
    rec.start = lambda: None
    rec.poll()
    assert rec.failures == 0
    clock.advance(1)
    rec.poll()
    assert rec.failures == 1 and rec.proc is None
    idx.close()
