"""Clip chunks survive transactions that do not commit: what was received comes from the
database (clip_chunks rows written in the ingest transaction), never from which part files
happen to be on disk. And tiny chunks are refused: a clip cannot become thousands of files.

Real ClipReceiver over a real hub store (all migrations; SQLite, then PostgreSQL), real signed
chunks; the ingest cases go through the real Ingestor (process_safely) of a provisioned hub."""

from __future__ import annotations

import hashlib

import pytest

from hub.clips import ClipReceiver, request_clip, site_clip_bytes
from hub.store import all_migrations, open_db
from iobase.sqlite import connect, migrate, transaction
from protocol import topics
from protocol.clips import MIN_CHUNK_BYTES, ClipChunk, seal_chunk
from protocol.crypto import generate_ed25519
from protocol.wire import WireError
from tests.hub.hubapp import metrics_text

NOW = 1_795_000_000_000
K = MIN_CHUNK_BYTES
CLIP = "S01-win1-1"
DATA = bytes(range(256)) * (K * 5 // 512)  # 2.5 chunks of K: chunks 0 and 1 full, 2 half
SHA = hashlib.sha256(DATA).hexdigest()


class Crash(Exception):
    """The hub dies (or ingest fails) before the transaction commits."""


@pytest.fixture
def key():
    return generate_ed25519()


def chunks(data=DATA, chunk_bytes=K, clip_id=CLIP):
    sha = hashlib.sha256(data).hexdigest()
    parts = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
    return [ClipChunk(clip_id, i, len(parts), sha, "win1", NOW, NOW + 6000, p) for i, p in enumerate(parts)]


def deliver(rx, db, key, c: ClipChunk):
    """One chunk in its own committed transaction, as ingest does; returns the ack."""
    with transaction(db):
        return rx.handle(db, "S01", seal_chunk(c, sign_key=key), key.public_key(), NOW)[1]


def attempt(rx, db, key, c: ClipChunk) -> str | None:
    """Like ingest: a refused chunk's reason (its counters commit), or None if it was stored."""
    with transaction(db):
        try:
            rx.handle(db, "S01", seal_chunk(c, sign_key=key), key.public_key(), NOW)
        except WireError as exc:
            return exc.reason
    return None


def deliver_and_crash(rx, db, key, c: ClipChunk):
    """The chunk is handled, then the transaction rolls back (no ack goes out)."""
    with pytest.raises(Crash):
        with transaction(db):
            rx.handle(db, "S01", seal_chunk(c, sign_key=key), key.public_key(), NOW)
            raise Crash()


def state(db, clip_id=CLIP):
    return db.execute("SELECT done, received, stored_bytes, size FROM clips WHERE clip_id=?", (clip_id,)).fetchone()


def counters(db) -> dict:
    return dict(db.execute("SELECT name, value FROM counters").fetchall())


def request(db, clip_id=CLIP):
    with transaction(db):
        request_clip(db, "S01", clip_id, "win1", NOW, NOW + 6000, NOW)


def test_rolled_back_first_chunk_then_full_resend_completes_the_clip(db, key, tmp_path):
    """The review's reproduction: the first chunk's file is written, its transaction rolls
    back, then every chunk comes (again) and is acked. Before, the resent chunk found its file
    and added 0 to `received`: done=0, received=2 of 3, stored_bytes 2 chunks while 3 were on disk."""
    rx = ClipReceiver(tmp_path / "clips")
    request(db)
    c = chunks()
    deliver_and_crash(rx, db, key, c[0])
    assert (tmp_path / "clips" / CLIP / "00000.part").is_file()  # the file stayed ...
    assert state(db) == (0, 0, 0, None)  # ... the database knows nothing
    for x in c:
        assert deliver(rx, db, key, x) == {"clip_id": CLIP, "index": x.index}
    assert state(db) == (1, 3, len(DATA), len(DATA))
    assert hashlib.sha256(rx.path(CLIP).read_bytes()).hexdigest() == SHA
    assert site_clip_bytes(db, "S01") == len(DATA)
    assert not (tmp_path / "clips" / CLIP).exists()  # parts removed once assembled
    assert db.execute("SELECT count(*) FROM clip_chunks").fetchone()[0] == 0


@pytest.mark.parametrize("crash_at", [0, 1, 2])
def test_crash_between_file_write_and_commit_then_resends(db, key, tmp_path, monkeypatch, crash_at):
    """The hub dies right after a chunk's file is written, before the row commits (the crash is
    raised inside the transaction, which then rolls back). A new receiver (the restarted hub)
    gets the resends of everything not acked and assembles a clip whose SHA-256 matches."""
    rx = ClipReceiver(tmp_path / "clips")
    request(db)
    c = chunks()
    acked = set()
    for x in c[:crash_at]:
        acked.add(deliver(rx, db, key, x)["index"])
    real_write = rx._write_part

    def write_then_die(part, data):
        real_write(part, data)
        raise Crash()

    monkeypatch.setattr(rx, "_write_part", write_then_die)
    deliver_and_crash(rx, db, key, c[crash_at])
    assert (tmp_path / "clips" / CLIP / f"{crash_at:05d}.part").is_file()
    assert state(db)[1] == crash_at  # only the committed chunks

    rx2 = ClipReceiver(tmp_path / "clips")  # the hub restarted
    for x in c:
        if x.index not in acked:  # the box resends what is unacked
            acked.add(deliver(rx2, db, key, x)["index"])
    assert acked == {0, 1, 2}
    assert state(db) == (1, 3, len(DATA), len(DATA))
    assert hashlib.sha256(rx2.path(CLIP).read_bytes()).hexdigest() == SHA


def test_assembly_whose_transaction_rolls_back_is_taken_when_the_last_chunk_comes_again(db, key, tmp_path):
    """The last chunk assembles the clip (file written, parts removed) but its transaction
    rolls back: no ack went out, the box resends the last chunk, and the clip is complete."""
    rx = ClipReceiver(tmp_path / "clips")
    request(db)
    c = chunks()
    deliver(rx, db, key, c[0])
    deliver(rx, db, key, c[1])
    deliver_and_crash(rx, db, key, c[2])
    assert state(db)[:2] == (0, 2) and rx.path(CLIP) is not None  # file there, not committed as done
    assert deliver(rx, db, key, c[2]) == {"clip_id": CLIP, "index": 2}
    assert state(db) == (1, 3, len(DATA), len(DATA))
    assert hashlib.sha256(rx.path(CLIP).read_bytes()).hexdigest() == SHA


def test_group_retried_one_by_one_by_ingest(tmp_path, store_url):
    """Through the real Ingestor: a chunk shares a group with a message that fails unexpectedly;
    process_safely rolls the group back and retries each message alone. The chunk is acked
    once (after its own commit) and the clip completes with the right byte count."""
    from hub.config import HubConfig
    from hub.ingest import Ingestor
    from hub.keys import HubKeys, SiteKeys
    from iobase.config import load_config
    from provisioning.setup import add_site, init_hub
    from tests.craft import SiteSigner

    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    add_site(root, code="S01", name="S01")
    cfg = load_config(root / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    sent = []
    ing = Ingestor(
        conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda t, p, q, r: sent.append((t, p))
    )
    ing.clips = ClipReceiver(root / "data" / "clips")
    poison = "jiancha/S01/up/poison"
    real_dispatch = ing._dispatch

    def dispatch(topic, payload, now_ms, out):
        if topic == poison:
            raise RuntimeError("unexpected")
        return real_dispatch(topic, payload, now_ms, out)

    ing._dispatch = dispatch
    try:
        request(conn)
        key = SiteSigner(root, "S01").sign_key
        c = [seal_chunk(x, sign_key=key) for x in chunks()]
        clip_topic = topics.site_clip("S01")
        ing.process_safely([(clip_topic, c[0]), (poison, b"boom")])  # group fails, then one by one
        ing.process_safely([(clip_topic, c[1]), (clip_topic, c[2])])
        acks = [p for t, p in sent if t == topics.site_clip_ack("S01")]
        assert sorted(a["index"] for a in acks) == [0, 1, 2]
        assert state(conn) == (1, 3, len(DATA), len(DATA))
        path = ing.clips.path(CLIP)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
        assert counters(conn)["rejected_internal_error"] == 1  # the poison, quarantined alone
    finally:
        conn.close()


def test_missing_chunk_file_at_assembly_is_not_assembled_and_is_taken_again(db, key, tmp_path):
    """A committed chunk whose file disappeared (disk trouble, an operator's rm) is forgotten at
    assembly and counted; the clip completes when that chunk comes again."""
    rx = ClipReceiver(tmp_path / "clips")
    request(db)
    c = chunks()
    deliver(rx, db, key, c[0])
    deliver(rx, db, key, c[1])
    (tmp_path / "clips" / CLIP / "00001.part").unlink()
    assert deliver(rx, db, key, c[2]) == {"clip_id": CLIP, "index": 2}
    assert state(db) == (0, 2, len(c[0].data) + len(c[2].data), None)
    assert counters(db)["clip_chunks_lost"] == 1
    assert "jiancha_clip_chunks_lost_total 1" in metrics_text(db)
    deliver(rx, db, key, c[1])
    assert state(db) == (1, 3, len(DATA), len(DATA))
    assert hashlib.sha256(rx.path(CLIP).read_bytes()).hexdigest() == SHA


def test_resent_chunk_already_stored_is_acked_without_counting_twice(db, key, tmp_path):
    rx = ClipReceiver(tmp_path / "clips")
    request(db)
    c = chunks()
    deliver(rx, db, key, c[0])
    deliver(rx, db, key, c[0])
    assert state(db) == (0, 1, K, None)


def test_tiny_chunks_are_refused_and_counted(db, key, tmp_path):
    """1,999 one-byte chunks were 1,999 files charged as 1,999 bytes. Now every chunk but the
    last needs MIN_CHUNK_BYTES; the refusal is a ClipRefused, counted, and nothing is stored."""
    rx = ClipReceiver(tmp_path / "clips")
    request(db)
    tiny = chunks(b"z" * 1999, 1)
    for x in tiny[:3]:
        assert attempt(rx, db, key, x) == "chunk_too_small"
    assert not (tmp_path / "clips" / CLIP).exists()
    assert state(db)[:3] == (0, 0, 0)
    assert counters(db)["clip_chunks_dropped"] == 3
    # just under the minimum is refused too; the minimum itself is taken, and a short last chunk
    assert attempt(rx, db, key, chunks(b"u" * (2 * K - 2), K - 1)[0]) == "chunk_too_small"
    ok = chunks(b"m" * (K + 1), K)
    assert len(ok) == 2 and len(ok[1].data) == 1
    for x in ok:
        deliver(rx, db, key, x)
    assert state(db) == (1, 2, K + 1, K + 1)


def test_chunk_count_is_bounded_by_the_clip_cap(db, key, tmp_path):
    """No more chunks than the clip cap allows at the minimum size, even when the last chunk
    (which may be small) comes first and nothing else says how large the clip is."""
    rx = ClipReceiver(tmp_path / "clips", site_cap_bytes=100 * K, clip_cap_bytes=4 * K)
    assert rx.max_chunks == 5
    request(db)
    last = ClipChunk(CLIP, 5, 6, "0" * 64, "win1", NOW, NOW + 6000, b"x")
    assert attempt(rx, db, key, last) == "clip_too_large"
    assert db.execute("SELECT refused FROM clips WHERE clip_id=?", (CLIP,)).fetchone()[0] == "clip_too_large"


def test_upgrade_takes_over_part_files_of_an_upload_in_progress(tmp_path, key, store_url):
    """A database made by the previous version (no clip_chunks), in the state the review found:
    every chunk acked and on disk, `received` 2 of 3. After the upgrade the part files are
    taken over and the clip assembles, without the box sending anything again (it has deleted
    its copy). A second upload in progress keeps its chunks and finishes with the rest.

    On PostgreSQL (no store of the previous version exists) the store starts at the final
    schema and the uploads are listed in clip_parts_unscanned as 0303 lists them: the take-over
    itself is the same code on both engines."""
    pg = store_url.startswith("postgresql")
    if pg:
        conn = open_db(store_url)
    else:
        conn = connect(tmp_path / "old.db")
        migrate(conn, [m for m in all_migrations() if m[0] != "0303_clip_chunks"])
    root = tmp_path / "clips"
    c = chunks()
    for x in c:
        (root / CLIP).mkdir(parents=True, exist_ok=True)
        (root / CLIP / f"{x.index:05d}.part").write_bytes(x.data)
    conn.execute(
        "INSERT INTO clips (clip_id, site, camera, start_ms, end_ms, total, received, sha256, "
        "done, updated_ms, requested_ms, chunk_bytes, stored_bytes) "
        "VALUES (?, 'S01', 'win1', ?, ?, 3, 2, ?, 0, ?, ?, ?, ?)",
        (CLIP, NOW, NOW + 6000, SHA, NOW, NOW, K, 2 * K),
    )
    other = "S01-win1-2"
    d2 = chunks(bytes(range(200)) * 300, K, clip_id=other)  # 60,000 bytes: 4 chunks
    (root / other).mkdir()
    (root / other / "00000.part").write_bytes(d2[0].data)  # acked before the upgrade
    (root / other / "00001.part").write_bytes(d2[1].data[:100])  # torn file, never acked
    (root / other / "00009.part").write_bytes(b"junk")  # outside the clip
    conn.execute(
        "INSERT INTO clips (clip_id, site, camera, start_ms, end_ms, total, received, sha256, "
        "done, updated_ms, requested_ms, chunk_bytes, stored_bytes) "
        "VALUES (?, 'S01', 'win1', ?, ?, 4, 1, ?, 0, ?, ?, ?, ?)",
        (other, NOW, NOW + 6000, d2[0].sha256, NOW, NOW, K, K),
    )
    if pg:
        conn.execute("INSERT INTO clip_parts_unscanned SELECT clip_id FROM clips WHERE done = 0 AND refused IS NULL")
    else:
        conn.commit()
        assert migrate(conn, all_migrations()) == ["0303_clip_chunks"]
    rx = ClipReceiver(root)
    # the next chunk of any clip makes the receiver take over the old uploads first
    assert deliver(rx, conn, key, d2[2]) == {"clip_id": other, "index": 2}
    assert state(conn) == (1, 3, len(DATA), len(DATA))
    assert hashlib.sha256(rx.path(CLIP).read_bytes()).hexdigest() == SHA
    assert state(conn, other)[:3] == (0, 2, 2 * K)  # chunk 0 (taken over) and 2
    assert conn.execute("SELECT count(*) FROM clip_parts_unscanned").fetchone()[0] == 0
    deliver(rx, conn, key, d2[1])
    deliver(rx, conn, key, d2[3])
    assert state(conn, other)[:2] == (1, 4)
    assert rx.path(other).read_bytes() == bytes(range(200)) * 300
    conn.close()
