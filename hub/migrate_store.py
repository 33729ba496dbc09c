"""`jiancha hub migrate-store`: move a hub's store from SQLite to PostgreSQL (or between any two
stores), verified.

Procedure (docs/operations.md "Moving the hub's store to PostgreSQL"): stop the hub (the boxes
keep every unacknowledged record and drain again when it is back), run this, set `store.url`
in hub.yaml, start the hub. The copy reads the source in one read transaction; the target
must be a new, empty store (it is migrated here). Every table is copied in pages of rows with
the same column names; afterwards identity counters continue above the copied ids. The copy is
verified by row counts per table and, per site, by the contiguous mark, the highest seq and
the hash of the records at both; then the source is counted again, and a source that changed
meanwhile (a hub still running) fails the command.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.db import POSTGRESQL, SQLITE, connect, engine, engine_of
from hub.store import open_db

PAGE_ROWS = 2000


class MigrateError(ValueError):
    """The move cannot start, or its verification failed; the message says what differs."""


@dataclass
class MoveReport:
    tables: dict[str, int] = field(default_factory=dict)  # table → rows copied
    sites: dict[str, tuple] = field(default_factory=dict)  # site → (acked, acked hash, max seq, its hash)
    seconds: float = 0.0


def _tables(conn) -> list[str]:
    if engine(conn) == SQLITE:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    else:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='public' "
            "AND table_type='BASE TABLE' ORDER BY table_name"
        )
    return [r[0] for r in rows if r[0] != "_migrations"]


def _columns(conn, table: str) -> list[str]:
    if engine(conn) == SQLITE:
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    return [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema='public' AND table_name=? "
            "ORDER BY ordinal_position",
            (table,),
        )
    ]


def _order(conn, table: str) -> str:
    """ORDER BY of the table's primary key (stable paging), or all columns."""
    if engine(conn) == SQLITE:
        pk = [r[1] for r in sorted(conn.execute(f'PRAGMA table_info("{table}")'), key=lambda r: r[5]) if r[5]]
    else:
        pk = [
            r[0]
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = ?::regclass AND i.indisprimary",
                (table,),
            )
        ]
    return ", ".join(f'"{c}"' for c in (pk or _columns(conn, table)))


def _pages(conn, sql: str):
    """The rows of `sql` in pages of PAGE_ROWS, streamed (never the whole table in memory)."""
    if engine(conn) == POSTGRESQL:
        cur = conn.raw.cursor(name="jiancha_migrate")  # server-side: rows come as they are fetched
        cur.execute(sql)
    else:
        cur = conn.execute(sql)
    try:
        while rows := cur.fetchmany(PAGE_ROWS):
            yield rows
    finally:
        cur.close()


def chain_heads(conn) -> dict[str, tuple]:
    """Per site: (acked seq, hash at it, highest seq stored, hash at it), hashes in hex."""

    def hash_at(site: str, seq: int | None) -> str:
        if not seq:
            return ""
        row = conn.execute("SELECT hash FROM records WHERE site=? AND seq=?", (site, seq)).fetchone()
        return bytes(row[0]).hex() if row else "missing"

    sites = conn.execute(
        "SELECT s.code, s.acked_seq, (SELECT max(seq) FROM records r WHERE r.site = s.code) FROM sites s ORDER BY s.code"
    ).fetchall()
    return {site: (acked, hash_at(site, acked), top or 0, hash_at(site, top)) for site, acked, top in sites}


def _counts(conn, tables) -> dict[str, int]:
    return {t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}


def _records_digest(conn) -> str:
    """sha256 over every record's (site, seq, hash), in order: the copied log is the same log."""
    h = hashlib.sha256()
    last = ("", 0)
    while True:
        rows = conn.execute(
            "SELECT site, seq, hash FROM records WHERE site > ? OR (site = ? AND seq > ?) ORDER BY site, seq LIMIT ?",
            (last[0], last[0], last[1], 20_000),
        ).fetchall()
        if not rows:
            return h.hexdigest()
        for site, seq, hsh in rows:
            h.update(f"{site}\x1f{seq}\x1f".encode() + bytes(hsh))
        last = (rows[-1][0], rows[-1][1])


def migrate_store(src_url: str, dst_url: str, *, progress: Callable[[str], None] = lambda s: None) -> MoveReport:
    """Copy every table of the store at `src_url` into the new, empty store at `dst_url`."""
    import time

    started = time.monotonic()
    if engine_of(src_url) == SQLITE:
        from hub.db import sqlite_path

        if not sqlite_path(src_url).is_file():
            raise MigrateError(f"{src_url}: no such SQLite store")
    if src_url == dst_url:
        raise MigrateError("--from and --to name the same store")
    src = connect(src_url, readonly=True)
    dst = open_db(dst_url)
    try:
        tables = _tables(src)
        missing = sorted(set(tables) - set(_tables(dst)))
        if missing:
            raise MigrateError(f"{dst_url.split('@')[-1]}: has no table {', '.join(missing)}: migrate the source first")
        busy = {t: n for t, n in _counts(dst, tables).items() if n}
        if busy:
            raise MigrateError(
                f"{dst_url.split('@')[-1]}: the target store is not empty ({', '.join(f'{t}: {n}' for t, n in busy.items())}); "
                "give a new database"
            )
        if engine(src) == POSTGRESQL:  # one read snapshot of the whole source
            src.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        else:
            src.execute("BEGIN")
        report = MoveReport()
        for table in tables:
            cols = [c for c in _columns(src, table) if c in set(_columns(dst, table))]
            names = ", ".join(f'"{c}"' for c in cols)
            marks = ", ".join("?" for _ in cols)
            order = _order(src, table)
            n = 0
            dst.execute("BEGIN IMMEDIATE")
            try:
                for rows in _pages(src, f'SELECT {names} FROM "{table}" ORDER BY {order}'):
                    dst.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)
                    n += len(rows)
                if engine(dst) == POSTGRESQL and "id" in cols:
                    # identity columns continue above the copied ids
                    dst.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM \"{table}\"), 0) + 1, false)"
                    )
                dst.execute("COMMIT")
            except BaseException:
                if dst.in_transaction:
                    dst.execute("ROLLBACK")
                raise
            report.tables[table] = n
            progress(f"{table}: {n:,} rows")
        want_counts, want_heads, want_digest = _counts(src, tables), chain_heads(src), _records_digest(src)
        src.execute("COMMIT")
        got_counts, got_heads, got_digest = _counts(dst, tables), chain_heads(dst), _records_digest(dst)
        diff = [
            f"{t}: {want_counts[t]} in the source, {got_counts.get(t)} copied"
            for t in tables
            if want_counts[t] != got_counts.get(t)
        ]
        diff += [
            f"site {s}: chain head {want_heads[s]} in the source, {got_heads.get(s)} copied"
            for s in want_heads
            if want_heads[s] != got_heads.get(s)
        ]
        if want_digest != got_digest:
            diff.append("the records' (site, seq, hash) differ")
        if diff:
            raise MigrateError("the copy does not match the source: " + "; ".join(diff[:10]))
        if _counts(src, tables) != want_counts:
            raise MigrateError(
                "the source changed while it was copied (is the hub still running?): stop the hub, "
                "drop the target database and run again"
            )
        report.sites = got_heads
        report.seconds = time.monotonic() - started
        return report
    finally:
        src.close()
        dst.close()
