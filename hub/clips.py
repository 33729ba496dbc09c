"""Clips at the hub: store signed chunks as they arrive, ack each, assemble and verify the clip.

Chunks are files under DATA/clips/<clip_id>/ (video does not belong in the database); the
`clips` table tracks what is complete. Runs in the ingest thread like every other message.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from protocol import topics
from protocol.clips import open_chunk
from protocol.wire import WireError

log = logging.getLogger("jiancha.hub.clips")

MIGRATIONS = [
    ("0301_clips", """
        CREATE TABLE clips (clip_id TEXT PRIMARY KEY, site TEXT NOT NULL, camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, total INTEGER NOT NULL,
            received INTEGER NOT NULL DEFAULT 0, sha256 TEXT NOT NULL, size INTEGER,
            done INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER);
    """),
]


class ClipReceiver:
    """Stores chunks; returns the ack to publish, or raises WireError (the caller quarantines)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def handle(self, conn, site: str, payload: bytes, verify_key, now_ms: int) -> tuple[str, dict]:
        """Verify, store, ack; assemble when the last chunk arrives."""
        c = open_chunk(payload, verify_key=verify_key)
        if not c.clip_id.startswith(f"{site}-"):
            raise WireError("wrong_site", f"clip {c.clip_id} is not {site}'s")
        row = conn.execute("SELECT total, sha256, done FROM clips WHERE clip_id=?", (c.clip_id,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO clips (clip_id, site, camera, start_ms, end_ms, total, sha256, updated_ms) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (c.clip_id, site, c.camera, c.start_ms, c.end_ms, c.total, c.sha256, now_ms))
        elif (row[0], row[1]) != (c.total, c.sha256):
            raise WireError("malformed", f"clip {c.clip_id}: chunk disagrees with earlier chunks")
        ack = {"clip_id": c.clip_id, "index": c.index}
        if row is not None and row[2]:
            return topics.site_clip_ack(site), ack           # already complete: just ack again
        folder = self.root / c.clip_id
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f"{c.index:05d}.part"
        tmp = part.with_suffix(".tmp")
        tmp.write_bytes(c.data)
        tmp.replace(part)
        received = sum(1 for _ in folder.glob("*.part"))
        conn.execute("UPDATE clips SET received=?, updated_ms=? WHERE clip_id=?", (received, now_ms, c.clip_id))
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
            conn.execute("UPDATE clips SET received=0 WHERE clip_id=?", (clip_id,))
            raise WireError("bad_record", f"clip {clip_id}: assembled file does not match its sha256")
        out.with_suffix(".tmp").replace(out)
        shutil.rmtree(folder)
        conn.execute("UPDATE clips SET done=1, size=? WHERE clip_id=?", (out.stat().st_size, clip_id))
        log.info("clip %s complete (%d bytes)", clip_id, out.stat().st_size)

    def path(self, clip_id: str) -> Path | None:
        """The assembled clip file, if complete."""
        p = self.root / f"{clip_id}.mp4"
        return p if p.is_file() else None
