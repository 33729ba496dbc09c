"""Benchmark: CPU and memory of motion + presence per camera, against a raw baseline.

Each configuration runs in a fresh worker process for --seconds: one thread per camera pulls
640x360 frames at 5 fps (as the agent's CameraWatcher does) and either only produces them
(baseline) or also runs PresenceMonitor on them (detect: Frigate-style motion, two window
regions, hysteresis, office hours, snapshots on events). Sources:

  synthetic  FakeCamera frames generated in the worker (no decoding)
  h264       the same scene pre-encoded by ffmpeg (H.264, GOP 2 s) and decoded by OpenCV's
             FFmpeg backend, i.e. what a camera's 640x360 sub-stream costs to decode

CPU is the worker's user+system time over wall time, in % of one core (all threads, the
decoder's included); RSS is VmRSS at the end and VmHWM (peak). Each figure is the median of
--runs runs; "detection" is detect minus baseline of the same source and camera count.

Example:
    .venv/bin/python bench/camera.py --seconds 5 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WIDTH, HEIGHT, FPS = 640, 360, 5.0
# the clerk sits 2 s of every 5 s, so both events (and their snapshots) happen in every cycle
VISITS = [(t, t + 2.0) for t in range(0, 3600, 5)]


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def make_h264(path: Path, seconds: float = 30.0) -> Path:
    """Encode the synthetic scene (FakeCamera) into an H.264 file with ffmpeg."""
    from agent.devices.camera.fake import FakeCamera

    cam = FakeCamera(WIDTH, HEIGHT, FPS, visits=VISITS)
    ff = subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{WIDTH}x{HEIGHT}",
            "-r",
            str(FPS),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            str(int(FPS * 2)),
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        stdin=subprocess.PIPE,
    )
    for _ in range(int(seconds * FPS)):
        ff.stdin.write(cam.read().tobytes())
    ff.stdin.close()
    if ff.wait() != 0:
        raise SystemExit("ffmpeg could not encode the benchmark video")
    return path


class LoopingFile:
    """CameraSource that decodes a file with OpenCVCapture and starts over at its end."""

    def __init__(self, path: str):
        from agent.devices.camera.capture import OpenCVCapture

        self.path, self._open = path, OpenCVCapture
        self.cap = OpenCVCapture(path)

    def read(self):
        frame = self.cap.read()
        if frame is None:
            self.cap.close()
            self.cap = self._open(self.path)
            frame = self.cap.read()
        return frame

    def close(self):
        self.cap.close()


def worker(args) -> dict:
    """One measured run in this process; returns the figures."""
    from agent.devices.camera.config import CameraConfig, OfficeHours
    from agent.devices.camera.fake import FakeCamera
    from agent.devices.camera.monitor import PresenceMonitor
    from protocol.calendar import CST

    cfg = CameraConfig(
        name="bench",
        rtsp_url="file:///bench",
        regions=[{"window": 1, "rect": (0.2, 0.05, 0.65, 0.7)}, {"window": 2, "rect": (0.66, 0.05, 0.95, 0.7)}],
        presence={"absent_seconds": 1.5, "present_seconds": 1, "present_gap_seconds": 1},
    )
    office = OfficeHours(working_days_only=False, periods=["00:00-23:59"])
    wall0 = datetime(2025, 6, 3, 9, 0, tzinfo=CST)
    counts = [0] * args.cameras
    events = [0] * args.cameras
    detect_s: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.warmup + args.seconds
    start = threading.Barrier(args.cameras + 1)

    def run(i: int) -> None:
        src = (
            FakeCamera(WIDTH, HEIGHT, FPS, visits=VISITS, seed=i)
            if args.source == "synthetic"
            else LoopingFile(args.video)
        )
        mon = PresenceMonitor(cfg, office) if args.mode == "detect" else None
        start.wait()
        t_next = time.monotonic()
        while (now := time.monotonic()) < stop_at:
            frame = src.read()
            if mon is not None:
                t = time.perf_counter()
                events[i] += len(mon.process(frame, now, wall0 + timedelta(seconds=now)))
                with lock:
                    detect_s.append(time.perf_counter() - t)
            counts[i] += 1
            t_next += 1.0 / FPS
            time.sleep(max(0.0, t_next - time.monotonic()))
        src.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.cameras)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(args.warmup)  # imports, first frames, allocator settle
    c0, w0, n0 = time.process_time(), time.monotonic(), sum(counts)
    for t in threads:
        t.join()
    cpu, wall, frames = time.process_time() - c0, time.monotonic() - w0, sum(counts) - n0
    return {
        "cpu_pct": 100.0 * cpu / wall,
        "rss_kb": _status_kb("VmRSS"),
        "hwm_kb": _status_kb("VmHWM"),
        "fps": frames / wall,
        "detect_ms": 1000 * statistics.median(detect_s) if detect_s else None,
        "events": sum(events),
    }


def run_config(args, source: str, mode: str, cameras: int, video: str) -> list[dict]:
    """--runs fresh worker processes for one configuration."""
    out = []
    for _ in range(args.runs):
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--source",
            source,
            "--mode",
            mode,
            "--cameras",
            str(cameras),
            "--seconds",
            str(args.seconds),
            "--warmup",
            str(args.warmup),
            "--video",
            video,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds * 4 + 60)
        if res.returncode != 0:
            raise SystemExit(f"worker failed: {res.stderr[-2000:]}")
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def med(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r[key] is not None]
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before")
    p.add_argument("--runs", type=int, default=3, help="runs per configuration (median shown)")
    p.add_argument("--sources", default="synthetic,h264", help="synthetic and/or h264")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--source", default="synthetic", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="detect", help=argparse.SUPPRESS)
    p.add_argument("--cameras", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--video", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import cv2
    import numpy as np

    print(
        f"camera bench: {WIDTH}x{HEIGHT} at {FPS:g} fps per camera, {args.seconds:g} s x "
        f"{args.runs} runs per configuration (median), {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, OpenCV {cv2.__version__}, numpy {np.__version__}, "
        f"cv2 threads {cv2.getNumThreads()}"
    )
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="jiancha-camera-bench-") as tmp:
        video = str(make_h264(Path(tmp) / "scene.mp4")) if "h264" in sources else ""
        print(
            f"\n{'source':<10} {'cams':>4} {'mode':<9} {'CPU % core':>10} {'RSS MB':>7} "
            f"{'peak MB':>8} {'fps':>5} {'ms/frame':>9} {'events':>6}"
        )
        for source in sources:
            for cameras in (1, 2):
                rows = {}
                for mode in ("baseline", "detect"):
                    rows[mode] = r = run_config(args, source, mode, cameras, video)
                    ms = med(r, "detect_ms")
                    print(
                        f"{source:<10} {cameras:>4} {mode:<9} {med(r, 'cpu_pct'):>10.1f} "
                        f"{med(r, 'rss_kb') / 1024:>7.1f} {med(r, 'hwm_kb') / 1024:>8.1f} "
                        f"{med(r, 'fps'):>5.1f} {'' if ms != ms else f'{ms:.2f}':>9} "
                        f"{int(med(r, 'events')) if mode == 'detect' else '':>6}",
                        flush=True,
                    )
                d_cpu = med(rows["detect"], "cpu_pct") - med(rows["baseline"], "cpu_pct")
                d_rss = (med(rows["detect"], "rss_kb") - med(rows["baseline"], "rss_kb")) / 1024
                print(
                    f"{'':<10} {'':>4} {'detection':<9} {d_cpu:>+10.1f} {d_rss:>+7.1f}   "
                    f"(detect minus baseline; {d_cpu / cameras:+.1f} % core per camera)"
                )


if __name__ == "__main__":
    main()
