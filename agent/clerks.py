"""Clerk accounts of the box (窗口人员): who may log in to the clerk's window page with a PIN.

A clerk has a name (shown on cases, signs and votes), a window and a PIN of 4–8 digits kept as
an argon2id hash in the agent's SQLite (never in clear). PINs are short by design (typed at a
counter many times a day), so what protects them is the hash, the login throttle
(agent/clerk_sessions.py: per clerk and per address) and the hall LAN. Trivial PINs (one digit
repeated, a run up or down such as 1234 or 9876) are refused. Used by `jiancha clerk ...`
(agent/cli.py) and by the login of agent/web.py.
"""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIGRATIONS = [
    (
        "0005_clerks",
        """
        CREATE TABLE clerks (name TEXT PRIMARY KEY, window TEXT NOT NULL, pin_hash TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL);
        CREATE TABLE clerk_sessions (id_hash TEXT PRIMARY KEY, clerk TEXT NOT NULL, created_ms INTEGER NOT NULL,
            seen_ms INTEGER NOT NULL, address TEXT);
        CREATE INDEX clerk_sessions_clerk ON clerk_sessions(clerk, created_ms);
    """,
    ),
]

MAX_NAME = 32  # a person's name; it also goes into case records (clerk, ≤ 64) and votes (staff)
MAX_WINDOW = 16
MAX_CLERKS = 500  # a hall has a few dozen; the login page lists them all
# argon2id at OWASP's second recommended setting (19 MiB, 2 passes): ~60 ms on a Raspberry Pi 4,
# which serves a few logins a day per clerk and must not be stalled by a burst of attempts.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class ClerkError(ValueError):
    """A refused clerk change; the message is Chinese with English in brackets."""


@dataclass(frozen=True)
class Clerk:
    name: str
    window: str
    disabled: bool
    created_ms: int
    changed_ms: int


def check_name(name: str) -> str:
    """The clerk's name, NFC-normalised and trimmed; ClerkError when empty, too long or odd."""
    text = unicodedata.normalize("NFC", str(name or "")).strip()
    if not text or len(text) > MAX_NAME:
        raise ClerkError(f"姓名须为 1–{MAX_NAME} 个字符 (name must be 1-{MAX_NAME} characters): {text[:40]!r}")
    if any(unicodedata.category(c)[0] in "CZ" and c != " " for c in text):
        raise ClerkError(f"姓名含有控制字符或特殊空白 (name holds control or special space characters): {text!r}")
    return text


def check_window(window: str, defined: list[str] | None) -> str:
    """The window, as one of `defined` when the box's board defines windows; ClerkError otherwise."""
    text = str(window or "").strip()
    if not text or len(text) > MAX_WINDOW or not all(c.isalnum() or c in "-_" for c in text):
        raise ClerkError(
            f"窗口编号须为 1–{MAX_WINDOW} 位字母或数字 (window must be 1-{MAX_WINDOW} letters or digits): {text[:40]!r}"
        )
    if defined and text not in defined:
        raise ClerkError(
            f"窗口 {text} 未在本站配置中定义，可选：{'、'.join(defined)} "
            f"(window {text} is not defined for this box; defined: {', '.join(defined)})"
        )
    return text


def is_trivial_pin(pin: str) -> bool:
    """True for a PIN anyone would try first: one digit repeated, or a run up or down (1234, 9876,
    8901), or two digits alternating (1212)."""
    steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:])}
    return len(steps) == 1 and steps <= {0, 1, 9} or len(set(pin)) <= 2 and pin == (pin[:2] * len(pin))[: len(pin)]


def check_pin(pin: str) -> str:
    """The PIN, or ClerkError: 4–8 digits, not trivial."""
    if not isinstance(pin, str) or not pin.isascii() or not pin.isdigit() or not 4 <= len(pin) <= 8:
        raise ClerkError("PIN 须为 4–8 位数字 (PIN must be 4-8 digits)")
    if is_trivial_pin(pin):
        raise ClerkError(
            "PIN 过于简单（如 0000、1234、1212），请另选 (PIN is trivial: repeated, sequential or alternating digits)"
        )
    return pin


def _row(r) -> Clerk:
    return Clerk(r[0], r[1], bool(r[2]), int(r[3]), int(r[4]))


def get(conn: sqlite3.Connection, name: str) -> Clerk | None:
    """The clerk with this name, if any."""
    r = conn.execute(
        "SELECT name, window, disabled, created_ms, changed_ms FROM clerks WHERE name=?", (name,)
    ).fetchone()
    return _row(r) if r else None


def list_clerks(conn: sqlite3.Connection, *, enabled_only: bool = False) -> list[Clerk]:
    """Every clerk (or the enabled ones), by window then name."""
    where = " WHERE disabled=0" if enabled_only else ""
    rows = conn.execute(
        f"SELECT name, window, disabled, created_ms, changed_ms FROM clerks{where} ORDER BY window, name LIMIT ?",
        (MAX_CLERKS,),
    )
    return [_row(r) for r in rows]


def add(conn: sqlite3.Connection, name: str, window: str, pin: str, defined: list[str] | None, now_ms: int) -> Clerk:
    """A new clerk; ClerkError for a bad name, window or PIN, or a name already used."""
    name, window, pin = check_name(name), check_window(window, defined), check_pin(pin)
    if get(conn, name) is not None:
        raise ClerkError(f"窗口人员 {name} 已存在；改 PIN 用 `jiancha clerk reset` (clerk {name} exists)")
    (n,) = conn.execute("SELECT count(*) FROM clerks").fetchone()
    if n >= MAX_CLERKS:
        raise ClerkError(f"窗口人员已达上限 {MAX_CLERKS} 人 (at most {MAX_CLERKS} clerks per box)")
    conn.execute(
        "INSERT INTO clerks (name, window, pin_hash, disabled, created_ms, changed_ms) VALUES (?, ?, ?, 0, ?, ?)",
        (name, window, HASHER.hash(pin), now_ms, now_ms),
    )
    return get(conn, name)  # type: ignore[return-value]


def _existing(conn: sqlite3.Connection, name: str) -> Clerk:
    got = get(conn, check_name(name))
    if got is None:
        raise ClerkError(f"没有名为 {name} 的窗口人员 (no clerk named {name!r})")
    return got


def disable(conn: sqlite3.Connection, name: str, now_ms: int) -> Clerk:
    """Disable a clerk: no login, and every session of theirs ends now."""
    clerk = _existing(conn, name)
    conn.execute("UPDATE clerks SET disabled=1, changed_ms=? WHERE name=?", (now_ms, clerk.name))
    conn.execute("DELETE FROM clerk_sessions WHERE clerk=?", (clerk.name,))
    return get(conn, clerk.name)  # type: ignore[return-value]


def reset(
    conn: sqlite3.Connection,
    name: str,
    pin: str,
    now_ms: int,
    window: str | None = None,
    defined: list[str] | None = None,
) -> Clerk:
    """A new PIN (and window, when given); re-enables a disabled clerk; every session ends."""
    clerk = _existing(conn, name)
    pin = check_pin(pin)
    new_window = check_window(window, defined) if window is not None else clerk.window
    conn.execute(
        "UPDATE clerks SET pin_hash=?, window=?, disabled=0, changed_ms=? WHERE name=?",
        (HASHER.hash(pin), new_window, now_ms, clerk.name),
    )
    conn.execute("DELETE FROM clerk_sessions WHERE clerk=?", (clerk.name,))
    return get(conn, clerk.name)  # type: ignore[return-value]


_DUMMY = HASHER.hash("dummy-pin-for-timing")


def authenticate(conn: sqlite3.Connection, name: str, pin: str) -> Clerk | None:
    """The enabled clerk whose PIN this is, or None. An unknown name costs one hash too, so the
    answer time does not tell which names exist."""
    row = conn.execute("SELECT pin_hash, disabled FROM clerks WHERE name=?", (name,)).fetchone()
    digest = row[0] if row else _DUMMY
    try:
        HASHER.verify(digest, pin[:16])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row[1]:
        return None
    return get(conn, name)


def now_ms() -> int:
    """Wall time in milliseconds (account change times only: no case clock)."""
    return int(time.time() * 1000)
