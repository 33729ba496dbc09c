"""Where recordings live on disk, and the only place that turns an index path into a file path.

    <root>/.incoming/<camera>@YYYYmmddTHHMMSSZ.mp4    written by ffmpeg (UTC in the name)
    <root>/YYYY-MM-DD/HH/<camera>-MMSS.mp4            validated segments (China time folders)
    <root>/recordings.db                              the index (segments, clip uploads)

Index rows hold paths relative to the root. `resolve_inside` refuses anything that would
leave the root (absolute paths, '..', symlinks), so retention can never reach case data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from protocol.calendar import CST

INCOMING = ".incoming"
DB_NAME = "recordings.db"
SUFFIX = ".mp4"
CACHE_PATTERN = "{camera}@%Y%m%dT%H%M%SZ.mp4"  # ffmpeg -strftime 1, run with TZ=UTC
_CACHE_RE = re.compile(r"^(?P<camera>[A-Za-z0-9_]+)@(?P<ts>\d{8}T\d{6})Z\.mp4$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR_RE = re.compile(r"^\d{2}$")
_SEG_RE = re.compile(r"^(?P<camera>[A-Za-z0-9_]+)-(?P<mm>\d{2})(?P<ss>\d{2})(?:~(?P<n>\d+))?\.mp4$")


def parse_cache_name(name: str) -> tuple[str, int] | None:
    """(camera, start_ms) of a file ffmpeg wrote into .incoming, or None for anything else."""
    m = _CACHE_RE.match(name)
    if not m:
        return None
    try:
        start = datetime.strptime(m["ts"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return m["camera"], int(start.timestamp() * 1000)


def segment_relpath(camera: str, start_ms: int, n: int = 0) -> str:
    """Index path of a segment: 'YYYY-MM-DD/HH/<camera>-MMSS.mp4' in China time (~n if taken)."""
    t = datetime.fromtimestamp(start_ms / 1000, CST)
    extra = f"~{n}" if n else ""
    return f"{t:%Y-%m-%d}/{t:%H}/{camera}-{t:%M%S}{extra}{SUFFIX}"


def parse_segment_relpath(rel: str) -> tuple[str, int] | None:
    """(camera, start_ms) of an index path made by `segment_relpath`, or None."""
    parts = PurePosixPath(rel).parts
    if len(parts) != 3 or not _DATE_RE.match(parts[0]) or not _HOUR_RE.match(parts[1]):
        return None
    m = _SEG_RE.match(parts[2])
    if not m:
        return None
    try:
        t = datetime.strptime(f"{parts[0]} {parts[1]}:{m['mm']}:{m['ss']}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return m["camera"], int(t.replace(tzinfo=CST).timestamp() * 1000)


def resolve_inside(root: Path, rel: str) -> Path | None:
    """The file for an index path if it stays inside `root` without symlinks; else None."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    root = Path(root).resolve()
    path = root.joinpath(*p.parts)
    node = root
    for part in p.parts:  # no symlinked folder or file on the way
        node = node / part
        if node.is_symlink():
            return None
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return None
    return path


def segment_files(root: Path) -> dict[str, int]:
    """Index path -> size of every segment-shaped regular file under `root` (symlinks skipped)."""
    root = Path(root)
    out: dict[str, int] = {}
    for day in sorted(root.iterdir()) if root.is_dir() else []:
        if not (_DATE_RE.match(day.name) and day.is_dir() and not day.is_symlink()):
            continue
        for hour in sorted(day.iterdir()):
            if not (_HOUR_RE.match(hour.name) and hour.is_dir() and not hour.is_symlink()):
                continue
            for f in sorted(hour.iterdir()):
                rel = f"{day.name}/{hour.name}/{f.name}"
                if not f.is_symlink() and f.is_file() and parse_segment_relpath(rel):
                    out[rel] = f.stat().st_size
    return out


def prune_empty_dirs(root: Path) -> int:
    """Remove empty date/hour folders under `root`; returns how many went."""
    removed = 0
    root = Path(root)
    for day in list(root.iterdir()) if root.is_dir() else []:
        if not (_DATE_RE.match(day.name) and day.is_dir() and not day.is_symlink()):
            continue
        for hour in list(day.iterdir()):
            if _HOUR_RE.match(hour.name) and hour.is_dir() and not hour.is_symlink() and not any(hour.iterdir()):
                hour.rmdir()
                removed += 1
        if not any(day.iterdir()):
            day.rmdir()
            removed += 1
    return removed
