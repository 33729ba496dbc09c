"""SQLite plumbing shared by agent and hub: durable connection settings and named migrations."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Sequence
from pathlib import Path

DB_FILE_MODE = 0o600  # the databases hold names, ID numbers and phone numbers
DB_DIR_MODE = 0o700


def _private_db_file(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (SQLite gives its -wal and -shm
    files the database file's mode), tighten an existing one and its -wal/-shm, and make the
    folder 0700 when we own it (never a shared sticky folder such as /tmp)."""
    if str(path) == ":memory:" or str(path).startswith("file:"):
        return
    path = Path(path)
    try:
        st = os.stat(path.parent)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077 and not st.st_mode & stat.S_ISVTX:
            os.chmod(path.parent, DB_DIR_MODE)
    except OSError:
        pass  # the connect below reports a missing folder
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, DB_FILE_MODE))
    except OSError:
        return
    _tighten(path)


def _tighten(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            st = os.stat(p)
            if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(p, DB_FILE_MODE)
        except OSError:
            pass


def connect(
    path: Path | str, *, readonly: bool = False, synchronous: str = "FULL", cache_kb: int | None = None
) -> sqlite3.Connection:
    """A connection in WAL mode; `synchronous=FULL` so a commit survives a power cut.

    The database file and its -wal/-shm are 0600 and their folder 0700 (see _private_db_file).
    """
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
    else:
        _private_db_file(Path(path))
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        _tighten(Path(path))  # -wal/-shm left by an older version with wider modes
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    if cache_kb is not None:  # a small box: a small page cache per connection
        conn.execute(f"PRAGMA cache_size=-{int(cache_kb)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error. On a full disk SQLite has often
    rolled back already; a second ROLLBACK would raise and hide the real error (the clerk
    must get 507, not 500), so roll back only if a transaction is still open."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


Migration = tuple[str, str]  # (name, SQL script)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply named migrations not yet recorded in the `_migrations` table; returns their names."""
    # plain SQL on purpose: sqlite-utils imports numpy when it is installed (+11 MB per agent)
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at FLOAT)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, script in migrations:
        if name in done:
            continue
        with transaction(conn):
            for stmt in _statements(script):
                conn.execute(stmt)
            conn.execute("INSERT INTO _migrations(name, applied_at) VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied


def _statements(script: str) -> list[str]:
    """Split a migration script on ';' at line ends (our scripts have no triggers)."""
    return [s.strip() for s in script.split(";\n") if s.strip().strip(";")]


def is_disk_full(exc: BaseException) -> bool:
    """True when SQLite failed because the disk (or the database) is full."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "full" in str(exc).lower() or getattr(exc, "sqlite_errorcode", None) == 13
    )
