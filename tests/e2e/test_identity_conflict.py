"""Two real boxes with one site identity (a cloned SD card) against the real broker and hub:
the broker keeps one session per identity so they throw each other off, the hub keeps one
history and one alert, and the box whose records the hub does not hold knows it (diverged)
and keeps them unsynced. Nothing is lost: the other box's records are in the hub's quarantine."""

from __future__ import annotations

import shutil
import time

from tests.e2e.harness import Proc, free_port, http, wait_for


def test_a_cloned_box_diverges_keeps_its_records_and_raises_one_alert(env):
    # the clone: S01's folder (keys, certificate, agent.yaml) without its data, run elsewhere
    twin = env.root / "twin" / "S01"
    shutil.copytree(env.root / "sites" / "S01", twin, ignore=shutil.ignore_patterns("data", "*.db*"))
    port = free_port()
    clone = Proc(
        ["agent", "run", "--config", str(twin / "agent.yaml"), "--http-port", str(port)],
        env.root / "logs" / "agent-S01-twin.log",
        f"http://127.0.0.1:{port}/api/health",
    ).start()
    try:
        wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 20, what="catalog at S01")
        wait_for(
            lambda: http("GET", f"http://127.0.0.1:{port}/api/health")[1]["catalog_version"] > 0,
            30,
            what="catalog at the clone",
        )
        token = env.agent_token("S01")
        for _ in range(3):
            assert env.register("S01")[0] == 201
            st, _ = http(
                "POST",
                f"http://127.0.0.1:{port}/api/cases",
                {"item_code": "XK-001", "applicant": {"name": "李四"}},
                token,
            )
            assert st == 201

        def settled():
            a = env.agent_health("S01")
            b = http("GET", f"http://127.0.0.1:{port}/api/health")[1]
            kinds = {x["kind"] for x in env.hub_get("/api/alerts")}
            return (a, b) if any(h["diverged"] for h in (a, b)) and "identity_conflict" in kinds else None

        wait_for(settled, 60, 0.5, what="a box that knows it diverged, and the identity alert")
        time.sleep(3)  # let the two fight a little longer: nothing changes
        hub_acked = next(s["acked_seq"] for s in env.hub_get("/api/sites") if s["code"] == "S01")
        for h in (env.agent_health("S01"), http("GET", f"http://127.0.0.1:{port}/api/health")[1]):
            if h["diverged"]:  # its records are not the hub's: kept, never marked synced
                assert h["acked_seq"] < h["last_seq"]
            else:  # a box that believes it is synced really is the hub's history
                assert h["acked_seq"] == h["last_seq"] == hub_acked
        kinds = [x["kind"] for x in env.hub_get("/api/alerts")]
        assert kinds.count("identity_conflict") == 1 and kinds.count("epoch_changed") <= 1
        assert kinds.count("chain_break") <= 1
        assert env.metrics().get('jiancha_rejected_total{reason="seq_conflict"}', 0) >= 1  # kept, quarantined
    finally:
        clone.stop()
