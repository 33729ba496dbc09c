import os
import shutil

import pytest

from agent.devices.camera.record.index import RecordingsIndex, Segment
from agent.devices.camera.record.recorder import probe_duration
from agent.devices.camera.record.retention import DAY_MS, Retention, choose_deletions, plan_reconcile, reconcile

NOW = 1_750_000_000_000
GB = 1024**3


def seg(name, age_days, size=GB, clock="ntp"):
    start = NOW - int(age_days * DAY_MS)
    return Segment(name, "win1", start, start + 60_000, size, clock)


SEGS = [seg("d40", 40), seg("d31", 31), seg("d20", 20), seg("d2", 2), seg("d1", 1)]


def names(segs):
    return [s.path for s in segs]


@pytest.mark.parametrize(
    "free, floor, trusted, expected",
    [
        (100 * GB, 10 * GB, True, ["d40", "d31"]),  # age only
        (8 * GB, 10 * GB, True, ["d40", "d31"]),  # age frees enough
        (7 * GB, 10 * GB, True, ["d40", "d31", "d20"]),  # + oldest first for space
        (0, 100 * GB, True, ["d40", "d31", "d20", "d2", "d1"]),  # everything, still oldest first
        (0, 100 * GB, False, []),  # never on an untrusted clock
    ],
)
def test_choose_deletions(free, floor, trusted, expected):
    assert names(choose_deletions(SEGS, NOW, 30, free, floor, trusted)) == expected


def test_untrusted_segments_are_not_aged_but_yield_to_space():
    segs = [seg("old-untrusted", 45, clock="untrusted"), seg("d10", 10)]
    assert choose_deletions(segs, NOW, 30, 100 * GB, GB, True) == []
    assert names(choose_deletions(segs, NOW, 30, 0, GB, True)) == ["old-untrusted"]


def test_plan_reconcile():
    assert plan_reconcile({"a": 1, "b": 2}, {"b", "c"}) == (["a"], ["c"])


@pytest.fixture
def layout(tmp_path, tiny_video):
    """A recordings root with real segments, a partial one, junk and case data beside it."""
    root = tmp_path / "recordings"
    cases = tmp_path / "agent-data"
    cases.mkdir()
    (cases / "agent.db").write_bytes(b"case data")
    hour = root / "2025-01-02" / "09"
    hour.mkdir(parents=True)
    shutil.copy(tiny_video, hour / "win1-0000.mp4")
    shutil.copy(tiny_video, hour / "win1-0100.mp4")
    (hour / "win1-0200.mp4").write_bytes(tiny_video.read_bytes()[:5000])  # power cut mid-write
    (hour / "operator-notes.txt").write_text("do not delete")
    os.symlink(cases / "agent.db", hour / "win1-0300.mp4")  # a trap
    return root, cases


def test_reconcile_indexes_valid_files_deletes_partial_and_drops_orphans(layout):
    root, cases = layout
    idx = RecordingsIndex(root)
    idx.add([Segment("2024-12-01/10/win1-0000.mp4", "win1", 0, 60_000, 5)])  # file gone
    report = reconcile(idx, probe_duration)
    assert report.added == ["2025-01-02/09/win1-0000.mp4", "2025-01-02/09/win1-0100.mp4"]
    assert report.deleted == ["2025-01-02/09/win1-0200.mp4"]
    assert report.dropped == ["2024-12-01/10/win1-0000.mp4"]
    segs = idx.segments()
    assert [s.end_ms - s.start_ms for s in segs] == [2000, 2000] and segs[0].clock == "unknown"
    assert (root / "2025-01-02/09/operator-notes.txt").exists()
    assert (root / "2025-01-02/09/win1-0300.mp4").is_symlink()
    assert (cases / "agent.db").read_bytes() == b"case data"
    assert reconcile(idx, probe_duration).added == []  # idempotent


def test_retention_deletes_only_inside_the_root(layout):
    root, cases = layout
    idx = RecordingsIndex(root)
    reconcile(idx, probe_duration)
    idx.add(
        [Segment("../agent-data/agent.db", "win1", 0, 1, 9), Segment("2025-01-02/09/win1-0300.mp4", "win1", 1, 2, 9)]
    )  # the symlink
    ret = Retention(idx, retention_days=30, min_free_bytes=0, free_bytes=lambda: 10 * GB)
    assert ret.run_once(NOW, "untrusted") == [] and len(idx.segments()) == 4
    deleted = ret.run_once(NOW, "ntp")
    assert names(deleted) == ["2025-01-02/09/win1-0000.mp4", "2025-01-02/09/win1-0100.mp4"]
    assert idx.segments() == []  # bogus rows dropped
    assert (cases / "agent.db").read_bytes() == b"case data"
    assert (root / "2025-01-02/09/operator-notes.txt").exists()
    assert not (root / "2025-01-02/09/win1-0000.mp4").exists()


def test_free_space_floor_deletes_oldest_first(tmp_path):
    idx = RecordingsIndex(tmp_path)
    hour = tmp_path / "2025-06-01" / "10"
    hour.mkdir(parents=True)
    segs = []
    for i in range(4):
        (hour / f"win1-0{i}00.mp4").write_bytes(b"x" * 100)
        segs.append(
            Segment(f"2025-06-01/10/win1-0{i}00.mp4", "win1", NOW - (4 - i) * 60_000, NOW - (3 - i) * 60_000, 100)
        )
    idx.add(segs)
    free = {"bytes": 750}
    ret = Retention(idx, 30, min_free_bytes=1000, free_bytes=lambda: free["bytes"])
    assert names(ret.run_once(NOW, "hub")) == [segs[0].path, segs[1].path, segs[2].path]
    assert [s.path for s in idx.segments()] == [segs[3].path]
