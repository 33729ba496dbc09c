"""Devices end to end: the clerk's 办结 arms the window keypad, the citizen's press becomes a
vote linked to the case at the hub (misuse flagged, kept); the hub pushes a text to a sign."""

from __future__ import annotations

import time

from tests.e2e.harness import http, wait_for


def _press(env, window, key):
    return http(
        "POST", f"{env.agent_url('S01')}/api/devices/keypads/{window}/press", {"key": key}, env.agent_token("S01")
    )


def test_vote_after_completion_reaches_the_case_at_the_hub(env):
    env.agents["S01"].stop()
    env.set_agent("S01", devices={"mode": "fake", "refresh_s": 0.5})
    env.start_agent("S01")
    wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 20)
    assert env.agent_health("S01")["devices"]["keypad-1"] == "ok"
    st, case = env.register("S01", "XK-004", window="1", clerk="李四")
    assert st == 201
    assert _press(env, "1", "very_satisfied")[0] == 201  # before 办结: disarmed → misuse
    assert env.event("S01", case["case_no"], "accept")[0] == 201
    assert env.event("S01", case["case_no"], "complete")[0] == 201  # arms window 1 for this case
    assert _press(env, "1", "satisfied")[0] == 201
    time.sleep(0.1)
    assert _press(env, "1", "very_dissatisfied")[0] == 201  # second press: repeat → misuse
    assert _press(env, "2", "satisfied")[0] == 201  # window 2 not armed
    assert _press(env, "1", "no_such_key")[0] == 422
    env.wait_synced("S01")
    votes = wait_for(lambda: len(v := env.hub_get(f"/api/cases/{case['case_no']}")["votes"]) >= 1 and v, 20)
    assert votes[0]["level_name"] == "满意" and votes[0]["misuse"] is None and votes[0]["staff"] == "李四"
    assert [v["misuse"] for v in votes[1:]] == ["repeat"]
    site = wait_for(lambda: (d := env.hub_get("/api/sites/S01"))["votes_misuse"] >= 3 and d, 20)
    assert site["votes"] == [{"level": 2, "level_name": "满意", "n": 1}]


def test_hub_pushes_text_to_a_sign(env):
    env.agents["S01"].stop()
    env.set_agent("S01", devices={"mode": "fake", "refresh_s": 0.5})
    wait_for(
        lambda: http("POST", f"{env.hub_url}/api/sites/S01/sign", {"window": "1", "text": "x"}, env.token)[0] == 409,
        10,
        what="offline site refuses commands",
    )
    env.start_agent("S01")
    wait_for(lambda: env.agent_health("S01")["hub_online"], 20, what="agent connected")
    wait_for(lambda: any(s["code"] == "S01" and s["online"] for s in env.hub_get("/api/sites")), 20)
    st, _ = http("POST", f"{env.hub_url}/api/sites/S01/sign", {"window": "1", "text": "系统维护，暂停受理"}, env.token)
    assert st == 202
    assert http("POST", f"{env.hub_url}/api/sites/S01/sign", {"window": "1"}, env.token)[0] == 422
    assert http("POST", f"{env.hub_url}/api/sites/NOPE/sign", {"window": "1", "text": "x"}, env.token)[0] == 404
    # the box reports the text its sign shows (and that the sign is fine)
    wait_for(
        lambda: env.agent_health("S01")["devices"].get("sign-notice-1") == "系统维护，暂停受理",
        10,
        what="notice on the sign",
    )
    assert env.agent_health("S01")["devices"]["sign"] == "ok"


def test_agent_under_systemd_notify_and_heartbeats_reach_the_hub(env, tmp_path):
    """Type=notify: READY=1 once serving, WATCHDOG=1 pings while healthy; heartbeat records
    (health readings, device states) arrive at the hub's site page."""
    import socket

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    try:
        env.agents["S01"].stop()
        env.set_agent("S01", devices={"mode": "fake", "heartbeat_s": 5})
        env.start_agent("S01", env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
        got = []
        while not (any("READY=1" in m for m in got) and sum("WATCHDOG=1" in m for m in got) >= 2):
            got.append(sock.recv(4096).decode())
        assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in got)
    finally:
        sock.close()
    site = wait_for(lambda: (d := env.hub_get("/api/sites/S01"))["heartbeat"] and d, 20, what="heartbeat at hub")
    hb = site["heartbeat"]
    assert hb["disk_free_kb"] > 0 and hb["mem_total_kb"] > 0 and hb["clock"] == "ntp"
    assert hb["devices"]["keypad-1"] == "ok"
    # what window 1's sign shows, drawn at the hub for the site page
    wait_for(
        lambda: "sign-lines-1" in env.hub_get("/api/sites/S01")["heartbeat"]["devices"],
        20,
        what="sign content in a heartbeat",
    )
    import urllib.request

    req = urllib.request.Request(
        f"{env.hub_url}/api/sites/S01/signs/1.png", headers={"Authorization": f"Bearer {env.token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        png = r.read()
    assert png.startswith(b"\x89PNG") and len(png) > 500


def test_unattended_window_with_snapshot_reaches_the_hub(env):
    """A (fake) camera sees the clerk leave window 1: window_unattended with a JPEG snapshot
    reaches the hub's site page; window_attended follows when the clerk is back."""
    env.agents["S01"].stop()
    env.set_agent(
        "S01",
        devices={
            "mode": "fake",
            "fake_visits": [[0, 2], [9, 30]],
            "fake_absent_s": 3,
            "cameras": {"office_hours": {"periods": ["00:00-23:59"], "working_days_only": False}},
        },
    )
    env.start_agent("S01")

    def events():
        evs = env.hub_get("/api/sites/S01")["device_events"]
        kinds = {e["event"] for e in evs if e["window"] == "1"}
        return evs if {"window_unattended", "window_attended"} <= kinds else None

    evs = wait_for(events, 60, 0.5, what="unattended and attended events at the hub")
    un = next(e for e in evs if e["event"] == "window_unattended" and e["window"] == "1")
    assert un["device"] == "win1" and un["detail"]["unattended_s"] >= 3 and un["snapshot"]
    import urllib.request

    req = urllib.request.Request(f"{env.hub_url}{un['snapshot']}", headers={"Authorization": f"Bearer {env.token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        jpeg = r.read()
    assert r.headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8" and len(jpeg) <= 48 * 1024
    assert env.agent_health("S01")["devices"]["camera-win1"] == "ok"
