"""The whole hub on PostgreSQL (store.url), with a real broker and real agents: the hub creates
its tables, cases arrive exactly once with their deadlines, a red card opens a 督办 ticket whose
document is issued, and a hub killed mid-burst loses and doubles nothing."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.e2e.harness import Env, at, http, wait_for, working_days_ago


@pytest.fixture
def pg_env(tmp_path, pg_server):
    url = pg_server.create_db("e2e")  # empty: the hub migrates it itself
    e = Env(tmp_path / "hub", sites=("S01", "S02"), store_url=url)
    e.store_url = url
    try:
        e.start_broker()
        e.start_hub_and_agents("S01", "S02")
        for code in ("S01", "S02"):
            wait_for(lambda: e.agent_health(code)["catalog_version"] > 0, 30, what=f"catalog at {code}")
        yield e
    finally:
        e.close()


def _one(url: str, sql: str, *args):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchone()[0]


@pytest.mark.postgresql
def test_the_hub_runs_on_postgresql(pg_env):
    env = pg_env
    assert not (env.root / "data" / "hub.db").exists()  # nothing went to SQLite
    late = working_days_ago(30)
    st, case = env.register("S01", "XK-001", received_at=at(late, 9).isoformat())
    assert st == 201, case
    assert env.event("S01", case["case_no"], "accept", at=at(late, 10).isoformat())[0] == 201
    env.wait_synced("S01")
    hub_case = wait_for(lambda: (c := env.hub_get(f"/api/cases/{case['case_no']}"))["light"] == "red" and c)
    assert hub_case["status"] == "accepted" and hub_case["applicant"]["name"] == "张三"
    tickets = wait_for(lambda: env.hub_get(f"/api/tickets?case_no={case['case_no']}"), 20, what="ticket")
    ticket_id = tickets[0]["id"]

    def issued():
        docs = env.hub_get(f"/api/tickets/{ticket_id}")["documents"]
        return docs if docs and all(d["document_id"] for d in docs) else None

    docs = wait_for(issued, 30, what="documents issued on PostgreSQL")
    st, _ = http("GET", f"{env.hub_url}/api/documents/{docs[0]['document_id']}.pdf", token=env.token)
    assert st == 200
    assert _one(env.store_url, "SELECT count(*) FROM documents WHERE case_no = %s", case["case_no"]) == len(docs)

    # a burst at S02 while the hub is killed and restarted: every case stored once
    made: list[str] = []

    def burst():
        for _ in range(40):
            st, c = env.register("S02", "XK-001")
            assert st == 201, c
            made.append(c["case_no"])

    t = threading.Thread(target=burst)
    t.start()
    wait_for(lambda: len(made) >= 10, 30, what="burst under way")
    env.hub.kill()  # SIGKILL: no goodbye, a transaction may be half done
    env.start_hub()
    t.join(60)
    env.wait_synced("S02")
    wait_for(lambda: env.hub_get("/api/cases?site=S02")["total"] == 40, 30, what="40 cases at the hub")
    assert _one(env.store_url, "SELECT count(*) FROM records WHERE site='S02' AND kind='case.registered'") == 40
    assert _one(env.store_url, "SELECT count(DISTINCT seq) FROM records WHERE site='S02'") == _one(
        env.store_url, "SELECT max(seq) FROM records WHERE site='S02'"
    )
    assert _one(env.store_url, "SELECT acked_seq FROM sites WHERE code='S02'") == _one(
        env.store_url, "SELECT max(seq) FROM records WHERE site='S02'"
    )
