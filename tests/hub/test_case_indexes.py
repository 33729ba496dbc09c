"""The operators' routes read the cases table through indexes, never by scanning or sorting all
of it: at a province's 10,000,000 cases a scan is seconds per request (bench/province.py,
docs/benchmarks.md "Province scale"), and the wall asks every 3 s.

The statements are the ones the routes really run: captured from the SQLite reader with
`set_trace_callback` (sqlite3's own hook; psycopg has none), then explained on SQLite and, with
sequential scans and sorts priced out, on PostgreSQL with the same schema."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from hub.db import connect
from hub.store import open_db
from tests.hub.hubapp import close, provisioned_hub, served

ROUTES = [
    "/api/sites",
    "/api/cases?open=1&order=urgency&limit=300",
    "/api/cases?open=1&light=red&order=urgency&limit=300",
    "/api/cases?limit=50",
    "/api/cases?site=S01&limit=50&offset=20",
    "/api/cases?department=%E4%BD%8F%E5%BB%BA%E5%B1%80&status=accepted&limit=50",
    "/api/cards",
    "/api/wall",
    "/metrics",
]


def _case_statements(tmp_path) -> list[str]:
    hub = provisioned_hub(tmp_path / "hub", sites=("S01", "S02"))
    seen: list[str] = []
    try:
        hub.reader.set_trace_callback(seen.append)  # SQL with its parameters filled in
        token = hub.cfg.api.admin_token

        async def go():
            headers = {"Authorization": f"Bearer {token}"}
            async with served(hub) as (url, _app), aiohttp.ClientSession(headers=headers) as s:
                for route in ROUTES:
                    async with s.get(url + route) as r:
                        assert r.status == 200, (route, await r.text())

        asyncio.run(go())
    finally:
        close(hub)
    statements = sorted({s for s in seen if " FROM cases" in s})
    assert len(statements) >= 8, statements  # each route's list and count
    return statements


def test_every_operator_query_on_cases_reads_an_index_in_its_order(tmp_path):
    conn = open_db(tmp_path / "plans.db")
    try:
        for sql in _case_statements(tmp_path):
            plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            for step in plan:
                assert step != "SCAN cases", (sql, plan)  # every case row read
                assert "TEMP B-TREE FOR ORDER BY" not in step, (sql, plan)  # every match sorted
    finally:
        conn.close()


@pytest.mark.postgresql
def test_postgresql_has_the_same_indexes_for_them(tmp_path, pg_server):
    statements = _case_statements(tmp_path)
    url = pg_server.create_db("plans")
    open_db(url).close()
    conn = connect(url)
    try:
        conn.execute("SET enable_seqscan = off")  # an empty table: price the scan the planner
        conn.execute("SET enable_sort = off")  # would pick for a small one out of the way
        for sql in statements:
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql).fetchall())
            assert "Seq Scan on cases" not in plan, (sql, plan)
            if " ORDER BY " in sql:
                assert "Sort" not in plan, (sql, plan)
    finally:
        conn.close()
