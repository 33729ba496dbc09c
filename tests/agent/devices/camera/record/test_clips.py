import pytest

from agent.devices.camera.record.clips import ClipUpload, chunk_count, chunk_plan
from agent.devices.camera.record.index import RecordingsIndex


@pytest.mark.parametrize(
    "size, chunk, acked, expected",
    [
        (0, 10, [], [0]),
        (10, 10, [], [0]),
        (11, 10, [], [0, 1]),
        (35, 10, [1, 3], [0, 2]),
        (35, 10, [0, 1, 2, 3], []),
        (35, 10, [7, -1], [0, 1, 2, 3]),  # stray acks change nothing
    ],
)
def test_chunk_plan(size, chunk, acked, expected):
    assert chunk_plan(size, chunk, acked) == expected


def test_chunk_count_rejects_zero():
    with pytest.raises(ValueError):
        chunk_count(10, 0)


def test_upload_resumes_after_restart_and_resets_when_the_clip_changes(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(bytes(range(256)) * 4)  # 1024 bytes
    idx = RecordingsIndex(tmp_path)
    up = ClipUpload(clip, "req-1", 300, index=idx)
    assert up.offer() == {"clip_id": "req-1", "bytes": 1024, "chunk_bytes": 300, "total": 4, "sha256": up.sha256}
    sent = []
    for i, total, data in up:
        sent.append((i, total, len(data)))
        if i < 2:
            up.ack(i)  # the link drops after chunk 2 is sent
    assert sent == [(0, 4, 300), (1, 4, 300), (2, 4, 300), (3, 4, 124)]
    idx.close()

    idx = RecordingsIndex(tmp_path)  # the agent restarted
    up = ClipUpload(clip, "req-1", 300, index=idx)
    assert up.pending() == [2, 3] and not up.done
    data = b"".join(up.chunk(i) for i in range(up.total))
    assert data == clip.read_bytes()
    for i, _, _ in up:
        up.ack(i)
    up.ack(99)
    assert (
        up.done
        and idx.conn.execute("SELECT done_ms IS NOT NULL FROM clip_uploads WHERE clip_id='req-1'").fetchone()[0] == 1
    )

    clip.write_bytes(b"another clip")  # same id, new content: start over
    up = ClipUpload(clip, "req-1", 300, index=idx)
    assert up.pending() == [0] and up.total == 1
    idx.close()


def test_discard_removes_our_clip_file_but_not_others(tmp_path):
    idx = RecordingsIndex(tmp_path)
    (tmp_path / "clips").mkdir()
    ours = tmp_path / "clips" / "c1.mp4"
    ours.write_bytes(b"clip")
    elsewhere = tmp_path / "evidence.mp4"
    elsewhere.write_bytes(b"keep")
    for path, cid in ((ours, "c1"), (elsewhere, "c2")):
        up = ClipUpload(path, cid, 2, index=idx)
        up.ack(0)
        up.discard()
    assert not ours.exists() and elsewhere.exists()
    assert idx.conn.execute("SELECT count(*) FROM clip_acks").fetchone()[0] == 0  # cascade
    idx.close()


@pytest.mark.parametrize("clip_id", ["S01-cam1-1\n", "../x", "", "a" * 65, "S01 cam"])
def test_a_clip_id_with_anything_but_the_allowed_characters_is_refused(tmp_path, clip_id):
    from agent.devices.camera.record.clips import build_clip

    with pytest.raises(ValueError, match="clip id"):
        build_clip(RecordingsIndex(tmp_path / "rec.db"), "cam1", 0, 1000, clip_id, tmp_path)
