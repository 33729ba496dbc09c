from agent.devices.camera.record.index import RecordingsIndex, Segment


def seg(path, camera, start_s, end_s, size=100):
    return Segment(path, camera, start_s * 1000, end_s * 1000, size)


def test_index_is_its_own_wal_database(tmp_path):
    idx = RecordingsIndex(tmp_path)
    assert idx.db_path == tmp_path / "recordings.db"
    assert idx.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {r[0] for r in idx.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "segments",
        "clip_uploads",
        "clip_acks",
    }
    cols = [r[1] for r in idx.conn.execute("PRAGMA table_info(segments)")]
    assert cols[:5] == ["path", "camera", "start_ms", "end_ms", "bytes"]
    idx.close()


def test_find_segments_returns_overlaps_in_order(tmp_path):
    idx = RecordingsIndex(tmp_path)
    idx.add([seg("a", "win1", 0, 60), seg("b", "win1", 60, 120), seg("c", "win1", 120, 180), seg("x", "win2", 60, 120)])
    assert [s.path for s in idx.find_segments("win1", 90_000, 130_000)] == ["b", "c"]
    assert [s.path for s in idx.find_segments("win1", 60_000, 120_000)] == ["b"]  # half-open
    assert idx.find_segments("win1", 500_000, 600_000) == []
    assert [s.path for s in idx.find_segments("win2", 0, 10**9)] == ["x"]
    assert idx.total_bytes() == 400
    assert idx.remove(["a", "zzz"]) == 1 and idx.paths() == {"b", "c", "x"}
    idx.close()
    again = RecordingsIndex(tmp_path)  # persisted, migrations not re-run
    assert [s.path for s in again.segments("win1")] == ["b", "c"]
    again.close()
