import pytest

from agent.devices.camera.capture import CaptureLoop, CaptureOpenError, next_backoff, redact_url, should_restart
from agent.devices.camera.config import CaptureConfig
from agent.devices.camera.source import CameraSource


@pytest.mark.parametrize(
    "attempt, expected", [(0, 0), (1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (50, 60), (10_000, 60)]
)
def test_next_backoff_doubles_and_caps(attempt, expected):
    assert next_backoff(attempt, base=1.0, cap=60.0) == expected


@pytest.mark.parametrize(
    "last, now, timeout, expected",
    [(100.0, 105.0, 10.0, False), (100.0, 110.0, 10.0, True), (100.0, 500.0, 10.0, True)],
)
def test_should_restart(last, now, timeout, expected):
    assert should_restart(last, now, timeout) is expected


def test_redact_url_hides_the_password_only():
    assert redact_url("rtsp://admin:s3cr%40t@10.0.0.5:554/ch1") == "rtsp://admin:***@10.0.0.5:554/ch1"
    assert redact_url("rtsp://10.0.0.5/ch1") == "rtsp://10.0.0.5/ch1"


class ScriptedSource:
    """Returns frames from a script: a value is a frame, None is a timed-out read."""

    def __init__(self, script, clock, read_cost=0.2):
        self.script, self.clock, self.read_cost = list(script), clock, read_cost
        self.closed = False

    def read(self):
        self.clock.advance(self.read_cost)  # a read takes time (its timeout)
        return self.script.pop(0) if self.script else None

    def close(self):
        self.closed = True


class Opener:
    """Fails `fail_first` times, then hands out ScriptedSources."""

    def __init__(self, clock, fail_first=0, script=("f",) * 3):
        self.clock, self.fail_first, self.script = clock, fail_first, script
        self.calls, self.opened = [], []

    def __call__(self):
        self.calls.append(self.clock())
        if len(self.calls) <= self.fail_first:
            raise CaptureOpenError("connection refused")
        src = ScriptedSource(self.script, self.clock)
        self.opened.append(src)
        return src


def test_scripted_source_is_a_camera_source(clock):
    assert isinstance(ScriptedSource([], clock), CameraSource)


def run(loop, clock, seconds, idle=0.1):
    """Step the loop for `seconds` of fake time (sleeping `idle` whenever nothing came)."""
    frames = 0
    end = clock() + seconds
    while clock() < end:
        if loop.step() is not None:
            frames += 1
        else:
            clock.advance(idle)
    return frames


def test_first_connection_failures_back_off_exponentially(clock):
    opener = Opener(clock, fail_first=4)
    loop = CaptureLoop(opener, CaptureConfig(backoff_base_seconds=1, backoff_max_seconds=60), clock)
    run(loop, clock, 20)
    gaps = [round(b - a, 1) for a, b in zip(opener.calls, opener.calls[1:])]
    assert gaps[:4] == [1.0, 2.0, 4.0, 8.0]  # attempts at t, +1, +2, +4, +8
    assert len(opener.opened) == 1 and loop.opens == 1


def test_stalled_stream_is_closed_and_reopened_after_watchdog(clock):
    opener = Opener(clock, script=("f", "f", "f"))  # then only timed-out reads
    cfg = CaptureConfig(watchdog_seconds=5, backoff_base_seconds=1)
    loop = CaptureLoop(opener, cfg, clock)
    assert run(loop, clock, 0.6) == 3
    t_last = loop.last_frame
    while loop.connected:  # reads time out (0.2 s each) until the watchdog
        assert loop.step() is None
    assert opener.opened[0].closed and loop.failures == 1
    assert clock() - t_last == pytest.approx(5.0, abs=0.25)
    assert loop.retry_at == pytest.approx(clock() + 1.0)
    assert loop.step() is None and loop.opens == 1  # still backing off
    clock.advance(1.0)
    assert loop.step() == "f" and loop.opens == 2 and loop.failures == 0


def test_a_frame_resets_the_failure_count(clock):
    opener = Opener(clock, fail_first=2)
    loop = CaptureLoop(opener, CaptureConfig(), clock)
    run(loop, clock, 4)
    assert loop.failures == 0 and loop.opens == 1


def test_read_exceptions_do_not_escape(clock):
    class Broken:
        def read(self):
            raise RuntimeError("driver bug")

        def close(self):
            pass

    loop = CaptureLoop(lambda: Broken(), CaptureConfig(watchdog_seconds=1), clock)
    assert loop.step() is None
    clock.advance(2)
    assert loop.step() is None and not loop.connected and loop.failures == 1


def test_opencv_driver_reads_a_real_file_and_fails_clearly(tiny_video, tmp_path):
    from agent.devices.camera.capture import OpenCVCapture

    cap = OpenCVCapture(str(tiny_video), open_timeout_ms=2000, read_timeout_ms=2000)
    frames = [cap.read() for _ in range(25)]
    cap.close()
    got = [f for f in frames if f is not None]
    assert len(got) == 20 and got[0].shape == (120, 160, 3)  # 2 s at 10 fps, then None
    assert cap.read() is None
    with pytest.raises(CaptureOpenError, match="cannot open"):
        OpenCVCapture(str(tmp_path / "missing.mp4"), open_timeout_ms=1000)
