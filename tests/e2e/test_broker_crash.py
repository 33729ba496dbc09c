"""The broker crashes (SIGKILL, not a graceful stop: no persistence saved, in-flight messages
lost) while a box drains its backlog: after Mosquitto is back, every case arrives, once."""

from __future__ import annotations

import sqlite3

from tests.e2e.harness import wait_for

N = 240


def _hub_seqs(env, site: str) -> list[int]:
    with sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT seq FROM records WHERE site=? ORDER BY seq", (site,))]


def test_broker_killed_mid_drain_loses_and_doubles_nothing(env):
    wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
    env.agents["S01"].stop()
    env.set_agent("S01", sync={"batch_max_records": 10, "rate_per_s": 60})  # a drain of ~4 s
    env.start_agent("S01")
    env.wait_synced("S01")
    before = env.hub_get("/api/cases?site=S01")["total"]
    env.broker.stop()
    made = []
    for _ in range(N):
        st, case = env.register("S01", "QR-001")
        assert st == 201, case
        made.append(case["case_no"])
    env.start_broker()
    # mid-drain: some of the backlog is at the hub, most is not
    wait_for(lambda: env.hub_get("/api/cases?site=S01")["total"] - before >= 20, 30, 0.05, what="drain started")
    at_kill = env.hub_get("/api/cases?site=S01")["total"] - before
    env.broker.kill()
    assert at_kill < N - 40, f"the drain was nearly over ({at_kill} of {N}) before the broker was killed"
    env.start_broker()
    health = env.wait_synced("S01", 120)
    wait_for(lambda: env.hub_get("/api/cases?site=S01")["total"] - before == N, 30, what=f"{N} cases at the hub")
    seqs = _hub_seqs(env, "S01")
    assert seqs == list(range(1, health["last_seq"] + 1))  # every record, each once, no gap
    for case_no in made[:: N // 12] + made[-1:]:
        assert env.hub_get(f"/api/cases/{case_no}")["case_no"] == case_no
