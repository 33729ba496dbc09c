"""recordings.db: the index of recorded segments and of clip uploads (SQLite, WAL).

Its own database file, beside the recordings, so recording churn never touches agent.db
(case data). Paths are relative to the recordings root (see `layout`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.devices.camera.record.layout import DB_NAME
from iobase.sqlite import connect, migrate

MIGRATIONS = [
    (
        "0001_segments",
        """
CREATE TABLE segments (
    path TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    clock TEXT NOT NULL DEFAULT 'ntp'
);
CREATE INDEX segments_camera_start ON segments(camera, start_ms);
CREATE INDEX segments_start ON segments(start_ms)
""",
    ),
    (
        "0002_clip_uploads",
        """
CREATE TABLE clip_uploads (
    clip_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    chunk_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    done_ms INTEGER
);
CREATE TABLE clip_acks (
    clip_id TEXT NOT NULL REFERENCES clip_uploads(clip_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    PRIMARY KEY (clip_id, idx)
)
""",
    ),
]


@dataclass(frozen=True)
class Segment:
    """One recorded segment: index path, camera, wall-clock span, size, clock quality then."""

    path: str
    camera: str
    start_ms: int
    end_ms: int
    bytes: int
    clock: str = "ntp"


_COLS = "path, camera, start_ms, end_ms, bytes, clock"


class RecordingsIndex:
    """Thread-safe access to recordings.db (one connection, one lock)."""

    def __init__(self, root: Path | str, db_path: Path | str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = Path(db_path) if db_path else self.root / DB_NAME
        self.conn = connect(self.db_path)
        self.lock = threading.RLock()
        migrate(self.conn, MIGRATIONS)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()

    def add(self, segments: Iterable[Segment]) -> None:
        """Insert (or replace) segments in one transaction."""
        rows = [(s.path, s.camera, s.start_ms, s.end_ms, s.bytes, s.clock) for s in segments]
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(f"INSERT OR REPLACE INTO segments({_COLS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def remove(self, paths: Iterable[str]) -> int:
        """Delete rows by path; returns how many went."""
        paths = [(p,) for p in paths]
        with self.lock:
            before = self.conn.total_changes
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("DELETE FROM segments WHERE path = ?", paths)
            self.conn.execute("COMMIT")
            return self.conn.total_changes - before

    def segments(self, camera: str | None = None) -> list[Segment]:
        """All segments (of one camera), oldest first."""
        sql = f"SELECT {_COLS} FROM segments"
        args: tuple = ()
        if camera is not None:
            sql, args = sql + " WHERE camera = ?", (camera,)
        with self.lock:
            return [Segment(*r) for r in self.conn.execute(sql + " ORDER BY start_ms, path", args)]

    def paths(self) -> set[str]:
        """Every indexed path."""
        with self.lock:
            return {r[0] for r in self.conn.execute("SELECT path FROM segments")}

    def find_segments(self, camera: str, start_ms: int, end_ms: int) -> list[Segment]:
        """Segments of `camera` overlapping [start_ms, end_ms), in time order (for a clip request)."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_COLS} FROM segments WHERE camera = ? AND start_ms < ? AND end_ms > ? "
                "ORDER BY start_ms, path",
                (camera, end_ms, start_ms),
            )
            return [Segment(*r) for r in rows]

    def total_bytes(self) -> int:
        """Sum of indexed segment sizes."""
        with self.lock:
            return self.conn.execute("SELECT coalesce(sum(bytes), 0) FROM segments").fetchone()[0]
