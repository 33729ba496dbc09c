"""When a sign is written: only on change, at most once per interval. Pure decision + state.

LED controller cards keep programs in flash (~100k erase cycles) and dynamic areas in RAM; we
only ever write RAM areas, and even those only when the text changed, so a busy hall does not
make a sign flicker or flood a slow serial line.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any


def should_write(
    prev: Any,
    new: Any,
    last_write_mono: float | None,
    now_mono: float,
    min_interval: float,
    max_age: float | None = None,
) -> bool:
    """Write when `new` differs from what is shown and the interval has passed.

    `prev` None means unknown (never written, or the last write failed). With `max_age`, the
    same content is rewritten once it is that old (a rebooted card forgets its RAM areas).
    """
    if last_write_mono is not None and now_mono - last_write_mono < min_interval:
        return False
    if prev is None or new != prev:
        return True
    return max_age is not None and last_write_mono is not None and now_mono - last_write_mono >= max_age


@dataclass
class _Slot:
    shown: Any = None
    last_write: float | None = None


class Pacer:
    """Per-slot memory of what is shown and when it was written (a slot = an area or a file)."""

    def __init__(self, min_interval: float, max_age: float | None = None):
        self.min_interval = min_interval
        self.max_age = max_age
        self._slots: dict[Hashable, _Slot] = {}

    def due(self, slot: Hashable, payload: Any, now_mono: float) -> bool:
        """True when `payload` should be written to `slot` now."""
        s = self._slots.get(slot) or _Slot()
        return should_write(s.shown, payload, s.last_write, now_mono, self.min_interval, self.max_age)

    def written(self, slot: Hashable, payload: Any, now_mono: float) -> None:
        """Record a successful write."""
        self._slots[slot] = _Slot(payload, now_mono)

    def failed(self, slot: Hashable, now_mono: float) -> None:
        """Record a failed write: content unknown, retry after the interval (a natural backoff)."""
        self._slots[slot] = _Slot(None, now_mono)

    def shown(self, slot: Hashable) -> Any:
        """What the slot shows as far as we know (None = unknown)."""
        s = self._slots.get(slot)
        return s.shown if s else None
