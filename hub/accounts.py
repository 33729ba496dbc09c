"""Operator accounts (监察人员账号): who may log in to the hub's web, with which role and scope.

A role says what an account may do (hub/access.py names it per route); a scope narrows what it
sees: a supervisor's or viewer's scope is a region code prefix (行政区划代码, e.g. 140702: the
sites whose code starts with it), a department officer's is a department name. Passwords are
kept as argon2id hashes (argon2-cffi), never in clear. The same tables on PostgreSQL in
hub/schema_pg.py (pg_0004_accounts)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("admin", "supervisor", "department", "viewer")
ROLE_ZH = {"admin": "管理员", "supervisor": "监察人员", "department": "部门人员", "viewer": "只读（大屏）"}
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 takes any length; a login form has no reason to send a book
LOGIN_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
REGION_RE = re.compile(r"[0-9]{2,12}")
MAX_DEPARTMENT = 64
MAX_DISPLAY = 64

MIGRATIONS = [
    (
        "0009_accounts",
        """
        CREATE TABLE users (login TEXT PRIMARY KEY, display_name TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'department', 'viewer')),
            scope TEXT, pw_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL);
        CREATE TABLE sessions (id_hash TEXT PRIMARY KEY, login TEXT NOT NULL, created_ms INTEGER NOT NULL,
            seen_ms INTEGER NOT NULL, address TEXT);
        CREATE INDEX sessions_login ON sessions(login, created_ms);
        CREATE INDEX sessions_seen ON sessions(seen_ms);
        CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL,
            role TEXT, action TEXT NOT NULL, target TEXT, address TEXT, result TEXT NOT NULL);
        CREATE INDEX audit_log_actor ON audit_log(actor, id);
    """,
    ),
]

# argon2id with the library's defaults (RFC 9106 "low memory": 64 MiB, 3 passes): ~50 ms per
# login on a hub. Tests swap in a cheaper hasher (tests/hub/accounts_helpers.py).
HASHER = PasswordHasher()


class AccountError(ValueError):
    """A refused account change; the message is Chinese with English in brackets."""


class LastAdminError(AccountError):
    """Disabling the last enabled admin account (over the API): nobody could manage accounts."""


@dataclass(frozen=True)
class User:
    login: str
    display_name: str
    role: str
    scope: str | None
    disabled: bool
    created_ms: int
    changed_ms: int


def check_login(login: str) -> str:
    """The login name, or AccountError: 2–32 of a-z 0-9 . _ -, starting with a letter or digit."""
    if not isinstance(login, str) or not LOGIN_RE.fullmatch(login):
        raise AccountError(
            f"登录名须为 2–32 位小写字母、数字或 . _ -，以字母或数字开头 (login must be 2-32 of a-z 0-9 . _ -, "
            f"starting with a letter or digit): {str(login)[:40]!r}"
        )
    return login


def check_role_scope(role: str, scope: str | None) -> str | None:
    """The normalized scope for `role`, or AccountError naming what is wrong."""
    if role not in ROLES:
        raise AccountError(f"角色须为 {' | '.join(ROLES)} 之一 (role must be one of {', '.join(ROLES)}): {role!r}")
    scope = scope.strip() if isinstance(scope, str) else scope
    scope = scope or None
    if role == "admin":
        if scope is not None:
            raise AccountError("管理员不设范围 (an admin takes no scope: it sees everything)")
        return None
    if role == "department":
        if scope is None:
            raise AccountError(
                "部门人员须指定其部门 (the department role needs --scope DEPARTMENT, e.g. 市场监督管理局)"
            )
        if REGION_RE.fullmatch(scope):
            raise AccountError(
                f"部门人员的范围应为部门名称，而不是区划代码 (a department scope is a department name, "
                f"not a region code): {scope!r}"
            )
        if len(scope) > MAX_DEPARTMENT or any(unicodedata.category(c)[0] == "C" for c in scope):
            raise AccountError(
                f"部门名称至多 {MAX_DEPARTMENT} 字且不含控制字符 (a department name is at most "
                f"{MAX_DEPARTMENT} characters, no control characters)"
            )
        return scope
    if scope is not None and not REGION_RE.fullmatch(scope):
        raise AccountError(
            f"{ROLE_ZH[role]}的范围须为 2–12 位区划代码前缀，或不设（全市）({role} scope must be a region code "
            f"prefix of 2-12 digits, e.g. 140702, or none for the whole hub): {scope!r}"
        )
    return scope


def check_password(password: str) -> str:
    """The password, or AccountError when it is too weak or too long."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(
            f"密码太短：至少 {MIN_PASSWORD} 个字符 (password too weak: at least {MIN_PASSWORD} characters)"
        )
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"密码太长：至多 {MAX_PASSWORD} 个字符 (password too long: at most {MAX_PASSWORD})")
    if len(set(password)) < 4:
        raise AccountError("密码过于简单：请勿重复同一字符 (password too weak: too few different characters)")
    return password


def check_display_name(name: str | None, login: str) -> str:
    """A display name (defaults to the login)."""
    name = (name or "").strip() or login
    if len(name) > MAX_DISPLAY or any(unicodedata.category(c)[0] == "C" for c in name):
        raise AccountError(
            f"显示名至多 {MAX_DISPLAY} 字且不含控制字符 (display name: at most {MAX_DISPLAY}, no control)"
        )
    return name


def hash_password(password: str) -> str:
    """The argon2id hash of a checked password."""
    return HASHER.hash(check_password(password))


def password_matches(pw_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash (unknown login) the same work is done anyway, so
    the answer's timing does not tell which logins exist."""
    try:
        return HASHER.verify(pw_hash or _dummy_hash(), password[:MAX_PASSWORD]) and pw_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY or not _DUMMY[0].startswith(f"$argon2id$v=19$m={HASHER.memory_cost},"):
        _DUMMY[:] = [HASHER.hash("not a password of anyone")]
    return _DUMMY[0]


_COLS = "login, display_name, role, scope, disabled, created_ms, changed_ms"


def _user(row) -> User:
    return User(row[0], row[1], row[2], row[3], bool(row[4]), int(row[5]), int(row[6]))


def add_user(
    conn, login: str, role: str, scope: str | None, password: str, now_ms: int, display_name: str | None = None
) -> User:
    """Create an account (inside the caller's transaction); AccountError if it exists or is invalid."""
    login = check_login(login)
    scope = check_role_scope(role, scope)
    name = check_display_name(display_name, login)
    pw_hash = hash_password(password)
    if conn.execute("SELECT 1 FROM users WHERE login=?", (login,)).fetchone():
        raise AccountError(f"账号已存在 (an account with this login exists): {login}")
    conn.execute(
        f"INSERT INTO users ({_COLS}, pw_hash) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
        (login, name, role, scope, now_ms, now_ms, pw_hash),
    )
    return get_user(conn, login)


def get_user(conn, login: str) -> User | None:
    """The account, or None."""
    row = conn.execute(f"SELECT {_COLS} FROM users WHERE login=?", (login,)).fetchone()
    return _user(row) if row else None


def list_users(conn) -> list[User]:
    """Every account, by login."""
    return [_user(r) for r in conn.execute(f"SELECT {_COLS} FROM users ORDER BY login")]


def _existing(conn, login: str) -> User:
    user = get_user(conn, login) if isinstance(login, str) else None
    if user is None:
        raise LookupError(f"账号不存在 (no such account): {str(login)[:40]}")
    return user


def disable_user(conn, login: str, now_ms: int, *, keep_an_admin: bool = False) -> User:
    """Disable an account and end its sessions (LookupError if there is none). With
    `keep_an_admin` (the API), refuse to disable the last enabled admin (LastAdminError); the
    CLI may, as `jiancha user reset` enables it again."""
    user = _existing(conn, login)
    if keep_an_admin and user.role == "admin" and not user.disabled:
        others = conn.execute(
            "SELECT count(*) FROM users WHERE role='admin' AND disabled=0 AND login<>?", (login,)
        ).fetchone()[0]
        if not others:
            raise LastAdminError(
                "不能停用最后一个管理员账号 (the last enabled admin account cannot be disabled over the API)"
            )
    conn.execute("UPDATE users SET disabled=1, changed_ms=? WHERE login=?", (now_ms, login))
    conn.execute("DELETE FROM sessions WHERE login=?", (login,))
    return get_user(conn, login)


def reset_password(conn, login: str, password: str, now_ms: int, *, enable: bool = False) -> User:
    """Set a new password and end the account's sessions (with `enable`, also re-enable it)."""
    _existing(conn, login)
    pw_hash = hash_password(password)
    conn.execute(
        "UPDATE users SET pw_hash=?, changed_ms=?" + (", disabled=0" if enable else "") + " WHERE login=?",
        (pw_hash, now_ms, login),
    )
    conn.execute("DELETE FROM sessions WHERE login=?", (login,))
    return get_user(conn, login)


def authenticate(conn, login: str, password: str) -> User | None:
    """The enabled account whose password this is, or None (same work for unknown logins)."""
    row = conn.execute(f"SELECT {_COLS}, pw_hash FROM users WHERE login=?", (login[:64],)).fetchone()
    ok = password_matches(row[7] if row else None, password)
    if not ok or row is None or row[4]:
        return None
    return _user(row)
