"""The feed from a real `jiancha hub run` (issue 14, docs/feed.md): a province-less city hub with
a feed identity (no parent: the feed alone turns its outbox on), a real agent, a real Mosquitto.
Red cards reach `jiancha feed tail` once each, in order; the hub restarted between two reads
resends from the durable cursor; /api/health shows the feed; no applicant's name, ID number or
phone in any decrypted byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.feed import add_feed
from tests.e2e.harness import Env, at, wait_for, working_days_ago
from tests.e2e.test_uplink import APPLICANTS, _rows

FEED = "feed-platform"


def _tail(env: Env, *args: str) -> tuple[list[dict], str]:
    cmd = [
        sys.executable,
        "-m",
        "jiancha.cli",
        "feed",
        "tail",
        "--config",
        str(env.root / "feeds" / FEED / "FEED.yaml"),
    ]
    root = str(Path(__file__).resolve().parents[2])
    r = subprocess.run([*cmd, *args], capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": root})
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.decode().splitlines()], r.stderr.decode()


def _late_case(env: Env, who: int) -> str:
    late = working_days_ago(30)
    name, id_no, phone = APPLICANTS[who % 2]
    st, case = env.register(
        "S01", "XK-001", received_at=at(late, 9).isoformat(), applicant={"name": name, "id_no": id_no, "phone": phone}
    )
    assert st == 201, case
    assert env.event("S01", case["case_no"], "accept", at=at(late, 10).isoformat())[0] == 201
    return case["case_no"]


@pytest.mark.e2e
@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_a_running_hub_feeds_its_cards_once_in_order_across_a_restart(tmp_path, engine, request):
    url = request.getfixturevalue("pg_server").create_db("city") if engine == "postgresql" else None
    env = Env(tmp_path / "city", ("S01",), url, region="140700", level="city", name="晋中市政务服务中心")
    env.store_url = url  # (read by tests/e2e/test_uplink.py _rows)
    add_feed(env.root, name="platform", title="山西省一体化政务服务平台")
    try:
        env.start_broker()
        env.start_hub_and_agents("S01")
        wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
        first = _late_case(env, 0)

        def head_with(cases):
            rows = _rows(env, "SELECT seq, case_no, data FROM uplink_log ORDER BY seq")
            reds = {n for _, n, d in rows if b"\xa4card\xa3red" in bytes(d)}
            return rows[-1][0] if rows and set(cases) <= reds else None

        head = wait_for(lambda: head_with([first]), 60, 0.2, what="the red card in the outbox")
        got, err = _tail(env, "--from", "1", "--ack", "--count", str(head), "--idle", "20")
        assert [x["seq"] for x in got] == list(range(1, head + 1)) and err == ""
        reds = [x for x in got if x["kind"] == "card" and x["body"]["card"] == "red"]
        assert [x["body"]["case"]["case_no"] for x in reds] == [first]
        health = wait_for(
            lambda: (f := env.hub_get("/api/health")["feeds"]["feeds"][FEED])["acked"] == head and f,
            20,
            what="the cursor at the hub",
        )
        assert health["acked"] == head

        # the hub restarted; a second case turns red meanwhile; the consumer comes back (no --from):
        env.hub.stop()
        env.start_hub()
        second = _late_case(env, 1)
        head2 = wait_for(lambda: head_with([first, second]), 60, 0.2, what="the second red card")
        more, err = _tail(env, "--ack", "--count", str(head2 - head), "--idle", "20")
        assert [x["seq"] for x in more] == list(range(head + 1, head2 + 1)) and err == ""  # the rest, once
        assert more[0]["prev"] == got[-1]["hash"]  # one chain across the two reads
        reds = [x for x in more if x["kind"] == "card" and x["body"]["card"] == "red"]
        assert [x["body"]["case"]["case_no"] for x in reds] == [second]
        blob = json.dumps(got + more, ensure_ascii=False)
        for name, id_no, phone in APPLICANTS:
            for secret in (name, id_no, phone):
                assert secret not in blob, secret
    finally:
        env.close()
