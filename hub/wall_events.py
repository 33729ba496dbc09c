"""Live wall (监察大屏实时推送): server-sent events telling open walls that something changed.

Ingest may run in other processes (`jiancha hub run --workers N`), so no in-process callback is
relied on: ONE task per hub process polls the store's wall change counter (hub/wall.py
`change_marker`: a couple of indexed counter rows, on both engines) every `interval_s` while at
least one wall is connected, and wakes every connected stream when it moved. A stream carries
only "changed" and the counter's value: no case data, so scope needs nothing more than the
route's rule; the page then refetches its own scoped data (GET /api/wall).

Bounds: at most `max_clients` streams per process (503 beyond) and `max_per_session` per session
or token (429 beyond); a comment line every `heartbeat_s` keeps proxies from closing an idle
stream and lets us notice a vanished client; at each heartbeat the session is checked again
(logout, expiry, a disabled account end the stream; logout in this process ends it at once);
shutdown ends every stream first, so aiohttp's graceful shutdown never waits on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("jiancha.hub.wall")


@dataclass(eq=False)
class Stream:
    """One connected wall."""

    key: str  # the session (its hash) or the token's name: the per-session bound counts these
    session_hash: str | None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: str | None = None  # why the server ends it: "logout", "session", "shutdown"


def admission(open_total: int, open_for_key: int, max_clients: int, max_per_session: int) -> tuple[int, str] | None:
    """None when one more stream may open, else (HTTP status, error message)."""
    if open_for_key >= max_per_session:
        return 429, (
            f"此账号已打开 {open_for_key} 个实时大屏，请关闭不用的页面 "
            f"(too many live walls for this session: at most {max_per_session})"
        )
    if open_total >= max_clients:
        return 503, (
            "实时大屏连接已满，页面将每分钟自动刷新 "
            f"(this hub process serves at most {max_clients} live walls; try again later)"
        )
    return None


class WallEvents:
    """The process's one poller and its connected streams."""

    def __init__(
        self,
        read_marker: Callable[[], int],
        *,
        interval_s: float = 0.25,
        heartbeat_s: float = 15.0,
        max_clients: int = 200,
        max_per_session: int = 4,
    ):
        self.read_marker = read_marker
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.max_clients = max_clients
        self.max_per_session = max_per_session
        self.version: int | None = None
        self.changed_at = 0.0  # monotonic time the poller saw the last change
        self.streams: set[Stream] = set()
        self.closing = False
        self._wake = asyncio.Event()  # a first stream joined: start polling now

    # -- streams --------------------------------------------------------------------------------
    def refuse(self, key: str) -> tuple[int, str] | None:
        """Why a new stream for `key` may not open now (status, message), or None."""
        if self.closing:
            return 503, "服务正在停止 (the hub is shutting down)"
        mine = sum(1 for s in self.streams if s.key == key)
        return admission(len(self.streams), mine, self.max_clients, self.max_per_session)

    def join(self, key: str, session_hash: str | None) -> Stream:
        """Register a stream (after `refuse` said yes)."""
        s = Stream(key, session_hash)
        self.streams.add(s)
        self._wake.set()
        return s

    def leave(self, s: Stream) -> None:
        """Forget a stream (its handler is done)."""
        self.streams.discard(s)

    def end_session(self, session_hash: str, why: str = "logout") -> int:
        """End the streams of a session (logout in this process); returns how many."""
        n = 0
        for s in list(self.streams):
            if s.session_hash == session_hash:
                s.ended = why
                s.changed.set()
                n += 1
        return n

    def shutdown(self) -> None:
        """End every stream now (graceful shutdown must not wait on them)."""
        self.closing = True
        for s in list(self.streams):
            s.ended = "shutdown"
            s.changed.set()
        self._wake.set()

    # -- the poller -----------------------------------------------------------------------------
    async def poll_once(self) -> bool:
        """Read the marker once; wake every stream when it moved. True when it moved."""
        v = await asyncio.to_thread(self.read_marker)
        if v == self.version:
            return False
        first = self.version is None
        self.version = v
        if first:
            return False
        self.changed_at = time.monotonic()
        for s in list(self.streams):
            s.changed.set()
        return True

    async def run(self) -> None:
        """Poll while anyone listens; sleep otherwise. Cancelled at cleanup."""
        while not self.closing:
            if not self.streams:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await self._wake.wait()
                if not self.streams:
                    continue
            try:
                await self.poll_once()
            except Exception:  # a store hiccup (PostgreSQL restarting): keep polling, log once a while
                log.warning("wall change marker unreadable", exc_info=True)
                await asyncio.sleep(min(5.0, self.interval_s * 20))
            await asyncio.sleep(self.interval_s)
