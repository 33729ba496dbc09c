"""Clips at the hub: store signed chunks as they arrive, ack each, assemble and verify the clip.

Chunks are files under DATA/clips/<clip_id>/ (video does not belong in the database); the
`clips` table tracks what was requested and what is complete, and `clip_chunks` which chunks
are stored: one row (clip_id, idx, size) per chunk, written in the ingest transaction after
its file was written and fsync'd. The rows, never the files present, say what was received:
a file without a row (its transaction rolled back: hub crash, or ingest retrying a group one
message at a time) is simply overwritten when the chunk comes again, and the ack goes out
only after the row is committed. `received` and `stored_bytes` in `clips` are the count and
the sum of the rows. Runs in the ingest thread like every other message.

Only clips the hub asked for are accepted: `POST /api/sites/{code}/clips` writes a requested
row (clip_id, site, camera, start/end, requested_ms) before the command goes out, and a chunk
is stored only when its clip_id is requested *for the site that signed it* (exact match on
(clip_id, site)) with the same camera and times. Stored bytes are capped per clip and per
site; every chunk but the last must have at least MIN_CHUNK_BYTES (so a clip is at most
`clip_cap // MIN_CHUNK_BYTES + 1` files); what is refused is counted (`clip_bytes_dropped`,
`rejected_<reason>`) for /metrics.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

from hub.store import bump
from iobase.files import fsync_path
from protocol import topics
from protocol.clips import MAX_CHUNKS, MIN_CHUNK_BYTES, ClipRefused, open_chunk
from protocol.wire import WireError

log = logging.getLogger("jiancha.hub.clips")

GiB = 1024**3
DEFAULT_SITE_CAP_BYTES = 2 * GiB  # all stored clips of one site (complete and in progress)
DEFAULT_CLIP_CAP_BYTES = 1 * GiB  # one clip (at most one hour of one camera)

MIGRATIONS = [
    (
        "0301_clips",
        """
        CREATE TABLE clips (clip_id TEXT PRIMARY KEY, site TEXT NOT NULL, camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, total INTEGER NOT NULL,
            received INTEGER NOT NULL DEFAULT 0, sha256 TEXT NOT NULL, size INTEGER,
            done INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER);
    """,
    ),
    # A clip is requested before any chunk arrives (total and sha256 unknown until then), so the
    # table is rebuilt with those columns nullable. Rows from before this migration were accepted
    # under the old rule; they count as requested so an upload in progress can finish.
    (
        "0302_clip_requests_and_caps",
        """
        CREATE TABLE clips_v2 (clip_id TEXT PRIMARY KEY, site TEXT NOT NULL, camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, total INTEGER,
            received INTEGER NOT NULL DEFAULT 0, sha256 TEXT, size INTEGER,
            done INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER, requested_ms INTEGER NOT NULL,
            chunk_bytes INTEGER, stored_bytes INTEGER NOT NULL DEFAULT 0, refused TEXT);
        INSERT INTO clips_v2 (clip_id, site, camera, start_ms, end_ms, total, received, sha256, size,
            done, updated_ms, requested_ms, stored_bytes)
            SELECT clip_id, site, camera, start_ms, end_ms, total, received, sha256, size, done,
                updated_ms, COALESCE(updated_ms, 0), COALESCE(size, 0) FROM clips;
        DROP TABLE clips;
        ALTER TABLE clips_v2 RENAME TO clips;
        CREATE INDEX clips_site ON clips(site);
    """,
    ),
    # Which chunks are stored is a row per chunk, written in the same transaction as the rest (a
    # part file alone proves nothing: its transaction may have rolled back). Uploads in progress
    # under the previous version are listed in clip_parts_unscanned: the receiver takes their
    # part files into clip_chunks before it handles the next chunk (a migration cannot read the
    # disk), so chunks already acked are not lost and a clip whose counter drifted can finish.
    (
        "0303_clip_chunks",
        """
        CREATE TABLE clip_chunks (clip_id TEXT NOT NULL, idx INTEGER NOT NULL, size INTEGER NOT NULL,
            PRIMARY KEY (clip_id, idx)) WITHOUT ROWID;
        CREATE TABLE clip_parts_unscanned (clip_id TEXT PRIMARY KEY);
        INSERT INTO clip_parts_unscanned SELECT clip_id FROM clips WHERE done = 0 AND refused IS NULL;
    """,
    ),
]


def request_clip(conn, site: str, clip_id: str, camera: str, start_ms: int, end_ms: int, now_ms: int) -> dict:
    """Record that the hub asks `site` for this clip (idempotent); returns the row as a dict."""
    conn.execute(
        "INSERT INTO clips (clip_id, site, camera, start_ms, end_ms, requested_ms, updated_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(clip_id) DO NOTHING",
        (clip_id, site, camera, start_ms, end_ms, now_ms, now_ms),
    )
    cur = conn.execute("SELECT * FROM clips WHERE clip_id=?", (clip_id,))
    cols = [c[0] for c in cur.description]
    return dict(zip(cols, cur.fetchone()))


def site_clip_bytes(conn, site: str, exclude: str | None = None) -> int:
    """Bytes a site's clips hold or have declared (complete: their size; in progress: the larger
    of what is stored and what the chunks declare)."""
    held = "COALESCE(size, stored_bytes, 0)"
    declared = "CASE WHEN done = 0 AND refused IS NULL THEN COALESCE(total * chunk_bytes, 0) ELSE 0 END"
    # the larger of the two per clip (CASE: SQLite has no GREATEST, PostgreSQL no scalar MAX)
    return int(
        conn.execute(
            f"SELECT COALESCE(SUM(CASE WHEN {held} >= {declared} THEN {held} ELSE {declared} END), 0) "
            "FROM clips WHERE site=? AND clip_id IS DISTINCT FROM ?",
            (site, exclude),
        ).fetchone()[0]
    )


class ClipReceiver:
    """Stores chunks; returns the ack to publish, or raises WireError (the caller quarantines).

    Runs inside the caller's transaction, and the caller publishes the ack only after it commits.
    Files are written (and fsync'd) before the row that records them, so a committed row always
    has its file; a file without a row is overwritten when its chunk comes again."""

    def __init__(
        self, root: Path, *, site_cap_bytes: int = DEFAULT_SITE_CAP_BYTES, clip_cap_bytes: int = DEFAULT_CLIP_CAP_BYTES
    ):
        self.root = Path(root)
        self.site_cap_bytes = int(site_cap_bytes)
        self.clip_cap_bytes = int(min(clip_cap_bytes, site_cap_bytes))
        # every chunk but the last has at least MIN_CHUNK_BYTES, so no clip within the cap needs more
        self.max_chunks = min(MAX_CHUNKS, self.clip_cap_bytes // MIN_CHUNK_BYTES + 1)

    def handle(self, conn, site: str, payload: bytes, verify_key, now_ms: int) -> tuple[str, dict]:
        """Verify, check it was requested and fits the caps, store, ack; assemble at the last chunk."""
        if conn.execute("SELECT 1 FROM clip_parts_unscanned LIMIT 1").fetchone():
            self.recover(conn)
        try:
            return self._handle(conn, site, payload, verify_key, now_ms)
        except WireError:
            bump(conn, "clip_chunks_dropped")
            bump(conn, "clip_bytes_dropped", len(payload))
            raise

    def _handle(self, conn, site, payload, verify_key, now_ms):
        c = open_chunk(payload, verify_key=verify_key)
        row = conn.execute(
            "SELECT camera, start_ms, end_ms, total, sha256, done, chunk_bytes, "
            "refused FROM clips WHERE clip_id=? AND site=?",
            (c.clip_id, site),
        ).fetchone()
        if row is None:
            owner = conn.execute("SELECT 1 FROM clips WHERE clip_id=?", (c.clip_id,)).fetchone()
            if owner is not None:
                raise WireError("wrong_site", f"clip {c.clip_id} was requested from another site, not {site}")
            raise ClipRefused("unrequested_clip", f"the hub never asked {site} for clip {c.clip_id}")
        camera, start_ms, end_ms, total, sha, done, chunk_bytes, refused = row
        if (camera, start_ms, end_ms) != (c.camera, c.start_ms, c.end_ms):
            raise WireError("malformed", f"clip {c.clip_id}: camera or times differ from the request")
        if total is not None and (total, sha) != (c.total, c.sha256):
            raise WireError("malformed", f"clip {c.clip_id}: chunk disagrees with earlier chunks")
        ack = {"clip_id": c.clip_id, "index": c.index}
        if done:
            return topics.site_clip_ack(site), ack  # already complete: just ack again
        if refused:
            raise ClipRefused(refused, f"clip {c.clip_id} was refused earlier ({refused})")
        last = c.index == c.total - 1
        size = len(c.data)
        if not last:  # every chunk but the last has the same size, not tiny
            if size < MIN_CHUNK_BYTES:
                raise ClipRefused(
                    "chunk_too_small",
                    f"clip {c.clip_id}: chunk {c.index} of {size} bytes (at least {MIN_CHUNK_BYTES} but for the last)",
                )
            if chunk_bytes is not None and size != chunk_bytes:
                raise WireError(
                    "malformed", f"clip {c.clip_id}: chunk of {size} bytes, earlier chunks had {chunk_bytes}"
                )
            if chunk_bytes is None:
                last_size = conn.execute(
                    "SELECT size FROM clip_chunks WHERE clip_id=? AND idx=?", (c.clip_id, c.total - 1)
                ).fetchone()
                if last_size is not None and last_size[0] > size:
                    raise WireError(
                        "malformed",
                        f"clip {c.clip_id}: last chunk of {last_size[0]} bytes is larger than the others ({size})",
                    )
            chunk_bytes = size
        elif c.total > 1 and chunk_bytes is not None and size > chunk_bytes:
            raise WireError(
                "malformed", f"clip {c.clip_id}: last chunk of {size} bytes is larger than the others ({chunk_bytes})"
            )
        folder = self.root / c.clip_id
        part = folder / f"{c.index:05d}.part"
        old = conn.execute("SELECT size FROM clip_chunks WHERE clip_id=? AND idx=?", (c.clip_id, c.index)).fetchone()
        if old is not None and _has_file(part, old[0]):  # stored and committed before: ack again
            if _recount(conn, c.clip_id) == c.total:  # (an assembly that failed is tried again)
                self._assemble(conn, c.clip_id, c.total, c.sha256, folder)
            return topics.site_clip_ack(site), ack
        stored = int(
            conn.execute("SELECT COALESCE(SUM(size), 0) FROM clip_chunks WHERE clip_id=?", (c.clip_id,)).fetchone()[0]
        )
        after = stored - (old[0] if old else 0) + size
        # upper bound of the whole clip (a lower one while only the last chunk has come)
        declared = c.total * chunk_bytes if chunk_bytes else max(after, (c.total - 1) * MIN_CHUNK_BYTES)
        others = site_clip_bytes(conn, site, exclude=c.clip_id)
        reason = None
        if c.total > self.max_chunks or max(declared, after) > self.clip_cap_bytes:
            reason = "clip_too_large"
            detail = (
                f"clip {c.clip_id} declares {c.total} chunks, {declared} bytes; cap {self.clip_cap_bytes} "
                f"bytes ({self.max_chunks} chunks) per clip"
            )
        elif others + max(declared, after) > self.site_cap_bytes:
            reason = "clip_quota"
            detail = (
                f"site {site} holds {others} bytes of clips; clip {c.clip_id} ({declared} bytes) "
                f"would pass the cap of {self.site_cap_bytes} per site"
            )
        if reason:
            conn.execute("UPDATE clips SET refused=?, updated_ms=? WHERE clip_id=?", (reason, now_ms, c.clip_id))
            conn.execute("DELETE FROM clip_chunks WHERE clip_id=?", (c.clip_id,))
            shutil.rmtree(folder, ignore_errors=True)  # what was stored of it is freed
            conn.execute("UPDATE clips SET stored_bytes=0, received=0 WHERE clip_id=?", (c.clip_id,))
            log.warning("clip refused: %s", detail)
            raise ClipRefused(reason, detail)
        self._write_part(part, c.data)  # file first (fsync'd), then the row that records it
        conn.execute(
            "INSERT INTO clip_chunks (clip_id, idx, size) VALUES (?, ?, ?) "
            "ON CONFLICT(clip_id, idx) DO UPDATE SET size=excluded.size",
            (c.clip_id, c.index, size),
        )
        conn.execute(
            "UPDATE clips SET total=?, sha256=?, chunk_bytes=?, updated_ms=? WHERE clip_id=?",
            (c.total, c.sha256, chunk_bytes, now_ms, c.clip_id),
        )
        if _recount(conn, c.clip_id) == c.total:
            self._assemble(conn, c.clip_id, c.total, c.sha256, folder)
        return topics.site_clip_ack(site), ack

    def _write_part(self, part: Path, data: bytes) -> None:
        """Write a chunk's file durably: temporary file, fsync, rename, fsync the folder."""
        folder = part.parent
        if not folder.is_dir():
            new_root = not self.root.is_dir()
            folder.mkdir(parents=True, exist_ok=True)
            if new_root:
                fsync_path(self.root.parent)
            fsync_path(self.root)
        _write_durably(part, data)

    def _assemble(self, conn, clip_id: str, total: int, sha256: str, folder: Path) -> bool:
        """Join the chunks the rows name (exactly indexes 0..total-1) and check the digest.

        A chunk whose file is missing or has another size than its row is forgotten (its row
        deleted, counted as `clip_chunks_lost`): the clip waits for it to be sent again. A clip
        file left by an assembly whose transaction did not commit is taken if its digest matches."""
        rows = conn.execute(
            "SELECT idx, size FROM clip_chunks WHERE clip_id=? AND idx < ? ORDER BY idx", (clip_id, total)
        ).fetchall()
        if [i for i, _ in rows] != list(range(total)):
            return False
        out = self.root / f"{clip_id}.mp4"
        size = sum(n for _, n in rows)
        if out.is_file() and out.stat().st_size == size and _file_sha256(out) == sha256:
            self._finish(conn, clip_id, out, folder)
            return True
        missing = [i for i, n in rows if not _has_file(folder / f"{i:05d}.part", n)]
        if missing:
            self._lost(conn, clip_id, missing)
            return False
        tmp = out.with_suffix(".tmp")
        h = hashlib.sha256()
        with open(tmp, "wb") as f:
            for i, _ in rows:
                try:
                    data = (folder / f"{i:05d}.part").read_bytes()
                except OSError:  # unreadable: as if missing (not a poison message)
                    f.close()
                    tmp.unlink(missing_ok=True)
                    self._lost(conn, clip_id, [i])
                    return False
                h.update(data)
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if h.hexdigest() != sha256:
            tmp.unlink()
            # start over: the rows go, the files are overwritten as the chunks come again
            conn.execute("DELETE FROM clip_chunks WHERE clip_id=?", (clip_id,))
            _recount(conn, clip_id)
            raise WireError("bad_record", f"clip {clip_id}: assembled file does not match its sha256")
        tmp.replace(out)
        fsync_path(self.root)
        self._finish(conn, clip_id, out, folder)
        return True

    def _lost(self, conn, clip_id: str, indexes: list[int]) -> None:
        """Forget recorded chunks whose files are gone: the clip waits for them to come again."""
        conn.executemany("DELETE FROM clip_chunks WHERE clip_id=? AND idx=?", [(clip_id, i) for i in indexes])
        _recount(conn, clip_id)
        bump(conn, "clip_chunks_lost", len(indexes))
        log.error("clip %s: chunk files %s are missing or damaged; waiting for them again", clip_id, indexes)

    def _finish(self, conn, clip_id: str, out: Path, folder: Path) -> None:
        size = out.stat().st_size
        conn.execute(
            "UPDATE clips SET done=1, size=?, stored_bytes=?, received=total WHERE clip_id=?", (size, size, clip_id)
        )
        conn.execute("DELETE FROM clip_chunks WHERE clip_id=?", (clip_id,))
        shutil.rmtree(folder, ignore_errors=True)
        log.info("clip %s complete (%d bytes)", clip_id, size)

    def recover(self, conn) -> int:
        """Take the part files of uploads begun under the previous version (before clip_chunks)
        into clip_chunks, and assemble those now complete; returns how many clips were scanned.
        Runs in the caller's transaction (handle() calls it while any are left).

        Only files that fit what was committed are taken: an index below `total`, and the
        clip's chunk size (the last chunk: at most that). A non-last chunk was only ever acked
        in a transaction that also stored `chunk_bytes`, so what is skipped was never acked
        and comes again; the SHA-256 at assembly checks the rest."""
        ids = [r[0] for r in conn.execute("SELECT clip_id FROM clip_parts_unscanned").fetchall()]
        for clip_id in ids:
            conn.execute("DELETE FROM clip_parts_unscanned WHERE clip_id=?", (clip_id,))
            row = conn.execute(
                "SELECT total, sha256, chunk_bytes, done, refused FROM clips WHERE clip_id=?", (clip_id,)
            ).fetchone()
            if row is None or row[3] or row[4] or row[0] is None:
                continue
            total, sha, chunk_bytes = row[:3]
            folder = self.root / clip_id
            found = []
            try:
                for part in folder.iterdir() if folder.is_dir() else ():
                    m = _PART_RE.fullmatch(part.name)
                    if not m or int(m.group(1)) >= total or not part.is_file():
                        continue
                    i, n = int(m.group(1)), part.stat().st_size
                    ok = n == chunk_bytes if i < total - 1 else total == 1 or chunk_bytes is None or n <= chunk_bytes
                    if ok:
                        found.append((clip_id, i, n))
            except OSError:
                log.exception("clip %s: its part files cannot be read; only chunks sent again count", clip_id)
                continue
            conn.executemany(
                "INSERT INTO clip_chunks (clip_id, idx, size) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", found
            )
            received = _recount(conn, clip_id)
            log.info("clip %s: %d chunk files of %d taken over from before clip_chunks", clip_id, received, total)
            if received == total:
                try:
                    self._assemble(conn, clip_id, total, sha, folder)
                except WireError as exc:
                    log.error("clip %s: %s", clip_id, exc)
        return len(ids)

    def delete(self, conn, clip_id: str) -> bool:
        """Forget a clip (its request, chunks and file): frees the site's quota."""
        gone = conn.execute("DELETE FROM clips WHERE clip_id=?", (clip_id,)).rowcount
        conn.execute("DELETE FROM clip_chunks WHERE clip_id=?", (clip_id,))
        conn.execute("DELETE FROM clip_parts_unscanned WHERE clip_id=?", (clip_id,))
        shutil.rmtree(self.root / clip_id, ignore_errors=True)
        (self.root / f"{clip_id}.mp4").unlink(missing_ok=True)
        return bool(gone)

    def path(self, clip_id: str) -> Path | None:
        """The assembled clip file, if complete."""
        p = self.root / f"{clip_id}.mp4"
        return p if p.is_file() else None


_PART_RE = re.compile(r"(\d{5})\.part")


def _recount(conn, clip_id: str) -> int:
    """Set `received` and `stored_bytes` from the clip's rows in clip_chunks; returns received."""
    n, size = conn.execute(
        "SELECT count(*), COALESCE(SUM(size), 0) FROM clip_chunks WHERE clip_id=?", (clip_id,)
    ).fetchone()
    n, size = int(n), int(size)  # SUM is a Decimal on PostgreSQL
    conn.execute("UPDATE clips SET received=?, stored_bytes=? WHERE clip_id=?", (n, size, clip_id))
    return n


def _has_file(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
