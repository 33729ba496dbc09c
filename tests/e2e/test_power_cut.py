"""Durable before acknowledged (issue 15): a real loss of unsynced writes.

The agent (and the hub) run under the power-cut shim (tests/powercut): after a SIGKILL, every
file in their data folder is put back to what it held at its last fsync, as a disk would after
the power failed. Every case the agent answered 201 for, and every record the hub acknowledged
to a box, must still be there after the cut and the restart. With `synchronous=OFF` (or
NORMAL) the same tests fail: tests/powercut/test_shim.py shows the shim loses those writes.

The hub's half runs on SQLite only: the shim follows the files of one process, and on
PostgreSQL durability is the server's own (fsync, synchronous_commit, which the hub leaves at
their defaults)."""

from __future__ import annotations

import sqlite3
import threading
import urllib.error

import pytest

from tests.e2e.harness import Env, http, wait_for
from tests.powercut import PowerCut, build_shim


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    return build_shim(tmp_path_factory.mktemp("powercut"))


@pytest.fixture
def site_env(tmp_path):
    e = Env(tmp_path / "hub", sites=("S01",))
    try:
        e.start_broker()
        yield e
    finally:
        e.close()


def _register_until_cut(env: Env, code: str, enough: int) -> tuple[list[str], threading.Thread]:
    """Register cases (each with an accept event) back to back in a thread; returns the case
    numbers the agent acknowledged (201) so far, growing until the agent dies."""
    acked: list[str] = []

    def run():
        while True:
            try:
                st, case = env.register(code, "XK-001")
                if st != 201:
                    return
                acked.append(case["case_no"])
                st, _ = env.event(code, case["case_no"], "accept")
                if st != 201:
                    return
                acked.append(f"{case['case_no']}#accept")
            except (OSError, urllib.error.URLError):
                return  # the agent is gone: nothing more was acknowledged

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_for(lambda: len(acked) >= enough, 60, what=f"{enough} acknowledged writes")
    return acked, t


def test_every_case_the_agent_acknowledged_survives_a_power_cut(site_env, shim):
    env = site_env
    env.start_hub_and_agents("S01")
    wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
    env.agents["S01"].stop()
    env.hub.stop()  # offline, as a box often is: nothing the hub holds can mend a loss

    cut = PowerCut(shim, env.root / "sites" / "S01" / "data")
    try:
        env.start_agent("S01", env=cut.env())
        acked, writer = _register_until_cut(env, "S01", enough=40)
        env.agents["S01"].kill()  # mid-stream: requests may be in flight
        writer.join(10)
        lost = cut.cut()
        assert lost, "the shim reverted nothing: it did not see the agent's writes"
    finally:
        cut.close()

    env.start_agent("S01")  # after the cut, without the shim
    cases = [a for a in acked if "#" not in a]
    accepted = {a.split("#")[0] for a in acked if a.endswith("#accept")}
    missing = []
    for case_no in cases:
        st, body = http("GET", f"{env.agent_url('S01')}/api/cases/{case_no}", token=env.agent_token("S01"))
        if st != 200:
            missing.append(case_no)
        elif case_no in accepted and "accept" not in {e["type"] for e in body["events"]}:
            missing.append(f"{case_no}#accept")
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost by the cut: {missing[:5]}"

    # the surviving log is whole: the hub takes it all, chain and seq unbroken
    env.start_hub()
    health = env.wait_synced("S01")
    assert health["last_seq"] >= len(acked)
    wait_for(lambda: env.hub_get("/api/cases?site=S01")["total"] >= len(cases), 30, what="the cases at the hub")
    rejected = {k: v for k, v in env.metrics().items() if k.startswith("jiancha_rejected_total")}
    assert not any(rejected.values()), rejected


def _hub_records(db, site: str) -> set[int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {seq for (seq,) in conn.execute("SELECT seq FROM records WHERE site = ?", (site,))}
    finally:
        conn.close()


def test_every_record_the_hub_acknowledged_survives_a_power_cut_of_the_hub(site_env, shim):
    env = site_env
    cut = PowerCut(shim, env.root / "data")
    try:
        env.start_hub(env=cut.env())
        env.start_agent("S01")
        wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
        acked, writer = _register_until_cut(env, "S01", enough=40)
        # the hub's acks reach the box while it ingests; cut the hub's power mid-stream
        wait_for(lambda: env.agent_health("S01")["acked_seq"] >= 30, 60, what="30 records acked by the hub")
        env.hub.kill()
        env.agents["S01"].kill()  # the box must not resend before we look: an ack is a promise
        writer.join(10)
        lost = cut.cut()
        assert lost, "the shim reverted nothing: it did not see the hub's writes"
    finally:
        cut.close()

    acked_seq = _agent_acked_seq(env, "S01")
    stored = _hub_records(env.root / "data" / "hub.db", "S01")
    missing = sorted(set(range(1, acked_seq + 1)) - stored)
    assert acked_seq >= 30
    assert not missing, f"the hub acknowledged up to seq {acked_seq} but lost {len(missing)}: {missing[:10]}"

    env.start_hub()  # and it starts on what the disk held
    env.start_agent("S01")
    env.wait_synced("S01")
    # a case in flight at the cut may have been stored by the box without its 201 reaching us
    assert env.hub_get("/api/cases?site=S01")["total"] >= len([a for a in acked if "#" not in a])


def _agent_acked_seq(env: Env, code: str) -> int:
    """The highest seq the hub acknowledged, as the (stopped) box durably recorded it."""
    db = env.root / "sites" / code / "data" / "agent.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'acked_seq'").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()
