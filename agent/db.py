"""SQLite plumbing shared by agent and hub: durable connection settings and named migrations."""
from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Sequence



def connect(path: Path | str, *, readonly: bool = False, synchronous: str = "FULL",
            cache_kb: int | None = None) -> sqlite3.Connection:
    """A connection in WAL mode; `synchronous=FULL` so a commit survives a power cut."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                               isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    if cache_kb is not None:      # a small box: a small page cache per connection
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
        "full" in str(exc).lower() or getattr(exc, "sqlite_errorcode", None) == 13)
