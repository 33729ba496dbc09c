"""Server-side sessions (登录会话) of the clerk's window page, their CSRF tokens, and the PIN throttle.

The browser holds a random session id in an HttpOnly, SameSite=Strict cookie (Secure over
HTTPS); the agent's SQLite holds only its SHA-256. A session ends after `idle_ms` without a
request, `absolute_ms` after login, at logout, and when its clerk is disabled or gets a new PIN
(agent/clerks.py deletes the rows). One clerk keeps at most MAX_PER_CLERK sessions (the oldest
goes). The CSRF token is an HMAC of the session id: no storage, it dies with the session.

The agent's own small version of the hub's sessions and throttle (the agent may not import the
hub; docs/clerk.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass

from agent.clerks import Clerk, get

COOKIE = "jc_clerk"
LOGIN_CSRF_COOKIE = "jc_clerk_login"  # double-submit token of the login form (before any session)
MAX_PER_CLERK = 5
TOUCH_EVERY_MS = 60_000  # the idle clock is written at most once a minute per session


@dataclass(frozen=True)
class SessionPolicy:
    """Expiry of clerk sessions (agent.yaml http.sessions)."""

    idle_ms: int = 30 * 60_000
    absolute_ms: int = 12 * 3600_000

    @classmethod
    def from_config(cls, sessions) -> SessionPolicy:
        """From agent.yaml's http.sessions."""
        return cls(sessions.idle_minutes * 60_000, sessions.absolute_hours * 3600_000)


@dataclass(frozen=True)
class Session:
    id_hash: str
    clerk: Clerk
    created_ms: int
    seen_ms: int


def digest(session_id: str) -> str:
    """What the store keeps of a session id."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


def csrf_token(session_id: str) -> str:
    """The session's CSRF token (the csrf field of every form on the clerk's pages)."""
    return hmac.new(session_id.encode("utf-8", "surrogateescape"), b"jiancha clerk csrf v1", hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, supplied: str | None) -> bool:
    """Whether `supplied` is this session's CSRF token (constant time)."""
    return bool(supplied) and hmac.compare_digest(csrf_token(session_id).encode(), str(supplied).encode()[:128])


def is_expired(created_ms: int, seen_ms: int, now_ms: int, policy: SessionPolicy) -> bool:
    """Whether a session is over: idle too long, or older than the absolute limit."""
    return now_ms - seen_ms >= policy.idle_ms or now_ms - created_ms >= policy.absolute_ms


def should_touch(seen_ms: int, now_ms: int) -> bool:
    """Whether to write the session's last-seen time now (not on every request)."""
    return now_ms - seen_ms >= TOUCH_EVERY_MS


def create(conn: sqlite3.Connection, clerk: str, now_ms: int, address: str | None, policy: SessionPolicy) -> str:
    """A new session for `clerk` (inside the caller's transaction); returns its id for the cookie.
    Expired sessions of everyone go first, then the clerk's oldest beyond MAX_PER_CLERK."""
    conn.execute(
        "DELETE FROM clerk_sessions WHERE seen_ms <= ? OR created_ms <= ?",
        (now_ms - policy.idle_ms, now_ms - policy.absolute_ms),
    )
    old = conn.execute(
        "SELECT id_hash FROM clerk_sessions WHERE clerk=? ORDER BY created_ms DESC, id_hash", (clerk,)
    ).fetchall()
    for (id_hash,) in old[MAX_PER_CLERK - 1 :]:
        conn.execute("DELETE FROM clerk_sessions WHERE id_hash=?", (id_hash,))
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO clerk_sessions (id_hash, clerk, created_ms, seen_ms, address) VALUES (?, ?, ?, ?, ?)",
        (digest(session_id), clerk, now_ms, now_ms, (address or "")[:64]),
    )
    return session_id


def lookup(conn: sqlite3.Connection, session_id: str, now_ms: int, policy: SessionPolicy) -> Session | None:
    """The live session of an enabled clerk with this id, or None."""
    if not session_id or len(session_id) > 128:
        return None
    row = conn.execute(
        "SELECT id_hash, clerk, created_ms, seen_ms FROM clerk_sessions WHERE id_hash=?", (digest(session_id),)
    ).fetchone()
    if row is None or is_expired(int(row[2]), int(row[3]), now_ms, policy):
        return None
    clerk = get(conn, row[1])
    if clerk is None or clerk.disabled:
        return None
    return Session(row[0], clerk, int(row[2]), int(row[3]))


def touch(conn: sqlite3.Connection, id_hash: str, now_ms: int) -> None:
    """Record activity (restarts the idle clock)."""
    conn.execute("UPDATE clerk_sessions SET seen_ms=? WHERE id_hash=? AND seen_ms < ?", (now_ms, id_hash, now_ms))


def end(conn: sqlite3.Connection, id_hash: str) -> None:
    """Logout: the session is gone."""
    conn.execute("DELETE FROM clerk_sessions WHERE id_hash=?", (id_hash,))


class PinThrottle:
    """Failed PIN logins counted per clerk and per client address, in fixed windows.

    After `per_clerk` failures for one clerk, or `per_address` from one address, attempts are
    refused until that key's window (`window_s` from its first failure) is over. An attempt is
    counted when let through, before the PIN is checked (a burst cannot outrun argon2); a right
    PIN forgives the clerk's count and takes its attempt back from the address. At most
    `max_keys` keys are kept: those whose window is over go first; when the table is full of live
    keys, newcomers share one overflow key per kind (flooders lock each other out, nobody's
    count is reset)."""

    OVERFLOW = "*overflow*"

    def __init__(self, per_clerk: int = 5, per_address: int = 20, window_s: float = 900.0, max_keys: int = 2000):
        self.per_clerk, self.per_address, self.window_s, self.max_keys = per_clerk, per_address, window_s, max_keys
        self.counts: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.counts)

    def attempt(self, clerk: str, address: str, now: float) -> float | None:
        """Seconds to wait, or None: then the attempt is let through and counted at once."""
        waits = [
            self._wait(("clerk", clerk), self.per_clerk, now),
            self._wait(("addr", address), self.per_address, now),
        ]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is None:
            for key in (("clerk", clerk), ("addr", address)):
                key = self._slot(key, now)
                start, n = self.counts.get(key, (now, 0))
                if now - start >= self.window_s:
                    start, n = now, 0
                self.counts[key] = (start, n + 1)
                self.counts.move_to_end(key)
        return wait

    def succeeded(self, clerk: str, address: str) -> None:
        """A right PIN: the clerk's failures are forgiven, the address's attempt taken back."""
        self.counts.pop(("clerk", clerk), None)
        key = ("addr", address) if ("addr", address) in self.counts else ("addr", self.OVERFLOW)
        got = self.counts.get(key)
        if got is not None and got[1] > 0:
            self.counts[key] = (got[0], got[1] - 1)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> float | None:
        got = self.counts.get(key)
        if got is None and len(self.counts) >= self.max_keys - 2:
            got = self.counts.get((key[0], self.OVERFLOW))
        if got is None:
            return None
        start, n = got
        left = start + self.window_s - now
        return left if n >= limit and left > 0 else None

    def _slot(self, key: tuple[str, str], now: float) -> tuple[str, str]:
        if key in self.counts:
            return key
        for _ in range(8):  # forget a few keys whose window is over (oldest written first)
            if not self.counts:
                break
            oldest, (start, _n) = next(iter(self.counts.items()))
            if now - start < self.window_s:
                break
            del self.counts[oldest]
        if len(self.counts) >= self.max_keys - 2:  # the last two slots are the overflow keys
            return (key[0], self.OVERFLOW)
        return key
