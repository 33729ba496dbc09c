"""A lease in the store: which of several hub workers runs the once-only work.

The sweep, the notifier, the document worker and the config push must run exactly once however
many workers share a store. The worker holding the lease row `leader` runs them; it renews the
lease every `ttl/4`; when it dies (kill -9, power cut, lost network) the lease runs out and the
next worker that tries takes it over, with a new `generation`.

Time is the store's clock on PostgreSQL (`clock_timestamp()`: several machines, one clock) and
the wall clock on SQLite (one machine). The holder trusts its lease only until its own
monotonic clock says `ttl - margin` has passed since it *sent* the renewal, so a holder that
stalls (paused process, slow disk) stops doing leader work before another can take over.

Acquiring and renewing are one statement on both engines (an upsert with a condition), so two
workers that try at once cannot both win.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hub.db import POSTGRESQL, connect, engine

log = logging.getLogger("jiancha.hub.lease")

LEADER = "leader"

_ACQUIRE = (
    "INSERT INTO leases(name, holder, until_ms, since_ms, generation) VALUES (?, ?, ?, ?, 1) "
    "ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms, "
    "since_ms = CASE WHEN leases.holder = excluded.holder THEN leases.since_ms ELSE excluded.since_ms END, "
    "generation = CASE WHEN leases.holder = excluded.holder THEN leases.generation ELSE leases.generation + 1 END "
    "WHERE leases.holder = excluded.holder OR leases.until_ms < excluded.since_ms "
    "RETURNING generation"
)


def store_now_ms(conn) -> int:
    """Milliseconds since the epoch by the store's clock (PostgreSQL) or this machine's (SQLite)."""
    if engine(conn) == POSTGRESQL:
        return int(conn.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetchone()[0])
    return int(time.time() * 1000)


def try_acquire(conn, name: str, holder: str, ttl_ms: int) -> int | None:
    """Take or renew the lease `name` for `holder`; its generation, or None if another holds it."""
    now = store_now_ms(conn)
    rows = conn.execute(_ACQUIRE, (name, holder, now + ttl_ms, now)).fetchall()  # autocommit on both
    return int(rows[0][0]) if rows else None


def release(conn, name: str, holder: str) -> None:
    """Give the lease up at once (a clean stop): the next worker need not wait for it to run out."""
    conn.execute("UPDATE leases SET until_ms = 0 WHERE name = ? AND holder = ?", (name, holder))


def holder_of(conn, name: str) -> tuple[str, int, int] | None:
    """(holder, until_ms, generation) of a lease, or None if never taken."""
    row = conn.execute("SELECT holder, until_ms, generation FROM leases WHERE name = ?", (name,)).fetchone()
    return (row[0], int(row[1]), int(row[2])) if row else None


class Lease:
    """Holds (or waits for) one lease in a thread of its own; `held()` says whether to act now."""

    def __init__(
        self,
        url: str,
        holder: str,
        *,
        name: str = LEADER,
        ttl_s: float = 10.0,
        on_change: Callable[[bool], None] | None = None,
    ):
        self.url = url
        self.holder = holder
        self.name = name
        self.ttl_ms = int(ttl_s * 1000)
        self.every_s = ttl_s / 4
        self.margin_s = min(ttl_s / 4, 2.0)  # stop acting this long before the lease could pass on
        self.on_change = on_change
        self.generation: int | None = None
        self._valid_until = 0.0  # monotonic
        self._was_held = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{name}", daemon=True)

    def held(self) -> bool:
        """True while this worker may do the lease's work."""
        return time.monotonic() < self._valid_until

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and give the lease up so another worker takes over without waiting."""
        self._stop.set()
        self._thread.join(timeout=10)
        if self.generation is not None:
            try:
                conn = connect(self.url)
                try:
                    release(conn, self.name, self.holder)
                finally:
                    conn.close()
            except Exception:
                log.exception("could not release the lease %s", self.name)
        self._set(False)

    def tick(self, conn) -> bool:
        """One attempt to take or renew the lease on `conn`; True if held."""
        sent = time.monotonic()
        gen = try_acquire(conn, self.name, self.holder, self.ttl_ms)
        if gen is None:
            self._set(False)
            return False
        if gen != self.generation:
            log.info("%s holds the lease %r (generation %d)", self.holder, self.name, gen)
        self.generation = gen
        self._valid_until = sent + self.ttl_ms / 1000 - self.margin_s
        self._set(True)
        return True

    def _set(self, held: bool) -> None:
        if not held:
            self._valid_until = 0.0
            if self.generation is not None:
                log.info("%s no longer holds the lease %r", self.holder, self.name)
            self.generation = None
        if held == self._was_held:
            return
        self._was_held = held
        if self.on_change is not None:
            try:
                self.on_change(held)
            except Exception:
                log.exception("lease change callback failed")

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.url)
                self.tick(conn)
            except Exception:
                log.exception("lease %r: the store did not answer", self.name)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                if not self.held():
                    self._set(False)
            self._stop.wait(self.every_s)
        if conn is not None:
            conn.close()
