"""What the hub's operator sessions (hub/sessions.py) and the box's clerk sessions
(agent/clerk_sessions.py) share: the stored form of a session id, its CSRF token, expiry.

The store keeps only a SHA-256 of a session id; the CSRF token is an HMAC of a fixed purpose
label under the session id (so it cannot be computed without the cookie, and a token of one
application is not one of the other); comparisons are constant-time."""

from __future__ import annotations

import hashlib
import hmac

TOUCH_EVERY_MS = 60_000  # the idle clock is written at most once a minute per session


def digest(session_id: str) -> str:
    """What the store keeps of a session id."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


def csrf_token(session_id: str, purpose: bytes) -> str:
    """The session's CSRF token for one application (`purpose` is its fixed label)."""
    return hmac.new(session_id.encode("utf-8", "surrogateescape"), purpose, hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, supplied: str | None, purpose: bytes) -> bool:
    """Whether `supplied` is this session's CSRF token (constant time)."""
    return bool(supplied) and hmac.compare_digest(
        csrf_token(session_id, purpose).encode(), str(supplied).encode()[:128]
    )


def is_expired(created_ms: int, seen_ms: int, now_ms: int, idle_ms: int, absolute_ms: int) -> bool:
    """Whether a session is over: idle too long, or older than the absolute limit."""
    return now_ms - seen_ms >= idle_ms or now_ms - created_ms >= absolute_ms


def should_touch(seen_ms: int, now_ms: int) -> bool:
    """Whether to write the session's last-seen time now (not on every request)."""
    return now_ms - seen_ms >= TOUCH_EVERY_MS
