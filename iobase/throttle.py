"""Failed logins counted per name and per client address, in fixed windows, in bounded memory:
the hub's operator login (hub/throttle.py) and the box's clerk PIN login (agent/clerk_sessions.py).

After `per_name` failures for one name, or `per_address` from one address, attempts are refused
until that key's window (`window_s` from its first failure) is over. An attempt is counted as a
failure when it is let through (`attempt`), before its secret is checked, so a burst cannot all
pass while argon2 runs; a right secret (`succeeded`) forgives the name's count and takes the
attempt back from its address.

At most `max_keys` entries are kept: keys whose window is over are forgotten first; when the
table is full of live keys, newcomers share one overflow entry per kind, so flooding the table
with fresh names or addresses locks the flooders out together instead of resetting anyone's count."""

from __future__ import annotations

from collections import OrderedDict


class AttemptThrottle:
    OVERFLOW = "*overflow*"
    NAME, ADDRESS = "name", "address"  # the two kinds of key

    def __init__(self, per_name: int, per_address: int, window_s: float, max_keys: int):
        self.per_name, self.per_address, self.window_s, self.max_keys = per_name, per_address, window_s, max_keys
        self.counts: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()  # key → (window start, n)

    def __len__(self) -> int:
        return len(self.counts)

    def retry_after(self, name: str, address: str, now: float) -> float | None:
        """Seconds until an attempt for `name` from `address` is allowed, or None if it is now."""
        waits = [
            self._wait((self.NAME, name), self.per_name, now),
            self._wait((self.ADDRESS, address), self.per_address, now),
        ]
        return max((w for w in waits if w is not None), default=None)

    def attempt(self, name: str, address: str, now: float) -> float | None:
        """Seconds to wait, or None: then the attempt is let through and counted as a failure
        at once (`succeeded` takes it back)."""
        wait = self.retry_after(name, address, now)
        if wait is None:
            self.failed(name, address, now)
        return wait

    def failed(self, name: str, address: str, now: float) -> None:
        """Count one failed attempt against both keys."""
        for key in ((self.NAME, name), (self.ADDRESS, address)):
            key = self._slot(key, now)
            start, n = self.counts.get(key, (now, 0))
            if now - start >= self.window_s:
                start, n = now, 0
            self.counts[key] = (start, n + 1)
            self.counts.move_to_end(key)

    def succeeded(self, name: str, address: str | None = None) -> None:
        """A right secret: the name's failures are forgiven, and the attempt counted against
        `address` by `attempt` is taken back."""
        self.counts.pop((self.NAME, name), None)
        if address is not None:
            key = (self.ADDRESS, address)
            if key not in self.counts:
                key = (self.ADDRESS, self.OVERFLOW)
            got = self.counts.get(key)
            if got is not None and got[1] > 0:
                self.counts[key] = (got[0], got[1] - 1)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> float | None:
        got = self.counts.get(key)
        if got is None and len(self.counts) >= self.max_keys - 2:  # it would count in the overflow entry
            got = self.counts.get((key[0], self.OVERFLOW))
        if got is None:
            return None
        start, n = got
        left = start + self.window_s - now
        return left if n >= limit and left > 0 else None

    def _slot(self, key: tuple[str, str], now: float) -> tuple[str, str]:
        """The entry `key` counts in: its own, or its kind's overflow entry when the table is full."""
        if key in self.counts:
            return key
        for _ in range(8):  # forget a few keys whose window is over (oldest written first)
            if not self.counts:
                break
            oldest, (start, _n) = next(iter(self.counts.items()))
            if now - start < self.window_s:
                break
            del self.counts[oldest]
        if len(self.counts) >= self.max_keys - 2:  # the last two slots are the overflow entries
            return (key[0], self.OVERFLOW)
        return key
