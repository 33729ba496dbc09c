"""Heartbeat from a fake /proc and /sys; problems; the disk-full policy on a really full disk."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from agent.api import create_app
from agent.devices.camera.record.index import RecordingsIndex, Segment
from agent.devices.camera.record.layout import segment_relpath
from agent.devices.camera.record.retention import Retention
from agent.health import (
    GiB,
    HealthThresholds,
    HostReaders,
    MiB,
    bytes_to_evict,
    collect,
    disk_action,
    health_problems,
    status_text,
)
from agent.store import AgentStore
from iobase.sqlite import connect, is_disk_full
from protocol.calendar import CST
from protocol.models import CatalogItem, NewCase
from protocol.records import GENESIS, decode_record, verify_chain

MEMINFO = "MemTotal:        3884564 kB\nMemFree:          612340 kB\nMemAvailable:    2871320 kB\n"


def _put(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def fake_statvfs(free: int, total: int, frsize: int = 4096):
    return lambda path: SimpleNamespace(f_bavail=free // frsize, f_blocks=total // frsize, f_frsize=frsize)


def fake_host(tmp_path, files: dict[str, str], statvfs=None) -> HostReaders:
    for rel, text in files.items():
        _put(tmp_path, rel, text)
    return HostReaders(
        proc=tmp_path / "proc", sys=tmp_path / "sys", statvfs=statvfs or fake_statvfs(20 * GiB, 30 * GiB)
    )


PI4 = {
    "proc/loadavg": "0.52 0.58 0.59 1/123 4567\n",
    "proc/meminfo": MEMINFO,
    "proc/uptime": "86400.25 340000.10\n",
    "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
    "sys/class/thermal/thermal_zone0/temp": "48312\n",
    "sys/devices/platform/soc/soc:firmware/get_throttled": "50005\n",
}


def test_heartbeat_of_a_pi(tmp_path):
    hb = collect(
        fake_host(tmp_path, PI4),
        data_dir=Path("/var/lib/jiancha"),
        backlog=12,
        clock="ntp",
        devices={"keypad1": "ok", "sign": "offline"},
        recordings_bytes=5 * GiB,
    )
    assert hb == {
        "cpu_temp_c": 48.3,
        "load": [0.52, 0.58, 0.59],
        "mem_total_bytes": 3884564 * 1024,
        "mem_available_bytes": 2871320 * 1024,
        "disk_path": "/var/lib/jiancha",
        "disk_free_bytes": 20 * GiB,
        "disk_total_bytes": 30 * GiB,
        "recordings_bytes": 5 * GiB,
        "uptime_s": 86400.25,
        "throttled": 0x50005,
        "backlog": 12,
        "clock": "ntp",
        "devices": {"keypad1": "ok", "sign": "offline"},
    }


def test_pi5_firmware_path_and_hottest_sane_zone(tmp_path):
    reader = fake_host(
        tmp_path,
        {
            "sys/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled": "0\n",
            "sys/class/thermal/thermal_zone0/temp": "-273000\n",  # absent sensor
            "sys/class/thermal/thermal_zone1/temp": "45000\n",
            "sys/class/thermal/thermal_zone2/temp": "61500\n",
            "sys/class/thermal/thermal_zone3/temp": "garbage\n",
        },
    )
    hb = collect(reader, data_dir=tmp_path, backlog=0, clock="hub", devices={})
    assert hb["throttled"] == 0 and hb["cpu_temp_c"] == 61.5


def test_an_empty_host_gives_unknowns_not_errors(tmp_path):
    def no_fs(path):
        raise FileNotFoundError(path)

    hb = collect(
        HostReaders(proc=tmp_path / "none", sys=tmp_path / "none", statvfs=no_fs),
        data_dir=tmp_path / "gone",
        backlog=3,
        clock="untrusted",
        devices={},
    )
    assert {k for k, v in hb.items() if v is None} == {
        "cpu_temp_c",
        "load",
        "mem_total_bytes",
        "mem_available_bytes",
        "disk_free_bytes",
        "disk_total_bytes",
        "uptime_s",
        "throttled",
    }
    assert hb["backlog"] == 3 and hb["clock"] == "untrusted"
    assert any("disk" in p for p in health_problems(hb, HealthThresholds()))


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="not Linux")
def test_this_machine(tmp_path):
    hb = collect(HostReaders(), data_dir=tmp_path, backlog=0, clock="ntp", devices={})
    assert hb["load"] and hb["mem_total_bytes"] > hb["mem_available_bytes"] > 0
    assert hb["disk_total_bytes"] >= hb["disk_free_bytes"] > 0 and hb["uptime_s"] > 0


# -- problems -------------------------------------------------------------------------------
HEALTHY = {
    "cpu_temp_c": 55.0,
    "load": [1.0, 1.0, 1.0],
    "mem_total_bytes": 4 * GiB,
    "mem_available_bytes": 2 * GiB,
    "disk_path": "/var/lib/jiancha",
    "disk_free_bytes": 20 * GiB,
    "disk_total_bytes": 30 * GiB,
    "recordings_bytes": 0,
    "uptime_s": 100.0,
    "throttled": 0,
    "backlog": 0,
    "clock": "ntp",
    "devices": {"keypad1": "ok"},
}


@pytest.mark.parametrize(
    "change, expect",
    [
        ({"disk_free_bytes": 300 * MiB}, "disk below floor): 300 MiB free in /var/lib/jiancha, floor 1024 MiB"),
        ({"disk_free_bytes": None}, "cannot read free space of /var/lib/jiancha"),
        ({"cpu_temp_c": 83.4}, "too hot): CPU 83.4 °C, limit 80 °C"),
        ({"backlog": 10_001}, "10001 records not acknowledged by the hub, limit 10000"),
        ({"clock": "untrusted"}, "clock untrusted"),
        ({"mem_available_bytes": 20 * MiB}, "low memory): 20 MiB available"),
        ({"throttled": 0x50005}, "under-voltage now"),
        ({"throttled": 0x50000}, "under-voltage since boot"),
        ({"devices": {"keypad1": "ok", "sign": "offline"}}, "device) sign: offline"),
        ({"devices": {"keypad-1": "no driver", "sign-notice-1": "请到2号窗口办理"}}, "keypad-1: no driver"),
    ],
)
def test_each_problem_is_named(change, expect):
    problems = health_problems({**HEALTHY, **change}, HealthThresholds())
    assert len(problems) == 1 and expect in problems[0]


def test_healthy_box_and_unknown_sensors_have_no_problems():
    t = HealthThresholds()
    assert health_problems(HEALTHY, t) == []
    assert (
        health_problems(
            {**HEALTHY, "cpu_temp_c": None, "throttled": None, "mem_available_bytes": None, "clock": "hub"}, t
        )
        == []
    )
    assert health_problems({**HEALTHY, "cpu_temp_c": 83.0}, t.model_copy(update={"temp_max_c": 85})) == []


def test_status_line():
    assert status_text(HEALTHY, []) == "ok; backlog 0, clock ntp, 20480 MiB free, 55 °C"
    line = status_text(HEALTHY, ["a", "b"])
    assert line.startswith("2 problem(s): a; ")


def test_thresholds_are_strict():
    with pytest.raises(ValidationError, match="disk_floor"):
        HealthThresholds(disk_floor=5)
    with pytest.raises(ValidationError):
        HealthThresholds(temp_max_c=0)


# -- disk-full policy -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "free, floor, recordings, action",
    [
        (2 * GiB, 1 * GiB, 5 * GiB, "ok"),
        (1 * GiB, 1 * GiB, 0, "ok"),  # at the floor is fine
        (900 * MiB, 1 * GiB, 5 * GiB, "evict_recordings"),  # recordings give way first
        (900 * MiB, 1 * GiB, 1, "evict_recordings"),
        (900 * MiB, 1 * GiB, 0, "critical"),  # nothing left to free: case records stay
        (0, 1 * GiB, 0, "critical"),
    ],
)
def test_disk_action(free, floor, recordings, action):
    assert disk_action(free, floor, recordings) == action


@pytest.mark.parametrize(
    "free, floor, recordings, headroom, evict",
    [
        (2 * GiB, 1 * GiB, 5 * GiB, 0, 0),
        (900 * MiB, 1 * GiB, 5 * GiB, 0, 124 * MiB),
        (900 * MiB, 1 * GiB, 5 * GiB, 256 * MiB, 380 * MiB),
        (900 * MiB, 1 * GiB, 50 * MiB, 256 * MiB, 50 * MiB),  # never more than there is
    ],
)
def test_bytes_to_evict(free, floor, recordings, headroom, evict):
    assert bytes_to_evict(free, floor, recordings, headroom) == evict


# -- a really full disk ---------------------------------------------------------------------
ITEM = CatalogItem(
    code="XK-001",
    name="食品经营许可",
    department="市场监督管理局",
    item_type="licensing",
    case_type="promised",
    legal_days=20,
    promised_days=10,
)
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
FLOOR = 512 * 1024
SEGMENT = 64 * 1024


@pytest.fixture
def small_fs(tmp_path):
    """A real 2 MiB filesystem (tmpfs), so that writes really fail with ENOSPC."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True, timeout=30
    )
    # the suite runs as root (bootstrap needs root for apt); a real full disk is the point here
    assert r.returncode == 0, (
        f"cannot mount a 2 MiB tmpfs ({r.stderr.strip()}): run the tests as root, "
        "or under `unshare -rm .venv/bin/python -m pytest ...`"
    )
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


def record_until_full(folder: Path) -> RecordingsIndex:
    """Camera 'recordings' as the recorder keeps them: 64 KiB segments of one camera, 10 s apart
    up to NOW, each file in its date/hour folder and a row in the recordings index (on the same
    small filesystem), until the filesystem refuses (ENOSPC)."""
    index = RecordingsIndex(folder)
    start = int(NOW.timestamp() * 1000) - 3_600_000
    for n in itertools.count():
        t = start + n * 10_000
        rel = segment_relpath("win1", t)
        path = folder / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT)
            try:
                os.write(fd, b"\1" * SEGMENT)
            finally:
                os.close(fd)
            index.add([Segment(rel, "win1", t, t + 10_000, SEGMENT)])
        except (OSError, sqlite3.OperationalError):
            return index
    raise AssertionError("unreachable")


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.fixture
def full_store(small_fs):
    """An AgentStore with 3 committed cases on a 2 MiB filesystem that recordings have filled."""
    store = AgentStore(small_fs / "agent.db", "S01")
    store.save_config("catalog", 1, 0, {"items": [ITEM.model_dump(mode="json")]}, b"raw")
    cases = [store.register(NewCase(item_code="XK-001", applicant={"name": "李四"}), NOW)["case_no"] for _ in range(3)]
    index = record_until_full(small_fs / "recordings")
    yield SimpleNamespace(store=store, cases=cases, index=index, dir=small_fs)
    index.close()
    store.close()


def test_sqlite_reports_a_full_disk_and_keeps_committed_rows(small_fs):
    conn = connect(small_fs / "x.db")
    conn.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, data BLOB)")
    seq = 0
    with pytest.raises(sqlite3.OperationalError) as exc:
        while True:
            conn.execute("INSERT INTO log VALUES (?, ?)", (seq + 1, os.urandom(1000)))
            seq += 1
    assert "database or disk is full" in str(exc.value) and is_disk_full(exc.value)
    assert seq > 100 and not conn.in_transaction
    reader = connect(small_fs / "x.db", readonly=True)
    assert reader.execute("SELECT count(*), max(seq) FROM log").fetchone() == (seq, seq)


def test_full_disk_keeps_every_committed_case_and_recovers_after_eviction(full_store):
    s, d = full_store.store, full_store.dir
    index = full_store.index
    assert _free(d) < FLOOR
    assert disk_action(_free(d), FLOOR, index.total_bytes()) == "evict_recordings"
    with pytest.raises(sqlite3.OperationalError):
        s.register(NewCase(item_code="XK-001", applicant={"name": "王五"}), NOW)
    assert s.head_seq == 3  # nothing half-written
    for case_no in full_store.cases:  # reads still answered
        assert s.case_view(case_no, NOW)["status"] == "received"
    hb = collect(HostReaders(), data_dir=d, backlog=s.counts()["backlog"], clock="ntp", devices={})
    assert any("disk below floor" in p for p in health_problems(hb, HealthThresholds(disk_floor_bytes=FLOOR)))

    # the product's retention (agent/cameras.py runs it every few minutes) evicts recordings,
    # oldest first, until the floor is met; the case log is never touched. One pass frees what
    # the floor lacked by the index's sizes; the index's own write on this tiny disk may leave it
    # a few KiB short, which the next pass takes
    before = sorted(index.segments(), key=lambda x: (x.start_ms, x.path))
    retention = Retention(index, retention_days=30, min_free_bytes=FLOOR)
    removed = []
    for _ in range(3):
        removed += retention.run_once(int(NOW.timestamp() * 1000), "ntp")
        if disk_action(_free(d), FLOOR, index.total_bytes()) == "ok":
            break
    assert disk_action(_free(d), FLOOR, index.total_bytes()) == "ok", (_free(d), FLOOR, len(removed))
    assert removed and [x.path for x in removed] == [x.path for x in before[: len(removed)]]  # oldest first
    assert len(removed) < len(before)  # only what the floor needs
    assert all(not (d / "recordings" / x.path).exists() for x in removed)
    c = s.register(NewCase(item_code="XK-001", applicant={"name": "王五"}), NOW)
    assert c["case_no"].endswith("-0004") and s.head_seq == 4
    recs = [(decode_record(b), b) for b in s.read_log(1, s.head_seq)]
    assert verify_chain(GENESIS, recs) is None and [r.seq for r, _ in recs] == [1, 2, 3, 4]


def test_store_reports_disk_full_as_disk_full(full_store):
    with pytest.raises(sqlite3.OperationalError) as exc:
        full_store.store.register(NewCase(item_code="XK-001", applicant={"name": "王五"}), NOW)
    assert "database or disk is full" in str(exc.value) and is_disk_full(exc.value)


TOKEN = "t" * 32
H = {"Authorization": f"Bearer {TOKEN}"}


async def test_clerk_api_reads_on_a_full_disk(full_store):
    app = create_app(full_store.store, TOKEN, now=lambda: NOW)
    async with TestClient(TestServer(app)) as client:
        r = await client.get(f"/api/cases/{full_store.cases[0]}", headers=H)
        assert r.status == 200 and (await r.json())["case_no"] == full_store.cases[0]
        r = await client.get("/api/health")
        assert r.status == 200 and (await r.json())["last_seq"] == 3


async def test_clerk_api_answers_507_when_the_log_cannot_be_written(full_store):
    app = create_app(full_store.store, TOKEN, now=lambda: NOW)
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/api/cases", json={"item_code": "XK-001", "applicant": {"name": "王五"}}, headers=H)
        assert r.status == 507
        assert "insufficient storage" in (await r.json())["error"]
