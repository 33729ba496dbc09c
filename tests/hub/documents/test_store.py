"""DocumentStore: atomic per-(prefix, year) numbering, bytes + sha256 in the hub's store (SQLite
and PostgreSQL: the `store_url` fixture of tests/hub/conftest.py), verified reads."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from datetime import date

import pytest

from hub.db import SQLITE, connect, engine
from hub.documents import MIGRATIONS, DocumentFacts, DocumentIntegrityError, DocumentStore, render_pdf
from iobase.sqlite import migrate
from tests.hub.documents import pdftools
from tests.hub.documents.conftest import make_facts

PREFIX = "晋中监察"


@pytest.fixture
def conn(store_url):
    """A bare connection to an empty store: DocumentStore creates its tables itself."""
    c = connect(store_url)
    yield c
    c.close()


@pytest.fixture
def store(conn):
    return DocumentStore(conn, clock=lambda: 1_790_000_000_000)


def issue(store, kind="duban", facts=None, *, year=2026, prefix=PREFIX, **kw):
    facts = facts or make_facts(issue_date=date(year, 1, 5) if year != 2026 else date(2026, 11, 21))
    return store.issue(kind, facts, prefix=prefix, year=year, case_no=facts.case_no, actor="operator:zhang", **kw)


def test_issue_returns_the_documented_fields(store):
    d = issue(store)
    assert set(d) == {"id", "number", "kind", "sha256", "size", "created_ms"}
    assert d["number"] == "晋中监察〔2026〕1号" and d["kind"] == "duban"
    assert d["created_ms"] == 1_790_000_000_000 and d["size"] > 1000 and len(d["sha256"]) == 64


def test_numbers_run_per_prefix_and_year_across_kinds_and_reset_in_a_new_year(store):
    got = [issue(store, k)["number"] for k in ("duban", "order_explain", "rectify", "decision")]
    assert got == [f"晋中监察〔2026〕{n}号" for n in (1, 2, 3, 4)]
    assert issue(store, "inquiry", year=2027)["number"] == "晋中监察〔2027〕1号"
    assert issue(store, "inquiry", year=2027)["number"] == "晋中监察〔2027〕2号"
    assert issue(store, "suggestion", prefix="榆次监察")["number"] == "榆次监察〔2026〕1号"
    assert issue(store, "duban")["number"] == "晋中监察〔2026〕5号"  # 2026 goes on where it was


def test_the_pdf_carries_its_allocated_number(store, tmp_path):
    issue(store)
    d = issue(store, "order_explain")
    meta, pdf = store.get(d["id"])
    flat = pdftools.flat(pdf, tmp_path)
    assert "晋中监察〔2026〕2号" in flat and "责令说明理由通知书" in flat


def test_get_returns_bytes_matching_the_stored_hash(store, conn):
    d = issue(store, ticket_id=42)
    meta, pdf = store.get(d["id"])
    assert hashlib.sha256(pdf).hexdigest() == d["sha256"] == meta["sha256"]
    assert len(pdf) == d["size"] == meta["size"]
    (stored,) = conn.execute("SELECT sha256 FROM documents WHERE id=?", (d["id"],)).fetchone()
    assert stored == d["sha256"]
    assert meta["number"] == d["number"] and meta["case_no"] == "JZ-DY-20260302-0007"
    assert meta["ticket_id"] == 42 and meta["actor"] == "operator:zhang"
    assert meta["title"] == "督办通知书" and (meta["prefix"], meta["year"], meta["seq"]) == (PREFIX, 2026, 1)
    # the stored facts re-render to the very same bytes
    f = DocumentFacts.from_dict(meta["facts"])
    assert f == make_facts()
    assert render_pdf("duban", meta["number"], f) == pdf
    assert store.get(d["id"] + 100) is None


def test_tampered_bytes_are_detected_on_read(store, conn):
    d = issue(store)
    (pdf,) = conn.execute("SELECT pdf FROM documents WHERE id=?", (d["id"],)).fetchone()
    damaged = bytearray(pdf)
    damaged[len(damaged) // 2] ^= 0x01
    conn.execute("UPDATE documents SET pdf=? WHERE id=?", (bytes(damaged), d["id"]))
    with pytest.raises(DocumentIntegrityError, match="altered or damaged"):
        store.get(d["id"])


def test_list_all_and_by_case(store):
    a = issue(store)
    b = issue(store, "inquiry", make_facts(case_no="JZ-DY-20260305-0011"))
    c = issue(store, "rectify")
    assert [x["id"] for x in store.list()] == [a["id"], b["id"], c["id"]]
    mine = store.list("JZ-DY-20260302-0007")
    assert [(x["number"], x["kind"]) for x in mine] == [
        ("晋中监察〔2026〕1号", "duban"),
        ("晋中监察〔2026〕3号", "rectify"),
    ]
    assert "pdf" not in mine[0] and store.list("nope") == []


def test_a_failed_render_consumes_no_number(store):
    issue(store)
    with pytest.raises(ValueError, match="reply_deadline"):
        issue(store, "duban", make_facts(reply_deadline=None))
    assert issue(store, "inquiry")["number"] == "晋中监察〔2026〕2号"
    assert len(store.list()) == 2


def test_bad_arguments(store):
    f = make_facts()
    with pytest.raises(ValueError, match="differs"):
        store.issue("duban", f, prefix=PREFIX, year=2026, case_no="OTHER", actor="a")
    with pytest.raises(ValueError, match="actor"):
        store.issue("duban", f, prefix=PREFIX, year=2026, case_no=f.case_no, actor=" ")
    with pytest.raises(ValueError, match="unknown document kind"):
        store.issue("memo", f, prefix=PREFIX, year=2026, case_no=f.case_no, actor="a")
    with pytest.raises(ValueError, match="prefix"):
        store.issue("duban", f, prefix="", year=2026, case_no=f.case_no, actor="a")
    with pytest.raises(ValueError, match="year"):
        store.issue("duban", f, prefix=PREFIX, year=26, case_no=f.case_no, actor="a")
    with pytest.raises(ValueError, match="year 2027 differs"):
        store.issue("duban", f, prefix=PREFIX, year=2027, case_no=f.case_no, actor="a")
    assert store.list() == []


def test_concurrent_issuers_get_distinct_consecutive_numbers(store_url):
    path = store_url
    first = connect(path)
    DocumentStore(first)  # schema
    first.close()
    numbers: list[str] = []
    errors: list[BaseException] = []

    def worker():
        c = connect(path)
        s = DocumentStore(c)
        try:
            for _ in range(3):
                numbers.append(issue(s, "inquiry")["number"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)  # each issue renders a PDF: slow on a loaded machine, never a lost thread
    assert not any(t.is_alive() for t in threads), f"issuers still running after 180 s; numbers so far {numbers}"
    assert not errors
    assert sorted(numbers, key=lambda n: int(n.split("〕")[1][:-1])) == [f"晋中监察〔2026〕{n}号" for n in range(1, 10)]


def test_issue_inside_a_callers_transaction_rolls_back_with_it(store, conn):
    conn.execute("BEGIN IMMEDIATE")
    issue(store)
    conn.execute("ROLLBACK")
    assert store.list() == []
    conn.execute("BEGIN IMMEDIATE")
    d = issue(store)
    conn.execute("COMMIT")
    assert d["number"] == "晋中监察〔2026〕1号" and len(store.list()) == 1


def test_migrations_run_with_the_hub_runner_and_are_idempotent(store_url):
    from hub.store import MIGRATIONS as HUB_MIGRATIONS
    from hub.store import all_migrations, open_db

    conn = open_db(store_url)  # the hub applies the documents migration itself
    eng = engine(conn)
    if eng == SQLITE:
        assert "documents_0001" in {name for name, _ in all_migrations()}
        assert migrate(conn, MIGRATIONS) == []
    assert migrate(conn, all_migrations(eng)) == []
    DocumentStore(conn)  # applies nothing new
    names = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    assert names == {name for name, _ in all_migrations(eng)}
    if eng == SQLITE:
        assert "documents_0001" in names
        assert not any(name == "documents_0001" for name, _ in HUB_MIGRATIONS)
    else:  # one PostgreSQL migration holds the whole schema, documents included
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)
    conn.close()


def test_works_with_a_default_python_sqlite_connection(tmp_path):
    # SQLite-only: about Python's sqlite3 module in its legacy implicit-transaction mode
    conn = sqlite3.connect(tmp_path / "plain.db")  # legacy implicit transactions
    s = DocumentStore(conn)
    assert issue(s)["number"] == "晋中监察〔2026〕1号"
    conn.close()
    again = sqlite3.connect(tmp_path / "plain.db")
    assert [d["number"] for d in DocumentStore(again).list()] == ["晋中监察〔2026〕1号"]
    again.close()


def test_a_number_taken_while_rendering_is_rendered_again(store_url, tmp_path):
    path = store_url
    a_conn, b_conn = connect(path), connect(path)
    a, b = DocumentStore(a_conn), DocumentStore(b_conn)
    real = DocumentStore._render
    calls = []

    def racing_render(kind, prefix, year, seq, facts):
        calls.append(seq)
        if len(calls) == 1:  # while A renders 1号, B issues it
            issue(b, "inquiry")
        return real(kind, prefix, year, seq, facts)

    a._render = racing_render  # type: ignore[method-assign]
    d = issue(a, "duban")
    assert calls == [1, 2] and d["number"] == "晋中监察〔2026〕2号"
    meta, pdf = a.get(d["id"])
    assert "晋中监察〔2026〕2号" in pdftools.flat(pdf, tmp_path)
    assert [x["number"] for x in b.list()] == ["晋中监察〔2026〕1号", "晋中监察〔2026〕2号"]
    a_conn.close()
    b_conn.close()


def test_under_constant_contention_the_last_try_renders_under_the_lock(store_url):
    path = store_url
    a_conn, b_conn = connect(path), connect(path)
    a, b = DocumentStore(a_conn), DocumentStore(b_conn)
    real = DocumentStore._render
    calls = []

    def always_racing(kind, prefix, year, seq, facts):
        calls.append(seq)
        if len(calls) <= DocumentStore.OPTIMISTIC_TRIES:
            issue(b, "inquiry")
        return real(kind, prefix, year, seq, facts)

    a._render = always_racing  # type: ignore[method-assign]
    d = issue(a, "duban")
    n = DocumentStore.OPTIMISTIC_TRIES
    assert calls == list(range(1, n + 1)) + [n + 1] and d["number"] == f"晋中监察〔2026〕{n + 1}号"
    assert len(a.list()) == n + 1
    a_conn.close()
    b_conn.close()
