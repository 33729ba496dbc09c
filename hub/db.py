"""The hub's store engine: SQLite (the default, one file) or PostgreSQL (`store.url` in hub.yaml).

The hub's code speaks one SQL dialect, the common ground of SQLite 3.39+ and PostgreSQL 13+:
`?` placeholders, `INSERT … ON CONFLICT … DO NOTHING/UPDATE`, `RETURNING` (never `lastrowid`),
`IS [NOT] DISTINCT FROM`, integers 0/1 for flags (`WHERE flag <> 0`), `"window"` quoted (a
reserved word in PostgreSQL), no SQL JSON functions (the few JSON reads are done in Python),
`int()` around SUM (PostgreSQL returns a Decimal). On PostgreSQL a connection is a `PgConnection`:
it turns `?` into psycopg's `%s`, and `BEGIN IMMEDIATE` into `BEGIN` plus a transaction-level
advisory lock, so writers are serialised exactly as SQLite serialises them (one writer at a
time, readers never blocked). `iobase.sqlite.transaction` and `migrate` work on both unchanged.

Each engine has its own named migrations (`hub.store.all_migrations(engine)`): the SQLite ones
are the history every existing hub.db went through; the PostgreSQL ones create the same tables
with PostgreSQL types (BIGINT, BYTEA, identity columns).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from iobase import sqlite as sqlite_io

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
# the advisory lock every writing transaction takes on PostgreSQL (SQLite's BEGIN IMMEDIATE)
WRITE_LOCK_KEY = 0x6A69616E  # "jian"
# every PostgreSQL session of the hub: a worker that hangs inside a transaction (paused, cut off
# by the network) is ended by the server after a minute, and a dead peer is noticed by TCP
# keepalives within about a minute, so its locks never hold the other workers for long
SESSION_SETTINGS = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "options": "-c idle_in_transaction_session_timeout=60000",
}
EXCLUSIVE_WAIT_S = 10  # the sweep, the API's writes: give up (and retry later) after this long
# the key space of the per-site advisory locks ingest takes (two-int form: space, site key)
SITE_LOCK_SPACE = 0x6A63  # "jc"


class StoreUrlError(ValueError):
    """`store.url` is neither a SQLite path nor a postgresql:// URL."""


def engine_of(url: str) -> str:
    """'sqlite' for `sqlite:PATH` or a plain path, 'postgresql' for postgresql://… URLs."""
    if url.startswith(("postgresql://", "postgres://")):
        return POSTGRESQL
    if url.startswith("sqlite:") or "://" not in url:
        return SQLITE
    raise StoreUrlError(f"store.url {url.split('@')[-1]!r}: expected sqlite:PATH or postgresql://USER@HOST:PORT/DB")


def sqlite_path(url: str) -> Path:
    return Path(url[len("sqlite:") :] if url.startswith("sqlite:") else url)


def engine(conn: Any) -> str:
    """The engine behind an open connection."""
    return getattr(conn, "engine", SQLITE) if isinstance(conn, (PgConnection, PgPool)) else SQLITE


def connect(url: str | Path, *, readonly: bool = False, synchronous: str = "FULL", pool: int = 0) -> Any:
    """A connection to the store: sqlite3.Connection or PgConnection (same calls). With
    `pool=N` on PostgreSQL: a PgPool of up to N connections for single statements (the API's
    reader: requests served from several threads never queue behind one connection)."""
    url = str(url)
    if engine_of(url) == POSTGRESQL:
        return PgPool(url, max_size=pool) if pool else PgConnection(url, readonly=readonly)
    return sqlite_io.connect(sqlite_path(url), readonly=readonly, synchronous=synchronous)


def site_lock_key(code: str) -> int:
    """A site's advisory lock key: 32 stable bits of its code's SHA-256 (two sites that share a
    key only wait for each other)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(code.encode("utf-8")).digest()[:4], "big", signed=True)


@contextmanager
def site_transaction(conn: Any, sites: Iterable[str]):
    """The transaction ingest runs a group of messages in.

    SQLite: BEGIN IMMEDIATE (one writer at a time, as everywhere). PostgreSQL: BEGIN, the store's
    write lock *shared* (so ingest workers run side by side, while a writer that takes it
    exclusively -- the sweep, the API, the config push -- waits for them and they for it), then
    each site's own lock in key order (so two workers never deadlock on locks): everything one
    site's messages touch is read and written by one worker at a time."""
    if engine(conn) == SQLITE:
        with sqlite_io.transaction(conn):
            yield conn
        return
    keys = sorted({site_lock_key(s) for s in sites})
    conn.raw.execute("BEGIN")
    try:
        conn.raw.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK_KEY,))
        if keys:  # one round trip; the rows (and so the locks) come in the array's order
            conn.raw.execute(
                "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(%s, k) FROM unnest(%s::int4[]) AS k) AS s",
                (SITE_LOCK_SPACE, keys),
            )
        yield conn
        conn.raw.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.raw.execute("ROLLBACK")
        raise


def in_list(conn: Any, column: str, values: Iterable) -> tuple[str, list]:
    """(`column IN (?, …)`, params) on SQLite; (`column = ANY(?)`, [array]) on PostgreSQL, where
    one statement text for any number of values is parsed once (a long IN list is parsed by
    psycopg on every call)."""
    values = list(values)
    if engine(conn) == POSTGRESQL:
        return f"{column} = ANY(?)", [values]
    return f"{column} IN ({','.join('?' * len(values))})", values


def executemany_returning(conn: Any, sql: str, seq: Iterable) -> list[tuple]:
    """Run `sql` (with RETURNING) once per parameter tuple; every row returned. On PostgreSQL in
    one pipeline (one round trip, the statement parsed once); on SQLite statement by statement."""
    if engine(conn) == POSTGRESQL:
        cur = conn.raw.cursor()
        cur.executemany(to_pg(sql), [_pg_params(p) for p in seq], returning=True)
        rows: list[tuple] = []
        while True:
            rows += cur.fetchall()
            if not cur.nextset():
                return rows
    return [r for p in seq for r in conn.execute(sql, p).fetchall()]


def retryable_errors() -> tuple[type[BaseException], ...]:
    """Errors after which a transaction can simply be run again (PostgreSQL's deadlock and
    serialization failures; SQLite has neither, its writers are serialised)."""
    try:
        import psycopg

        return (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
    except ImportError:  # pragma: no cover - psycopg is an optional extra
        return ()


# errors a caller may catch whatever the engine
def integrity_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg

        return (sqlite3.IntegrityError, psycopg.errors.IntegrityError)
    except ImportError:  # pragma: no cover - psycopg is an optional extra
        return (sqlite3.IntegrityError,)


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%")
_cache: dict[str, str] = {}
_cache_lock = threading.Lock()


def to_pg(sql: str) -> str:
    """`?` → `%s` outside quotes and comments, and every literal `%` → `%%` (cached)."""
    out = _cache.get(sql)
    if out is None:

        def repl(m: re.Match) -> str:
            t = m.group(0)  # psycopg reads every % as a placeholder, in quotes and comments too
            return "%s" if t == "?" else t.replace("%", "%%")

        out = _PLACEHOLDER.sub(repl, sql)
        with _cache_lock:
            if len(_cache) < 4096:
                _cache[sql] = out
    return out


def _pg_params(params) -> tuple:
    """PostgreSQL text cannot hold NUL (SQLite's can): a NUL in a string parameter becomes
    U+FFFD. Only projections and lookups see it; a record's exact bytes are kept (BYTEA), so a
    hostile box's NUL never makes its batch fail (and be resent forever) on one engine only,
    and a NUL in a lookup finds nothing instead of failing."""
    return tuple(p.replace("\x00", "\ufffd") if type(p) is str and "\x00" in p else p for p in params)


class PgConnection:
    """A psycopg 3 connection that takes the hub's SQL (see the module docstring)."""

    engine = POSTGRESQL
    counter_shard: str | None = None  # set on an ingest worker's connection (hub.store.bump)

    def __init__(self, url: str, *, readonly: bool = False):
        import psycopg

        self.url = url
        self.raw = psycopg.connect(url, autocommit=True, **SESSION_SETTINGS)
        self.readonly = readonly
        if readonly:
            self.raw.execute("SET default_transaction_read_only = on")

    @property
    def in_transaction(self) -> bool:
        import psycopg

        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Any = ()):
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN"):
            # SQLite's BEGIN IMMEDIATE takes the database's write lock at once; the same here
            cur = self.raw.execute("BEGIN")
            if "IMMEDIATE" in head or "EXCLUSIVE" in head:  # waits at most EXCLUSIVE_WAIT_S: a
                # waiting exclusive request holds up every ingest worker's shared one behind it
                try:
                    self.raw.execute(
                        "SELECT set_config('lock_timeout', %s, true), pg_advisory_xact_lock(%s), "
                        "set_config('lock_timeout', '0', true)",
                        (f"{EXCLUSIVE_WAIT_S}s", WRITE_LOCK_KEY),
                    )
                except BaseException:
                    self.raw.execute("ROLLBACK")  # the caller's transaction never began
                    raise
            return cur
        if head.startswith("PRAGMA"):
            raise NotImplementedError(f"PRAGMA on PostgreSQL: {sql[:60]}")
        if params:
            return self.raw.execute(to_pg(sql), _pg_params(params))
        return self.raw.execute(sql)

    def executemany(self, sql: str, seq):
        cur = self.raw.cursor()
        cur.executemany(to_pg(sql), [_pg_params(p) for p in seq])
        return cur

    def close(self) -> None:
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Rows:
    """A finished statement's result (the pool's connection went back before it is read)."""

    def __init__(self, cur):
        self.description = cur.description
        self.rowcount = cur.rowcount
        self._rows = cur.fetchall() if cur.description is not None else []
        self._i = 0

    def fetchone(self):
        if self._i >= len(self._rows):
            return None
        self._i += 1
        return self._rows[self._i - 1]

    def fetchall(self):
        rows, self._i = self._rows[self._i :], len(self._rows)
        return rows

    def fetchmany(self, n: int = 1):
        rows = self._rows[self._i : self._i + n]
        self._i += len(rows)
        return rows

    def __iter__(self):
        return iter(self.fetchall())


class PgPool:
    """A psycopg_pool.ConnectionPool that takes the hub's SQL one statement at a time (each
    statement its own snapshot, as on an autocommit connection). No transactions: BEGIN raises;
    a writer keeps a PgConnection of its own."""

    engine = POSTGRESQL
    counter_shard: str | None = None
    in_transaction = False

    def __init__(self, url: str, *, max_size: int = 4):
        from psycopg_pool import ConnectionPool

        self.url = url
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, max_size),
            kwargs={"autocommit": True, **SESSION_SETTINGS},
            open=True,
            name="jiancha-reader",
        )

    def execute(self, sql: str, params: Any = ()):
        head = sql.lstrip()[:16].upper()
        if head.startswith(("BEGIN", "PRAGMA")):
            raise NotImplementedError(f"{head.split()[0]} on a pooled reader: {sql[:60]}")
        with self.pool.connection() as raw:
            return _Rows(raw.execute(to_pg(sql), _pg_params(params)) if params else raw.execute(sql))

    def close(self) -> None:
        self.pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
