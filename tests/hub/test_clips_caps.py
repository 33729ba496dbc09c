"""Clips at the hub: only clips the hub asked that very site for are stored, within a per-clip
and a per-site cap, in chunks of at least MIN_CHUNK_BYTES but for the last; whatever is refused
is counted (and shows in /metrics).

Real ClipReceiver over a real hub store (all migrations; SQLite, then PostgreSQL), real signed chunks."""

from __future__ import annotations

import hashlib

import pytest

from hub.clips import ClipReceiver, request_clip, site_clip_bytes
from protocol.clips import MIN_CHUNK_BYTES, ClipChunk, open_chunk, seal_chunk
from protocol.crypto import generate_ed25519
from protocol.wire import WireError
from tests.hub.hubapp import metrics_text

NOW = 1_795_000_000_000
K = MIN_CHUNK_BYTES  # the smallest chunk the hub takes (but for the last)


@pytest.fixture
def keys():
    return {site: generate_ed25519() for site in ("140702", "140702-001", "S01")}


def chunks(clip_id, data: bytes, chunk_bytes: int, camera="win1", start=NOW, end=NOW + 6000):
    sha = hashlib.sha256(data).hexdigest()
    parts = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
    return [ClipChunk(clip_id, i, len(parts), sha, camera, start, end, p) for i, p in enumerate(parts)]


def send(rx, db, site, key, c: ClipChunk):
    return rx.handle(db, site, seal_chunk(c, sign_key=key), key.public_key(), NOW)


def counters(db) -> dict:
    return dict(db.execute("SELECT name, value FROM counters").fetchall())


def test_requested_clip_is_stored_and_assembled(db, keys, tmp_path):
    rx = ClipReceiver(tmp_path / "clips")
    data = bytes(range(256)) * (K * 5 // 512)  # 2.5 chunks
    request_clip(db, "S01", "S01-win1-1", "win1", NOW, NOW + 6000, NOW)
    for c in chunks("S01-win1-1", data, K):
        topic, ack = send(rx, db, "S01", keys["S01"], c)
        assert ack == {"clip_id": "S01-win1-1", "index": c.index} and topic.endswith("/S01/down/clip")
    assert rx.path("S01-win1-1").read_bytes() == data
    row = db.execute(
        "SELECT done, size, stored_bytes, total, received FROM clips WHERE clip_id='S01-win1-1'"
    ).fetchone()
    assert row == (1, len(data), len(data), 3, 3)
    assert site_clip_bytes(db, "S01") == len(data)


def test_unrequested_clip_is_refused_without_storing_anything(db, keys, tmp_path):
    rx = ClipReceiver(tmp_path / "clips")
    c = chunks("S01-win1-1", b"x" * (K + 5000), K)[0]
    payload = seal_chunk(c, sign_key=keys["S01"])
    with pytest.raises(WireError) as e:
        rx.handle(db, "S01", payload, keys["S01"].public_key(), NOW)
    assert e.value.reason == "unrequested_clip"
    assert not (tmp_path / "clips").exists() or not any((tmp_path / "clips").iterdir())
    assert db.execute("SELECT count(*) FROM clips").fetchone()[0] == 0  # no row created by a chunk
    n = counters(db)
    assert n["clip_bytes_dropped"] == len(payload) and n["clip_chunks_dropped"] == 1
    text = metrics_text(db)
    assert f'jiancha_dropped_bytes_total{{what="clip"}} {len(payload)}' in text
    assert "jiancha_clip_chunks_dropped_total 1" in text


def test_ownership_is_exact_even_when_site_codes_prefix_each_other(db, keys, tmp_path):
    """Site 140702 must not upload into a clip the hub asked site 140702-001 for (the old test
    was clip_id.startswith(f"{site}-"), which 140702-001-... passes for site 140702)."""
    rx = ClipReceiver(tmp_path / "clips")
    request_clip(db, "140702-001", "140702-001-win1-5", "win1", NOW, NOW + 6000, NOW)
    c = chunks("140702-001-win1-5", b"evil" * 100, 4096)[0]
    with pytest.raises(WireError) as e:
        send(rx, db, "140702", keys["140702"], c)
    assert e.value.reason == "wrong_site"
    # and a clip id that merely starts with the site's code is not the site's either
    with pytest.raises(WireError) as e:
        send(rx, db, "140702", keys["140702"], chunks("140702-win1-5", b"x", 4096)[0])
    assert e.value.reason == "unrequested_clip"
    # the rightful site uploads fine
    send(rx, db, "140702-001", keys["140702-001"], chunks("140702-001-win1-5", b"ok", 4096)[0])
    assert db.execute("SELECT done FROM clips WHERE clip_id='140702-001-win1-5'").fetchone()[0] == 1


def test_chunk_must_match_the_request(db, keys, tmp_path):
    rx = ClipReceiver(tmp_path / "clips")
    request_clip(db, "S01", "S01-win1-1", "win1", NOW, NOW + 6000, NOW)
    with pytest.raises(WireError) as e:
        send(rx, db, "S01", keys["S01"], chunks("S01-win1-1", b"x" * 10, 4096, end=NOW + 3_600_000)[0])
    assert e.value.reason == "malformed"
    with pytest.raises(WireError) as e:
        send(rx, db, "S01", keys["S01"], chunks("S01-win1-1", b"x" * 10, 4096, camera="win2")[0])
    assert e.value.reason == "malformed"


def test_clip_id_with_a_trailing_newline_is_malformed(keys):
    c = ClipChunk("S01-win1-1\n", 0, 1, "0" * 64, "win1", 1, 2, b"x")
    with pytest.raises(WireError) as e:
        open_chunk(seal_chunk(c, sign_key=keys["S01"]), verify_key=keys["S01"].public_key())
    assert e.value.reason == "malformed"


def test_declared_size_over_the_clip_cap_is_refused_at_the_first_chunk(db, keys, tmp_path):
    rx = ClipReceiver(tmp_path / "clips", site_cap_bytes=10 * K, clip_cap_bytes=5 * K)
    request_clip(db, "S01", "S01-win1-1", "win1", NOW, NOW + 6000, NOW)
    # 20,000 chunks of 16 KiB declared: ~320 MB claimed by one small chunk
    big = ClipChunk("S01-win1-1", 0, 20_000, "0" * 64, "win1", NOW, NOW + 6000, b"y" * K)
    with pytest.raises(WireError) as e:
        send(rx, db, "S01", keys["S01"], big)
    assert e.value.reason == "clip_too_large"
    assert db.execute("SELECT refused, stored_bytes FROM clips WHERE clip_id='S01-win1-1'").fetchone() == (
        "clip_too_large",
        0,
    )
    assert not (tmp_path / "clips" / "S01-win1-1").exists()
    # its resends are refused too, and counted
    with pytest.raises(WireError):
        send(rx, db, "S01", keys["S01"], big)
    assert counters(db)["clip_chunks_dropped"] == 2


def test_site_cap_counts_stored_and_declared_bytes(db, keys, tmp_path):
    rx = ClipReceiver(tmp_path / "clips", site_cap_bytes=10 * K, clip_cap_bytes=6 * K)
    data = b"a" * (6 * K)
    request_clip(db, "S01", "S01-win1-1", "win1", NOW, NOW + 6000, NOW)
    for c in chunks("S01-win1-1", data, K):
        send(rx, db, "S01", keys["S01"], c)
    assert site_clip_bytes(db, "S01") == 6 * K
    # a second clip of 5 chunks would take the site to 11 * K > 10 * K
    request_clip(db, "S01", "S01-win1-2", "win1", NOW + 10_000, NOW + 16_000, NOW)
    second = chunks("S01-win1-2", b"b" * (5 * K), K, start=NOW + 10_000, end=NOW + 16_000)
    with pytest.raises(WireError) as e:
        send(rx, db, "S01", keys["S01"], second[0])
    assert e.value.reason == "clip_quota"
    # another site's quota is its own
    request_clip(db, "140702", "140702-win1-1", "win1", NOW, NOW + 6000, NOW)
    for c in chunks("140702-win1-1", data, K):
        send(rx, db, "140702", keys["140702"], c)
    # deleting the first clip frees the quota: a new request of the same size fits
    assert rx.delete(db, "S01-win1-1") and rx.path("S01-win1-1") is None
    assert site_clip_bytes(db, "S01") == 0
    request_clip(db, "S01", "S01-win1-3", "win1", NOW + 20_000, NOW + 26_000, NOW)
    for c in chunks("S01-win1-3", b"c" * (5 * K), K, start=NOW + 20_000, end=NOW + 26_000):
        send(rx, db, "S01", keys["S01"], c)
    assert rx.path("S01-win1-3").stat().st_size == 5 * K
    text = metrics_text(db)
    assert f'jiancha_clip_bytes{{site="S01"}} {5 * K}' in text


def test_chunks_of_a_clip_must_keep_their_size(db, keys, tmp_path):
    """Every chunk but the last has the size of the first: a box cannot declare small and send big."""
    rx = ClipReceiver(tmp_path / "clips", site_cap_bytes=1024 * 1024, clip_cap_bytes=1024 * 1024)
    request_clip(db, "S01", "S01-win1-1", "win1", NOW, NOW + 6000, NOW)
    send(rx, db, "S01", keys["S01"], ClipChunk("S01-win1-1", 0, 3, "0" * 64, "win1", NOW, NOW + 6000, b"s" * K))
    with pytest.raises(WireError) as e:
        send(
            rx, db, "S01", keys["S01"], ClipChunk("S01-win1-1", 1, 3, "0" * 64, "win1", NOW, NOW + 6000, b"B" * 200_000)
        )
    assert e.value.reason == "malformed"
    # nor a last chunk larger than the others
    with pytest.raises(WireError) as e:
        send(
            rx, db, "S01", keys["S01"], ClipChunk("S01-win1-1", 2, 3, "0" * 64, "win1", NOW, NOW + 6000, b"L" * (K + 1))
        )
    assert e.value.reason == "malformed"


def test_migration_keeps_clips_from_before(tmp_path):
    """A database made before 0302 keeps its clips (as requested) after the upgrade."""
    # SQLite only: 0302 is a step of the SQLite history; PostgreSQL stores start at the final schema
    from hub.clips import MIGRATIONS
    from hub.store import all_migrations
    from iobase.sqlite import connect, migrate

    path = tmp_path / "old.db"
    conn = connect(path)
    before = [m for m in all_migrations() if m[0] not in ("0302_clip_requests_and_caps", "0303_clip_chunks")]
    migrate(conn, before)
    conn.execute(
        "INSERT INTO clips (clip_id, site, camera, start_ms, end_ms, total, received, sha256, size, done, "
        "updated_ms) VALUES ('S01-win1-1', 'S01', 'win1', 1, 2, 3, 3, 'ab', 99, 1, 5)"
    )
    conn.commit()
    assert migrate(conn, all_migrations()) == ["0302_clip_requests_and_caps", "0303_clip_chunks"]
    row = conn.execute("SELECT requested_ms, stored_bytes, done FROM clips").fetchone()
    assert row == (5, 99, 1)
    assert [m[0] for m in MIGRATIONS][:1] == ["0301_clips"]
    conn.close()
