"""A small time-limited cache of computed results, shared by the statistics and the scores."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class TtlCache:
    """The last results per key, reused for `ttl_s`, at most `entries` kept, one computation per
    key at a time. The statistics (hub/api_stats.py: a month of a million-case store takes seconds
    to count, the page and its exports are asked for again and again) and the scores
    (hub/api_scores.py) keep theirs here; figures are at most `ttl_s` old (docs/stats.md)."""

    def __init__(self, ttl_s: float = 60.0, entries: int = 32):
        self.ttl_s, self.entries = ttl_s, entries
        self.data: OrderedDict[tuple, tuple[float, dict, list]] = OrderedDict()
        self.lock = threading.Lock()
        self.busy: dict[tuple, threading.Lock] = {}

    def get_or_compute(self, key: tuple, fn) -> tuple[dict, list]:
        """The cached value of `key`, or fn() (one computation per key at a time)."""
        with self.lock:
            gate = self.busy.setdefault(key, threading.Lock())
        with gate:
            with self.lock:
                hit = self.data.get(key)
                if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
                    self.data.move_to_end(key)
                    return hit[1], hit[2]
            stats, tabs = fn()
            with self.lock:
                self.data[key] = (time.monotonic(), stats, tabs)
                self.data.move_to_end(key)
                while len(self.data) > self.entries:
                    self.data.popitem(last=False)
                if len(self.busy) > 4 * self.entries:
                    self.busy = {k: v for k, v in self.busy.items() if v.locked()}
            return stats, tabs

    def clear(self) -> None:
        """Forget every result (after a write the next reader must see)."""
        with self.lock:
            self.data.clear()
