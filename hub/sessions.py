"""Server-side sessions (登录会话) of the hub's web, and their CSRF tokens.

The browser holds a random session id in an HttpOnly cookie; the store holds only its SHA-256,
so a copy of the database (a backup) lets no one in. A session ends after `idle` without a
request, `absolute` after login, at logout, when its account is disabled or its password reset,
and when the account opens more than `max_per_user` sessions (the oldest goes). The CSRF token
is derived from the session id (HMAC), so it needs no storage and dies with the session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hub.accounts import User
from iobase import websession

COOKIE = "jc_session"
LOGIN_CSRF_COOKIE = "jc_login_csrf"  # double-submit token of the login form (before any session)


@dataclass(frozen=True)
class SessionPolicy:
    """Expiry and bounds of sessions (hub.yaml api.sessions)."""

    idle_ms: int = 30 * 60_000
    absolute_ms: int = 12 * 3600_000
    max_per_user: int = 10


@dataclass(frozen=True)
class Session:
    id_hash: str
    user: User
    created_ms: int
    seen_ms: int


CSRF_PURPOSE = b"jiancha csrf v1"
digest, should_touch = websession.digest, websession.should_touch


def csrf_token(session_id: str) -> str:
    """The session's CSRF token (sent by our pages in X-CSRF-Token or the csrf form field)."""
    return websession.csrf_token(session_id, CSRF_PURPOSE)


def csrf_matches(session_id: str, supplied: str | None) -> bool:
    """Whether `supplied` is this session's CSRF token (constant time)."""
    return websession.csrf_matches(session_id, supplied, CSRF_PURPOSE)


def is_expired(created_ms: int, seen_ms: int, now_ms: int, policy: SessionPolicy) -> bool:
    """Whether a session is over: idle too long, or older than the absolute limit."""
    return websession.is_expired(created_ms, seen_ms, now_ms, policy.idle_ms, policy.absolute_ms)


def create(conn, user: User, now_ms: int, address: str | None, policy: SessionPolicy) -> str:
    """A new session for `user` (inside the caller's transaction); returns its id (for the cookie).

    Expired sessions of everyone are removed first, then the user's oldest beyond the cap."""
    conn.execute(
        "DELETE FROM sessions WHERE seen_ms <= ? OR created_ms <= ?",
        (now_ms - policy.idle_ms, now_ms - policy.absolute_ms),
    )
    old = conn.execute(
        "SELECT id_hash FROM sessions WHERE login=? ORDER BY created_ms DESC, id_hash", (user.login,)
    ).fetchall()
    for (id_hash,) in old[max(policy.max_per_user - 1, 0) :]:
        conn.execute("DELETE FROM sessions WHERE id_hash=?", (id_hash,))
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO sessions (id_hash, login, created_ms, seen_ms, address) VALUES (?, ?, ?, ?, ?)",
        (digest(session_id), user.login, now_ms, now_ms, (address or "")[:64]),
    )
    return session_id


def lookup(conn, session_id: str, now_ms: int, policy: SessionPolicy) -> Session | None:
    """The live session of an enabled account with this id, or None."""
    if not session_id or len(session_id) > 128:
        return None
    row = conn.execute(
        "SELECT s.id_hash, s.created_ms, s.seen_ms, u.login, u.display_name, u.role, u.scope, u.disabled, "
        "u.created_ms, u.changed_ms FROM sessions s JOIN users u ON u.login = s.login WHERE s.id_hash = ?",
        (digest(session_id),),
    ).fetchone()
    if row is None or row[7] or is_expired(int(row[1]), int(row[2]), now_ms, policy):
        return None
    user = User(row[3], row[4], row[5], row[6], False, int(row[8]), int(row[9]))
    return Session(row[0], user, int(row[1]), int(row[2]))


def touch(conn, id_hash: str, now_ms: int) -> None:
    """Record activity (restarts the idle clock)."""
    conn.execute("UPDATE sessions SET seen_ms=? WHERE id_hash=? AND seen_ms < ?", (now_ms, id_hash, now_ms))


def end(conn, id_hash: str) -> None:
    """Logout: the session is gone."""
    conn.execute("DELETE FROM sessions WHERE id_hash=?", (id_hash,))
