import os
from datetime import UTC, datetime

import pytest

from agent.devices.camera.record.layout import (
    parse_cache_name,
    parse_segment_relpath,
    prune_empty_dirs,
    resolve_inside,
    segment_files,
    segment_relpath,
)
from protocol.calendar import CST

T = int(datetime(2025, 6, 3, 14, 5, 30, tzinfo=CST).timestamp() * 1000)


def test_segment_paths_are_china_time_date_hour_folders():
    assert segment_relpath("win1", T) == "2025-06-03/14/win1-0530.mp4"
    assert segment_relpath("win1", T, 2) == "2025-06-03/14/win1-0530~2.mp4"
    assert parse_segment_relpath("2025-06-03/14/win1-0530.mp4") == ("win1", T)
    assert parse_segment_relpath("2025-06-03/14/win1-0530~2.mp4") == ("win1", T)


@pytest.mark.parametrize(
    "rel",
    [
        "2025-06-03/14/notes.txt",
        "2025-06-03/win1-0530.mp4",
        "cases/14/win1-0530.mp4",
        "2025-13-03/14/win1-0530.mp4",
        "2025-06-03/14/../win1-0530.mp4",
    ],
)
def test_other_paths_are_not_segments(rel):
    assert parse_segment_relpath(rel) is None


def test_cache_names_are_utc():
    utc = datetime(2025, 6, 3, 6, 5, 30, tzinfo=UTC)
    assert parse_cache_name("win1@20250603T060530Z.mp4") == ("win1", int(utc.timestamp() * 1000))
    assert parse_cache_name("win1@20250603T060530Z.mp4.tmp") is None
    assert parse_cache_name("win1.ffmpeg.log") is None


def test_resolve_inside_refuses_escapes(tmp_path):
    root = tmp_path / "rec"
    (root / "2025-06-03" / "14").mkdir(parents=True)
    outside = tmp_path / "cases"
    outside.mkdir()
    os.symlink(outside, root / "2025-06-04")
    assert resolve_inside(root, "2025-06-03/14/win1-0530.mp4") == root.resolve() / "2025-06-03/14/win1-0530.mp4"
    for bad in (
        "/etc/passwd",
        "../cases/agent.db",
        "2025-06-03/../../cases/agent.db",
        "2025-06-04/14/win1-0530.mp4",
        "",
    ):
        assert resolve_inside(root, bad) is None, bad


def test_segment_files_lists_only_segments_and_prune(tmp_path):
    hour = tmp_path / "2025-06-03" / "14"
    hour.mkdir(parents=True)
    (hour / "win1-0530.mp4").write_bytes(b"x" * 10)
    (hour / "readme.txt").write_text("keep me")
    (tmp_path / "2025-06-03" / "15").mkdir()
    (tmp_path / "other").mkdir()
    assert segment_files(tmp_path) == {"2025-06-03/14/win1-0530.mp4": 10}
    assert prune_empty_dirs(tmp_path) == 1
    assert not (tmp_path / "2025-06-03" / "15").exists() and (tmp_path / "other").exists()
