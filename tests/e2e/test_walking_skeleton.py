"""A case registered at a township box reaches the hub over encrypted MQTT, exactly once, with
the right legal deadline; faults on the way lose nothing."""

from __future__ import annotations

import sqlite3
import threading

from tests import calendar_reference as ref
from tests.e2e.harness import at, http, last_day_before_a_holiday, wait_for


def _wait_catalog(env, code):
    wait_for(lambda: env.agent_health(code)["catalog_version"] > 0, 20, what=f"{code} catalog")


def _case_records(db, site) -> int:
    return db.execute("SELECT count(*) FROM records WHERE site=? AND kind='case.registered'", (site,)).fetchone()[0]


def _hub_db(env) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True)


def test_case_reaches_hub_with_deadline_and_public_lookup(env):
    _wait_catalog(env, "S01")
    # a paper case entered afterwards (补录), received on the last working day before a seeded
    # holiday (e.g. 9/30 before 国庆) long enough ago to be overdue by now, whatever today is
    day = last_day_before_a_holiday(20)
    st, case = env.register("S01", "XK-001", received_at=at(day, 10).isoformat(), window="3号窗口")
    assert st == 201, case
    assert case["case_no"].startswith("S01-") and len(case["query_code"]) == 8
    st, _ = env.event("S01", case["case_no"], "accept", at=at(day, 10, 30).isoformat())
    assert st == 201
    env.wait_synced("S01")
    hub_case = wait_for(
        lambda: (c := env.hub_get(f"/api/cases/{case['case_no']}"))["status"] == "accepted" and c,
        what="accepted at hub",
    )
    # promised 10 working days, the holiday (and any 调休 working day) counted as the reference
    # calendar says (chinese_calendar, not the code under test)
    due = ref.add_working_days(day, 10)
    assert due > ref.add_weekdays(day, 10)  # the holiday moved the deadline
    assert hub_case["due_date"] == due.isoformat()
    assert hub_case["legal_due_date"] == ref.add_working_days(day, 20).isoformat()
    assert hub_case["due_provisional"] is False and ref.is_covered(due.year)
    assert hub_case["light"] == "red"  # at least 20 working days ago: long past the promised date
    assert hub_case["applicant"]["name"] == "张三"
    # the citizen sees progress, no personal data
    st, pub = http("GET", f"{env.hub_url}/api/public/cases/{case['case_no']}?code={case['query_code']}")
    assert st == 200 and pub["status"] == "accepted" and pub["due_date"] == due.isoformat()
    flat = repr(pub)
    for secret in ("张三", "13800000000", "140702199001011234", case["query_code"]):
        assert secret not in flat
    assert http("GET", f"{env.hub_url}/api/public/cases/{case['case_no']}?code=00000000")[0] == 404
    # complete: status moves; the red card stays on the record (超期办结)
    assert env.event("S01", case["case_no"], "complete")[0] == 201
    env.wait_synced("S01")
    done = wait_for(lambda: (c := env.hub_get(f"/api/cases/{case['case_no']}"))["status"] == "completed" and c)
    assert done["light"] == "red" and [e["type"] for e in done["events"]] == ["accept", "complete"]
    sites = {s["code"]: s for s in env.hub_get("/api/sites")}
    head = env.agent_health("S01")["last_seq"]  # cases, events and the box's heartbeats
    assert sites["S01"]["online"] and sites["S01"]["acked_seq"] == head and sites["S01"]["backlog"] == 0
    assert sites["S01"]["clock"] == "ntp"


def test_offline_registration_then_broker_returns(env):
    _wait_catalog(env, "S01")
    env.broker.stop()
    made = []
    for _ in range(25):
        st, c = env.register("S01", "GG-003")
        assert st == 201  # the clerk is never blocked by a dead network
        made.append(c["case_no"])
    assert env.agent_health("S01")["backlog"] >= 25
    env.start_broker()
    env.wait_synced("S01", 60)
    wait_for(lambda: env.hub_get("/api/cases?site=S01")["total"] == 25, what="25 cases at hub")
    with _hub_db(env) as db:
        assert _case_records(db, "S01") == 25
        got = {r[0] for r in db.execute("SELECT case_no FROM cases WHERE site='S01'")}
    assert got == set(made)


def _burst(env, code, n, out, errors):
    for _ in range(n):
        try:
            st, c = env.register(code, "XK-003")
        except OSError as exc:  # the agent died under us
            errors.append(exc)
            return
        if st == 201:
            out.append(c["case_no"])


def test_agent_sigkill_mid_burst_loses_no_acknowledged_case(env):
    _wait_catalog(env, "S02")
    acknowledged, errors = [], []
    t = threading.Thread(target=_burst, args=(env, "S02", 400, acknowledged, errors))
    t.start()
    wait_for(lambda: len(acknowledged) >= 40, 30, 0.01, what="burst under way")
    env.agents["S02"].kill()
    t.join(30)
    assert acknowledged, "no case was acknowledged before the kill"
    env.start_agent("S02")
    h = env.wait_synced("S02", 60)
    assert h["last_seq"] >= len(acknowledged)
    with _hub_db(env) as db:
        hub_cases = [r[0] for r in db.execute("SELECT case_no FROM cases WHERE site='S02'")]
        n_records = _case_records(db, "S02")
        all_records = db.execute("SELECT count(*) FROM records WHERE site='S02'").fetchone()[0]
    assert set(acknowledged) <= set(hub_cases)
    assert len(hub_cases) == len(set(hub_cases)) == n_records
    assert all_records == h["last_seq"]  # every record of the log, exactly once


def test_hub_killed_and_restarted_mid_stream(env):
    _wait_catalog(env, "S01")
    for _ in range(30):
        assert env.register("S01", "XK-001")[0] == 201
    env.hub.kill()  # no goodbye: the broker publishes the hub's Will
    wait_for(lambda: not env.agent_health("S01")["hub_online"], 20, what="agent sees hub offline")
    for _ in range(30):
        assert env.register("S01", "XK-001")[0] == 201
    env.start_hub()
    h = env.wait_synced("S01", 60)
    assert env.hub_get("/api/cases?site=S01")["total"] == 60
    with _hub_db(env) as db:
        assert _case_records(db, "S01") == 60
        assert db.execute("SELECT count(*) FROM records WHERE site='S01'").fetchone()[0] == h["last_seq"]


def test_broker_restart_mid_drain(env):
    _wait_catalog(env, "S01")
    env.agents["S01"].stop()
    # write a backlog while the agent is down... through the agent itself: restart offline first
    env.broker.stop()
    env.start_agent("S01")
    for _ in range(300):
        assert env.register("S01", "QR-001")[0] == 201
    env.start_broker()
    wait_for(lambda: env.agent_health("S01")["acked_seq"] > 0, 30, 0.02, what="drain started")
    env.broker.restart()
    h = env.wait_synced("S01", 90)
    with _hub_db(env) as db:
        assert _case_records(db, "S01") == 300
        assert db.execute("SELECT count(*) FROM cases WHERE site='S01'").fetchone()[0] == 300
        assert db.execute("SELECT count(*) FROM records WHERE site='S01'").fetchone()[0] == h["last_seq"]


def test_live_records_overtake_backlog(env):
    """While a backlog drains, a fresh case reaches the hub before the backlog is through (live
    first). The drain is slowed (10-record batches, 40 records/s: the 200-case backlog takes
    about 5 s), so "before" is seen, not assumed: in backlog-first order the live case could
    only arrive after all 200."""
    _wait_catalog(env, "S01")
    env.agents["S01"].stop()
    env.set_agent("S01", sync={"batch_max_records": 10, "rate_per_s": 40})
    env.start_agent("S01")
    env.broker.stop()
    for _ in range(200):
        assert env.register("S01", "QR-001")[0] == 201
    env.start_broker()
    wait_for(lambda: env.agent_health("S01")["connected"], 30, what="reconnect")
    st, live = env.register("S01", "XK-004")
    assert st == 201
    wait_for(
        lambda: http("GET", f"{env.hub_url}/api/cases/{live['case_no']}", token=env.token)[0] == 200,
        30,
        0.05,
        what="live case at hub",
    )
    at_arrival = env.hub_get("/api/cases?site=S01")["total"]
    assert at_arrival < 201 - 50, f"the live case arrived after {at_arrival - 1} of 200 backlog cases"
    env.wait_synced("S01", 60)
    assert env.hub_get("/api/cases?site=S01")["total"] == 201
