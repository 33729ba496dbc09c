"""End to end, on both store engines: a citizen presses 非常不满意 on a real agent's keypad (fake
GPIO, the box's own HTTP press) after 办结; the vote travels over Mosquitto to a real hub process,
which opens one follow-up for the case's department with the limit from its hub.yaml."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Env, http, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path, store_url):
    e = Env(tmp_path / "hub", sites=("S01",), store_url=store_url if store_url.startswith("postgresql") else None)
    e.configure_hub(ratings={"default_days": 5})
    e.set_agent("S01", devices={"mode": "fake", "refresh_s": 0.5})
    try:
        e.start_broker()
        e.start_hub_and_agents("S01")
        wait_for(lambda: e.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
        yield e
    finally:
        e.close()


def test_a_very_dissatisfied_press_on_a_real_box_opens_one_followup_at_the_hub(env):
    st, case = env.register("S01", "XK-004", window="1", clerk="李四")
    assert st == 201
    case_no = case["case_no"]
    assert env.event("S01", case_no, "accept")[0] == 201
    assert env.event("S01", case_no, "complete")[0] == 201  # arms window 1's keypad for this case
    url = f"{env.agent_url('S01')}/api/devices/keypads/1/press"
    assert http("POST", url, {"key": "very_dissatisfied"}, env.agent_token("S01"))[0] == 201
    env.wait_synced("S01")
    got = wait_for(lambda: (b := env.hub_get("/api/followups?status=all"))["total"] >= 1 and b, 30, 0.2, "follow-up")
    (f,) = got["followups"]
    dept = env.hub_get(f"/api/cases/{case_no}")["department"]
    assert (f["case_no"], f["department"], f["level_name"], f["channel"]) == (case_no, dept, "非常不满意", "keypad")
    assert (f["step"], f["limit_days"], f["staff"]) == ("verify", 5, "李四")
    assert env.hub_get("/api/followups?status=all")["total"] == 1
