"""The audit log (操作日志): who did what, when, from where, and how it ended.

Written for logins (success and failure), logouts, account changes and every state-changing
operator API call (hub/web_auth.py); read by admins through GET /api/audit, newest first."""

from __future__ import annotations

MAX_PAGE = 500
_COLS = ("id", "at_ms", "actor", "role", "action", "target", "address", "result")


def record(
    conn,
    at_ms: int,
    actor: str,
    role: str | None,
    action: str,
    target: str | None,
    address: str | None,
    result: str,
) -> None:
    """Append one row (inside the caller's transaction); long texts are cut, never refused."""
    conn.execute(
        "INSERT INTO audit_log (at_ms, actor, role, action, target, address, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            int(at_ms),
            actor[:80],
            role,
            action[:120],
            (target or "")[:300] or None,
            (address or "")[:64] or None,
            str(result)[:200],
        ),
    )


def page(conn, limit: int = 100, before: int | None = None) -> list[dict]:
    """Rows newest first: at most `limit`, with ids below `before` when given (the next page)."""
    limit = min(max(int(limit), 1), MAX_PAGE)
    where, args = ("WHERE id < ?", (int(before),)) if before is not None else ("", ())
    rows = conn.execute(f"SELECT {', '.join(_COLS)} FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*args, limit))
    return [dict(zip(_COLS, r)) for r in rows.fetchall()]
