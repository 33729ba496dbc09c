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

import secrets
import sqlite3
from dataclasses import dataclass

from agent.clerks import Clerk, get
from iobase import websession
from iobase.throttle import AttemptThrottle

COOKIE = "jc_clerk"
LOGIN_CSRF_COOKIE = "jc_clerk_login"  # double-submit token of the login form (before any session)
MAX_PER_CLERK = 5


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


CSRF_PURPOSE = b"jiancha clerk csrf v1"
digest, should_touch = websession.digest, websession.should_touch


def csrf_token(session_id: str) -> str:
    """The session's CSRF token (the csrf field of every form on the clerk's pages)."""
    return websession.csrf_token(session_id, CSRF_PURPOSE)


def csrf_matches(session_id: str, supplied: str | None) -> bool:
    """Whether `supplied` is this session's CSRF token (constant time)."""
    return websession.csrf_matches(session_id, supplied, CSRF_PURPOSE)


def is_expired(created_ms: int, seen_ms: int, now_ms: int, policy: SessionPolicy) -> bool:
    """Whether a session is over: idle too long, or older than the absolute limit."""
    return websession.is_expired(created_ms, seen_ms, now_ms, policy.idle_ms, policy.absolute_ms)


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


class PinThrottle(AttemptThrottle):
    """Failed PIN logins per clerk and per client address (iobase.throttle: fixed windows,
    counted when let through, bounded memory with overflow entries)."""

    def __init__(self, per_clerk: int = 5, per_address: int = 20, window_s: float = 900.0, max_keys: int = 2000):
        super().__init__(per_clerk, per_address, window_s, max_keys)
