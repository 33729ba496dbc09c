"""Clips at the hub: store signed chunks as they arrive, ack each, assemble and verify the clip.

Chunks are files under DATA/clips/<clip_id>/ (video does not belong in the database); the
`clips` table tracks what was requested and what is complete. Runs in the ingest thread like
every other message.

Only clips the hub asked for are accepted: `POST /api/sites/{code}/clips` writes a requested
row (clip_id, site, camera, start/end, requested_ms) before the command goes out, and a chunk
is stored only when its clip_id is requested *for the site that signed it* (exact match on
(clip_id, site)) with the same camera and times. Stored bytes are capped per clip and per
site; what is refused is counted (`clip_bytes_dropped`, `rejected_<reason>`) for /metrics.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from hub.store import bump
from protocol import topics
from protocol.clips import ClipRefused, open_chunk
from protocol.wire import WireError

log = logging.getLogger("jiancha.hub.clips")

GiB = 1024 ** 3
DEFAULT_SITE_CAP_BYTES = 2 * GiB        # all stored clips of one site (complete and in progress)
DEFAULT_CLIP_CAP_BYTES = 1 * GiB        # one clip (at most one hour of one camera)

MIGRATIONS = [
    ("0301_clips", """
        CREATE TABLE clips (clip_id TEXT PRIMARY KEY, site TEXT NOT NULL, camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, total INTEGER NOT NULL,
            received INTEGER NOT NULL DEFAULT 0, sha256 TEXT NOT NULL, size INTEGER,
            done INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER);
    """),
    # A clip is requested before any chunk arrives (total and sha256 unknown until then), so the
    # table is rebuilt with those columns nullable. Rows from before this migration were accepted
    # under the old rule; they count as requested so an upload in progress can finish.
    ("0302_clip_requests_and_caps", """
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
    """),
]


def request_clip(conn, site: str, clip_id: str, camera: str, start_ms: int, end_ms: int, now_ms: int) -> dict:
    """Record that the hub asks `site` for this clip (idempotent); returns the row as a dict."""
    conn.execute("INSERT INTO clips (clip_id, site, camera, start_ms, end_ms, requested_ms, updated_ms) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(clip_id) DO NOTHING",
                 (clip_id, site, camera, start_ms, end_ms, now_ms, now_ms))
    cur = conn.execute("SELECT * FROM clips WHERE clip_id=?", (clip_id,))
    cols = [c[0] for c in cur.description]
    return dict(zip(cols, cur.fetchone()))


def site_clip_bytes(conn, site: str, exclude: str | None = None) -> int:
    """Bytes a site's clips hold or have declared (complete: their size; in progress: the larger
    of what is stored and what the chunks declare)."""
    return conn.execute(
        "SELECT COALESCE(SUM(MAX(COALESCE(size, stored_bytes, 0), "
        "CASE WHEN done = 0 AND refused IS NULL THEN COALESCE(total * chunk_bytes, 0) ELSE 0 END)), 0) "
        "FROM clips WHERE site=? AND clip_id IS NOT ?", (site, exclude)).fetchone()[0]


class ClipReceiver:
    """Stores chunks; returns the ack to publish, or raises WireError (the caller quarantines)."""

    def __init__(self, root: Path, *, site_cap_bytes: int = DEFAULT_SITE_CAP_BYTES,
                 clip_cap_bytes: int = DEFAULT_CLIP_CAP_BYTES):
        self.root = Path(root)
        self.site_cap_bytes = int(site_cap_bytes)
        self.clip_cap_bytes = int(min(clip_cap_bytes, site_cap_bytes))

    def handle(self, conn, site: str, payload: bytes, verify_key, now_ms: int) -> tuple[str, dict]:
        """Verify, check it was requested and fits the caps, store, ack; assemble at the last chunk."""
        try:
            return self._handle(conn, site, payload, verify_key, now_ms)
        except WireError:
            bump(conn, "clip_chunks_dropped")
            bump(conn, "clip_bytes_dropped", len(payload))
            raise

    def _handle(self, conn, site, payload, verify_key, now_ms):
        c = open_chunk(payload, verify_key=verify_key)
        row = conn.execute("SELECT camera, start_ms, end_ms, total, sha256, done, chunk_bytes, stored_bytes, "
                           "refused FROM clips WHERE clip_id=? AND site=?", (c.clip_id, site)).fetchone()
        if row is None:
            owner = conn.execute("SELECT 1 FROM clips WHERE clip_id=?", (c.clip_id,)).fetchone()
            if owner is not None:
                raise WireError("wrong_site", f"clip {c.clip_id} was requested from another site, not {site}")
            raise ClipRefused("unrequested_clip", f"the hub never asked {site} for clip {c.clip_id}")
        camera, start_ms, end_ms, total, sha, done, chunk_bytes, stored, refused = row
        if (camera, start_ms, end_ms) != (c.camera, c.start_ms, c.end_ms):
            raise WireError("malformed", f"clip {c.clip_id}: camera or times differ from the request")
        if total is not None and (total, sha) != (c.total, c.sha256):
            raise WireError("malformed", f"clip {c.clip_id}: chunk disagrees with earlier chunks")
        ack = {"clip_id": c.clip_id, "index": c.index}
        if done:
            return topics.site_clip_ack(site), ack           # already complete: just ack again
        if refused:
            raise ClipRefused(refused, f"clip {c.clip_id} was refused earlier ({refused})")
        last = c.index == c.total - 1
        if not last:                         # every chunk but the last has the same size
            if chunk_bytes is not None and len(c.data) != chunk_bytes:
                raise WireError("malformed", f"clip {c.clip_id}: chunk of {len(c.data)} bytes, "
                                             f"earlier chunks had {chunk_bytes}")
            chunk_bytes = len(c.data)
        folder = self.root / c.clip_id
        part = folder / f"{c.index:05d}.part"
        old = part.stat().st_size if part.is_file() else None
        after = stored - (old or 0) + len(c.data)
        declared = c.total * chunk_bytes if chunk_bytes else after   # upper bound of the whole clip
        others = site_clip_bytes(conn, site, exclude=c.clip_id)
        reason = None
        if max(declared, after) > self.clip_cap_bytes:
            reason = "clip_too_large"
            detail = f"clip {c.clip_id} declares {declared} bytes, cap {self.clip_cap_bytes} per clip"
        elif others + max(declared, after) > self.site_cap_bytes:
            reason = "clip_quota"
            detail = (f"site {site} holds {others} bytes of clips; clip {c.clip_id} ({declared} bytes) "
                      f"would pass the cap of {self.site_cap_bytes} per site")
        if reason:
            conn.execute("UPDATE clips SET refused=?, updated_ms=? WHERE clip_id=?", (reason, now_ms, c.clip_id))
            shutil.rmtree(folder, ignore_errors=True)       # what was stored of it is freed
            conn.execute("UPDATE clips SET stored_bytes=0, received=0 WHERE clip_id=?", (c.clip_id,))
            log.warning("clip refused: %s", detail)
            raise ClipRefused(reason, detail)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = part.with_suffix(".tmp")
        tmp.write_bytes(c.data)
        tmp.replace(part)
        conn.execute("UPDATE clips SET total=?, sha256=?, chunk_bytes=?, stored_bytes=?, "
                     "received=received + ?, updated_ms=? WHERE clip_id=?",
                     (c.total, c.sha256, chunk_bytes, after, 0 if old is not None else 1, now_ms, c.clip_id))
        received = conn.execute("SELECT received FROM clips WHERE clip_id=?", (c.clip_id,)).fetchone()[0]
        if received == c.total:
            self._assemble(conn, c.clip_id, c.total, c.sha256, folder)
        return topics.site_clip_ack(site), ack

    def _assemble(self, conn, clip_id: str, total: int, sha256: str, folder: Path) -> None:
        out = self.root / f"{clip_id}.mp4"
        h = hashlib.sha256()
        with open(out.with_suffix(".tmp"), "wb") as f:
            for i in range(total):
                data = (folder / f"{i:05d}.part").read_bytes()
                h.update(data)
                f.write(data)
        if h.hexdigest() != sha256:
            out.with_suffix(".tmp").unlink()
            shutil.rmtree(folder)                  # start over: the site resends unacked... all of it
            conn.execute("UPDATE clips SET received=0, stored_bytes=0 WHERE clip_id=?", (clip_id,))
            raise WireError("bad_record", f"clip {clip_id}: assembled file does not match its sha256")
        out.with_suffix(".tmp").replace(out)
        shutil.rmtree(folder)
        size = out.stat().st_size
        conn.execute("UPDATE clips SET done=1, size=?, stored_bytes=? WHERE clip_id=?", (size, size, clip_id))
        log.info("clip %s complete (%d bytes)", clip_id, size)

    def delete(self, conn, clip_id: str) -> bool:
        """Forget a clip (its request, chunks and file): frees the site's quota."""
        gone = conn.execute("DELETE FROM clips WHERE clip_id=?", (clip_id,)).rowcount
        shutil.rmtree(self.root / clip_id, ignore_errors=True)
        (self.root / f"{clip_id}.mp4").unlink(missing_ok=True)
        return bool(gone)

    def path(self, clip_id: str) -> Path | None:
        """The assembled clip file, if complete."""
        p = self.root / f"{clip_id}.mp4"
        return p if p.is_file() else None
