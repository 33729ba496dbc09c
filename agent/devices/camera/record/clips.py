"""Clips for the hub: cut on request, uploaded in resumable chunks (MQTT, wired by the agent).

The hub asks for (camera, start, end); `build_clip` joins the overlapping segments with
ffmpeg's concat demuxer (``-c copy``: no re-encoding) into ``<root>/clips/<clip_id>.mp4``.
`ClipUpload` hands out ``(index, total, bytes)`` chunks that the hub has not acknowledged yet;
acks are stored in recordings.db, so after a reboot or a lost link the upload resumes where
it stopped. A clip whose size, digest or chunk size changed starts over.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from agent.devices.camera.record.index import RecordingsIndex
from agent.devices.camera.record.layout import resolve_inside

CLIPS = "clips"
_CLIP_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch: "$" lets a trailing newline pass


def chunk_count(size: int, chunk_bytes: int) -> int:
    """Chunks of a file of `size` bytes; an empty file is one empty chunk (the hub sees the end)."""
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    return max(1, -(-size // chunk_bytes))


def chunk_plan(size: int, chunk_bytes: int, acked_chunks: Iterable[int]) -> list[int]:
    """Indexes of the chunks still to send, in order (acks outside the range are ignored)."""
    acked = set(acked_chunks)
    return [i for i in range(chunk_count(size, chunk_bytes)) if i not in acked]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the hub checks the reassembled clip against it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_clip(
    index: RecordingsIndex,
    camera: str,
    start_ms: int,
    end_ms: int,
    clip_id: str,
    ffmpeg: str = "ffmpeg",
    timeout: float = 300.0,
) -> Path:
    """Join the segments of [start_ms, end_ms) into clips/<clip_id>.mp4; LookupError if none."""
    if not _CLIP_ID_RE.fullmatch(clip_id):
        raise ValueError(f"clip id {clip_id!r}: letters, digits, '.', '_' or '-' only")
    segments = index.find_segments(camera, start_ms, end_ms)
    files = [p for s in segments if (p := resolve_inside(index.root, s.path)) and p.is_file()]
    if not files:
        raise LookupError(f"no recording of {camera} between {start_ms} and {end_ms}")
    out_dir = index.root / CLIPS
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{clip_id}.mp4"
    listing = out_dir / f"{clip_id}.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in files), encoding="utf-8")
    try:
        subprocess.run(
            [
                ffmpeg,
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(listing),
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                str(out),
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
    finally:
        listing.unlink(missing_ok=True)
    return out


class ClipUpload:
    """Resumable chunked upload of one clip; acks persist in recordings.db.

    up = ClipUpload(path, clip_id, 256 * 1024, index=index)
    for i, total, data in up:       # only chunks not yet acknowledged
        publish(i, total, data)     # the hub acks each chunk; on its ack: up.ack(i)
    """

    def __init__(self, path: Path | str, clip_id: str, chunk_bytes: int, *, index: RecordingsIndex):
        self.path = Path(path)
        self.clip_id = clip_id
        self.chunk_bytes = chunk_bytes
        self.index = index
        self.size = self.path.stat().st_size
        self.total = chunk_count(self.size, chunk_bytes)
        self.sha256 = file_sha256(self.path)
        self._register()

    def _register(self) -> None:
        """Create the upload row, or reset it when the file or chunking changed."""
        conn = self.index.conn
        with self.index.lock:
            row = conn.execute(
                "SELECT size, chunk_bytes, sha256 FROM clip_uploads WHERE clip_id = ?", (self.clip_id,)
            ).fetchone()
            if row == (self.size, self.chunk_bytes, self.sha256):
                return
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM clip_uploads WHERE clip_id = ?", (self.clip_id,))
            conn.execute(
                "INSERT INTO clip_uploads(clip_id, path, size, chunk_bytes, sha256, "
                "created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (self.clip_id, str(self.path), self.size, self.chunk_bytes, self.sha256, int(time.time() * 1000)),
            )
            conn.execute("COMMIT")

    @property
    def acked(self) -> set[int]:
        """Chunk indexes the hub has acknowledged."""
        with self.index.lock:
            return {
                r[0] for r in self.index.conn.execute("SELECT idx FROM clip_acks WHERE clip_id = ?", (self.clip_id,))
            }

    def pending(self) -> list[int]:
        """Chunk indexes still to send."""
        return chunk_plan(self.size, self.chunk_bytes, self.acked)

    @property
    def done(self) -> bool:
        """True when every chunk is acknowledged."""
        return not self.pending()

    def chunk(self, i: int) -> bytes:
        """The bytes of chunk i."""
        if not 0 <= i < self.total:
            raise IndexError(f"chunk {i} outside 0..{self.total - 1}")
        with open(self.path, "rb") as f:
            f.seek(i * self.chunk_bytes)
            return f.read(self.chunk_bytes)

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        """(index, total, bytes) of every chunk not yet acknowledged, in order."""
        for i in self.pending():
            yield i, self.total, self.chunk(i)

    def ack(self, i: int) -> None:
        """Record the hub's ack of chunk i (durable: WAL, synchronous=FULL)."""
        if not 0 <= i < self.total:
            return  # a stray or forged ack changes nothing
        with self.index.lock:
            self.index.conn.execute("BEGIN IMMEDIATE")
            self.index.conn.execute("INSERT OR IGNORE INTO clip_acks(clip_id, idx) VALUES (?, ?)", (self.clip_id, i))
            if len(self.acked) == self.total:
                self.index.conn.execute(
                    "UPDATE clip_uploads SET done_ms = ? WHERE clip_id = ?", (int(time.time() * 1000), self.clip_id)
                )
            self.index.conn.execute("COMMIT")

    def discard(self) -> None:
        """Forget the upload (done or abandoned); delete the file if it is one of our clips."""
        with self.index.lock:
            self.index.conn.execute("DELETE FROM clip_uploads WHERE clip_id = ?", (self.clip_id,))
        clips = (self.index.root / CLIPS).resolve()
        if self.path.resolve().parent == clips and not self.path.is_symlink():
            self.path.unlink(missing_ok=True)

    def offer(self) -> dict:
        """What to tell the hub before the chunks: id, size, chunking and digest."""
        return {
            "clip_id": self.clip_id,
            "bytes": self.size,
            "chunk_bytes": self.chunk_bytes,
            "total": self.total,
            "sha256": self.sha256,
        }
