"""Portal ratings of one site written at the same instant by several hub workers get distinct
negative seqs (hub/ratings.py record_portal_rating), on both store engines. On PostgreSQL the
workers are made to clash on purpose: each opens a plain transaction (without the API's write
lock, the worst case) and all of them pick the next seq before any inserts; every rating is
still stored once, with seqs -1 … -N, and the clashes were retried. A case rated twice at once
is stored once; the other is refused."""

from __future__ import annotations

import json
import threading

from hub import ratings
from hub.db import POSTGRESQL, connect, engine
from hub.ratings import RatingRefused, record_portal_rating

SITE = "140702-001"
N = 6


def case(n: int) -> dict:
    reg = {"window": "3", "clerk": "李四"}
    return {"case_no": f"{SITE}-20261120-{n:04d}", "site": SITE, "status": "completed",
            "department": "市场监督管理局", "reg_json": json.dumps(reg, ensure_ascii=False)}  # fmt: skip


def run_workers(store_url, cases, monkeypatch, *, pg: bool) -> tuple[list, list, list]:
    """Each case rated by its own thread on its own connection; (stored rows, refusals, the seqs picked)."""
    picks = threading.Barrier(len(cases)) if pg else None
    first = threading.local()
    real = ratings._portal_row
    calls = []

    def synced(conn, c, reg, level, comment, now_ms):
        row = real(conn, c, reg, level, comment, now_ms)
        calls.append(row["seq"])
        if picks is not None and not getattr(first, "done", False):
            first.done = True
            picks.wait(timeout=30)  # everyone holds the same "next seq" before anyone inserts
        return row

    monkeypatch.setattr(ratings, "_portal_row", synced)
    stored, refused, errors = [], [], []

    def work(c):
        conn = connect(store_url)
        try:
            conn.execute("BEGIN" if pg else "BEGIN IMMEDIATE")  # PostgreSQL: no write lock at all
            try:
                stored.append(record_portal_rating(conn, c, 4, None, 1_795_000_000_000))
            except RatingRefused as exc:
                refused.append(str(exc))
            conn.execute("COMMIT")
        except Exception as exc:  # a unique violation here is the clash this test is about
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(c,)) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return stored, refused, calls


def test_portal_ratings_of_one_site_at_one_instant_get_distinct_seqs(db, store_url, monkeypatch):
    pg = engine(db) == POSTGRESQL
    stored, refused, calls = run_workers(store_url, [case(n) for n in range(1, N + 1)], monkeypatch, pg=pg)
    assert refused == [] and len(stored) == N
    got = sorted(r[0] for r in db.execute("SELECT seq FROM votes WHERE site=? AND channel='portal'", (SITE,)))
    assert got == list(range(-N, 0))
    assert sorted(r["seq"] for r in stored) == got
    if pg:  # they did clash: all picked -1 first, and all but one tried again
        assert calls[:N] == [-1] * N and len(calls) > N


def test_one_case_rated_twice_at_once_is_stored_once(db, store_url, monkeypatch):
    pg = engine(db) == POSTGRESQL
    stored, refused, _calls = run_workers(store_url, [case(1), case(1)], monkeypatch, pg=pg)
    assert len(stored) == 1 and refused == ["该办件已经评价过，每个办件只能网上评价一次。"]
    assert db.execute("SELECT count(*) FROM votes WHERE case_no=?", (case(1)["case_no"],)).fetchone()[0] == 1
