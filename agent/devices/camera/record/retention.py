"""Retention and start-up reconciliation of recordings.

Retention: segments older than `retention_days` go, then more, oldest first, while free
space is below the floor. Never while the box's clock is untrusted (after a power cut the Pi
restores an old time and NTP later jumps it: ages computed then are wrong). Age is not used
for segments recorded under an untrusted clock (their times may be far off); free-space
pressure still removes them, oldest recorded time first.

Reconcile (at start-up): segment files on disk but not in the index are validated with
ffprobe and indexed, or deleted when partial; index rows whose file is gone are dropped.
Only segment-shaped files in date/hour folders are considered; nothing else is touched.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.devices.camera.record.index import RecordingsIndex, Segment
from agent.devices.camera.record.layout import parse_segment_relpath, prune_empty_dirs, resolve_inside, segment_files

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


def choose_deletions(
    segments: Iterable[Segment],
    now_ms: int,
    retention_days: float,
    free_bytes: int,
    floor_bytes: int,
    clock_trusted: bool,
) -> list[Segment]:
    """Segments to delete, oldest first: past retention, then until free space meets the floor."""
    if not clock_trusted:
        return []
    ordered = sorted(segments, key=lambda s: (s.start_ms, s.path))
    cutoff = now_ms - int(retention_days * DAY_MS)
    chosen = [s for s in ordered if s.clock != "untrusted" and s.end_ms <= cutoff]
    freed = sum(s.bytes for s in chosen)
    if free_bytes + freed < floor_bytes:
        taken = {s.path for s in chosen}
        for s in ordered:
            if free_bytes + freed >= floor_bytes:
                break
            if s.path not in taken:
                chosen.append(s)
                freed += s.bytes
        chosen.sort(key=lambda s: (s.start_ms, s.path))
    return chosen


def plan_reconcile(on_disk: dict[str, int], indexed: set[str]) -> tuple[list[str], list[str]]:
    """(files to validate and index, index rows to drop)."""
    return sorted(set(on_disk) - indexed), sorted(indexed - set(on_disk))


def delete_segment_files(root: Path, paths: Sequence[str]) -> list[str]:
    """Unlink segment files by index path, refusing any path that leaves `root`; returns deleted."""
    done = []
    for rel in paths:
        path = resolve_inside(root, rel)
        if path is None:
            log.error("refusing to delete %r: outside the recordings root %s", rel, root)
            continue
        try:
            path.unlink(missing_ok=True)
            done.append(rel)
        except OSError as exc:
            log.error("cannot delete %s: %s", path, exc)
    return done


class Retention:
    """Applies `choose_deletions` to the index and the disk; call `run_once` every few minutes."""

    def __init__(
        self,
        index: RecordingsIndex,
        retention_days: float,
        min_free_bytes: int,
        free_bytes: Callable[[], int] | None = None,
    ):
        self.index = index
        self.root = index.root
        self.retention_days = retention_days
        self.min_free_bytes = min_free_bytes
        self.free_bytes = free_bytes or (lambda: shutil.disk_usage(self.root).free)

    def run_once(self, now_ms: int, clock_quality: str) -> list[Segment]:
        """Delete what `choose_deletions` picks; returns the segments removed."""
        chosen = choose_deletions(
            self.index.segments(),
            now_ms,
            self.retention_days,
            self.free_bytes(),
            self.min_free_bytes,
            clock_quality != "untrusted",
        )
        if not chosen:
            return []
        deleted = set(delete_segment_files(self.root, [s.path for s in chosen]))
        # a row whose path would leave the root is bogus: drop the row, never touch the file
        bogus = {s.path for s in chosen if resolve_inside(self.root, s.path) is None}
        self.index.remove(deleted | bogus)
        prune_empty_dirs(self.root)
        log.info(
            "retention removed %d segments (%d bytes)", len(deleted), sum(s.bytes for s in chosen if s.path in deleted)
        )
        return [s for s in chosen if s.path in deleted]


@dataclass
class ReconcileReport:
    """What `reconcile` did."""

    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # partial/unreadable files
    dropped: list[str] = field(default_factory=list)  # rows without a file


def reconcile(index: RecordingsIndex, probe: Callable[[Path], float | None], clock: str = "unknown") -> ReconcileReport:
    """Make index and disk agree (see module doc); `clock`: quality stamped on re-added rows."""
    root = index.root
    on_disk = segment_files(root)
    to_check, to_drop = plan_reconcile(on_disk, index.paths())
    report = ReconcileReport(dropped=to_drop)
    found = []
    for rel in to_check:
        camera, start_ms = parse_segment_relpath(rel)
        path = resolve_inside(root, rel)
        duration = probe(path) if path is not None else None
        if duration and duration > 0:
            found.append(Segment(rel, camera, start_ms, start_ms + int(duration * 1000), on_disk[rel], clock))
            report.added.append(rel)
        else:
            report.deleted += delete_segment_files(root, [rel])
    index.add(found)
    index.remove(to_drop)
    prune_empty_dirs(root)
    if report.added or report.deleted or report.dropped:
        log.info(
            "reconcile: %d indexed, %d partial deleted, %d rows dropped",
            len(report.added),
            len(report.deleted),
            len(report.dropped),
        )
    return report
