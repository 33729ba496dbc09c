"""hub/db.py: one SQL dialect on two engines; the PostgreSQL schema matches the SQLite history."""

from __future__ import annotations

import threading
import time

import pytest

from hub.db import PgConnection, StoreUrlError, engine, engine_of, integrity_errors, to_pg
from hub.store import open_db
from iobase.sqlite import transaction


def test_placeholders_are_translated_outside_quotes_and_comments():
    assert to_pg("SELECT a FROM t WHERE b=? AND c LIKE '%?%' -- why?\n AND d=?") == (
        "SELECT a FROM t WHERE b=%s AND c LIKE '%%?%%' -- why?\n AND d=%s"
    )
    assert to_pg('SELECT "we?ird" FROM t WHERE x = ?') == 'SELECT "we?ird" FROM t WHERE x = %s'


@pytest.mark.parametrize(
    "url, engine_name",
    [("/var/lib/jiancha/hub.db", "sqlite"), ("sqlite:/x/hub.db", "sqlite"), ("postgresql://u@h:5432/db", "postgresql")],
)
def test_store_urls(url, engine_name):
    assert engine_of(url) == engine_name


def test_an_unknown_store_url_is_named_without_its_password():
    with pytest.raises(StoreUrlError) as exc:
        engine_of("mysql://root:secret@db/hub")
    assert "secret" not in str(exc.value) and "postgresql://" in str(exc.value)


def _tables(conn) -> dict[str, set[str]]:
    """Tables and views with their columns."""
    if engine(conn) == "sqlite":
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
        return {
            n: {r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')}
            for n in names
            if not n.startswith("sqlite_") and n != "_migrations"
        }
    out: dict[str, set[str]] = {}
    for table, column in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
    ):
        if table != "_migrations":
            out.setdefault(table, set()).add(column)
    return out


def _indexes(conn) -> set[str]:
    """Named indexes (not those of primary keys and UNIQUE constraints, which the engines name
    their own way)."""
    if engine(conn) == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'"
        return {r[0] for r in conn.execute(sql)}
    rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows if not r[0].endswith(("_pkey", "_key"))}


@pytest.mark.postgresql
def test_both_engines_end_with_the_same_tables_and_columns(tmp_path, pg_server):
    lite = open_db(tmp_path / "hub.db")
    pg = open_db(pg_server.create_db("schema"))
    try:
        assert _tables(pg) == _tables(lite)
        assert _indexes(pg) == _indexes(lite)
    finally:
        lite.close()
        pg.close()


def test_same_answers_on_both_engines(db):
    """Upserts, RETURNING, DISTINCT FROM and a NUL in a parameter behave the same."""
    with transaction(db):
        db.execute("INSERT INTO counters(name, value) VALUES ('n', 1)")
        db.execute(
            "INSERT INTO counters(name, value) VALUES ('n', 2) "
            "ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value"
        )
        new_id = db.execute(
            "INSERT INTO alerts(at_ms, site, kind, detail) VALUES (?, ?, ?, ?) RETURNING id", (1, "S01", "k", "a\x00b")
        ).fetchone()[0]
    assert db.execute("SELECT value FROM counters WHERE name='n'").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM alerts WHERE site IS DISTINCT FROM ?", ("S02",)).fetchone()[0] == 1
    detail = db.execute("SELECT detail FROM alerts WHERE id=?", (new_id,)).fetchone()[0]
    assert detail in ("a\x00b", "a\ufffdb")  # PostgreSQL text holds no NUL: U+FFFD in its place
    assert db.execute("SELECT count(*) FROM alerts WHERE detail = ?", ("\x00",)).fetchone()[0] == 0
    with pytest.raises(integrity_errors()), transaction(db):
        db.execute("INSERT INTO counters(name, value) VALUES ('n', 1)")
    assert db.execute("SELECT value FROM counters WHERE name='n'").fetchone()[0] == 3  # rolled back


@pytest.mark.postgresql
def test_begin_immediate_serialises_writers_on_postgresql(pg_server):
    """Two writers: the second waits for the first to commit, as SQLite's write lock makes it."""
    url = pg_server.create_db("lock", template=pg_server.hub_template)
    a, b = PgConnection(url), PgConnection(url)
    order: list[str] = []
    try:
        a.execute("BEGIN IMMEDIATE")
        a.execute("INSERT INTO counters(name, value) VALUES ('x', 1)")

        def second():
            with transaction(b):
                order.append("b got the lock")
                b.execute("UPDATE counters SET value = value + 1 WHERE name = 'x'")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        order.append("a commits")
        a.execute("COMMIT")
        t.join(10)
        assert order == ["a commits", "b got the lock"]
        assert a.execute("SELECT value FROM counters WHERE name = 'x'").fetchone()[0] == 2
        assert not a.in_transaction and not b.in_transaction
    finally:
        a.close()
        b.close()


@pytest.mark.postgresql
def test_the_pooled_reader_serves_many_threads_and_refuses_transactions(pg_server):
    """The API's reader on PostgreSQL: a pool of connections, each statement on its own."""
    import threading

    from hub.db import PgPool, connect

    url = pg_server.create_db("pool", template=pg_server.hub_template)
    reader = connect(url, pool=3)
    assert isinstance(reader, PgPool) and engine(reader) == "postgresql"
    try:
        got, errors = [], []

        def read():
            try:
                for _ in range(20):
                    cur = reader.execute("SELECT pg_backend_pid(), ? + 1", (41,))
                    pid, answer = cur.fetchone()
                    assert answer == 42 and cur.fetchone() is None
                    got.append(pid)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors and len(got) == 120
        assert 1 <= len(set(got)) <= 3  # never more connections than the pool's size
        assert [r[0] for r in reader.execute("SELECT generate_series(1, 3)")] == [1, 2, 3]
        with pytest.raises(NotImplementedError):
            reader.execute("BEGIN IMMEDIATE")
    finally:
        reader.close()


def test_deferred_counters_write_once_at_the_end_and_roll_back_with_the_transaction(db):
    from hub.store import bump, counter_totals, deferred_counters

    statements: list[str] = []
    if engine(db) == "sqlite":
        db.set_trace_callback(statements.append)
    with transaction(db), deferred_counters(db):
        for _ in range(50):
            bump(db, "records_stored", 2)
            bump(db, "batches_received")
        with deferred_counters(db):  # nested: still one write at the outer end
            bump(db, "batches_received")
        assert "records_stored" not in counter_totals(db)  # not yet written
    assert counter_totals(db)["records_stored"] == 100 and counter_totals(db)["batches_received"] == 51
    if engine(db) == "sqlite":
        db.set_trace_callback(None)
        assert sum("INTO counters" in s for s in statements) == 2  # one upsert per counter, not 101
    with pytest.raises(RuntimeError), transaction(db), deferred_counters(db):
        bump(db, "records_stored", 7)
        raise RuntimeError("the group failed")
    assert counter_totals(db)["records_stored"] == 100  # rolled back with it
    bump(db, "records_stored")  # outside a block: at once
    assert counter_totals(db)["records_stored"] == 101
