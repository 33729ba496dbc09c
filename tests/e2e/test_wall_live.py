"""The live wall in a real browser (Playwright + Debian's Chromium) against a real hub, real
agents and Mosquitto: an operator logs in; a case a township box registers appears on the wall
without a reload; the site page shows the site's name, its health and votes in Chinese.

With JIANCHA_SCREENS=DIR the two screenshots are also written there (docs/screens/)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from hub.admin import import_directory
from tests.e2e.harness import at, http, wait_for, working_days_ago
from tests.pw import chromium, new_page

HEADS = """departments:
  - name: 住房和城乡建设局
    head: {name: 王建国, phone: "13800138000"}
"""
VIEWER_PASSWORD = "viewer-password-1234"
APPEAR_S = 10.0  # generous on a loaded test machine; bench/wall.py measures the real delay


def _press(env, window: str, key: str):
    url = f"{env.agent_url('S01')}/api/devices/keypads/{window}/press"
    return http("POST", url, {"key": key}, env.agent_token("S01"))


def _prepare(env) -> dict:
    """S01 with fake devices (heartbeats, a keypad); a long-late back-entered case; a completed
    case with a vote. Returns the case numbers once the hub has judged the late one red."""
    env.agents["S01"].stop()
    env.set_agent("S01", devices={"mode": "fake", "refresh_s": 0.5, "heartbeat_s": 5})
    env.start_agent("S01")
    wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
    people = env.root / "directory.yaml"  # the departments' heads (负责人) come from the 通讯录
    people.write_text(HEADS, encoding="utf-8")
    import_directory(env.root / "hub.yaml", people)
    late_at = at(working_days_ago(30), 9).isoformat()
    st, late = env.register("S01", "XK-003", received_at=late_at, window="3", clerk="赵六")
    assert st == 201
    assert env.event("S01", late["case_no"], "accept", at=late_at)[0] == 201
    st, done = env.register("S01", "XK-004", window="1", clerk="李四")
    assert st == 201
    assert env.event("S01", done["case_no"], "accept")[0] == 201
    assert env.event("S01", done["case_no"], "complete")[0] == 201  # arms window 1's keypad
    assert _press(env, "1", "very_satisfied")[0] == 201
    env.wait_synced("S01")
    wait_for(lambda: env.hub_get(f"/api/cases/{late['case_no']}")["light"] == "red", 60, 0.2, "late case red")
    wait_for(lambda: env.hub_get("/api/sites/S01")["heartbeat"] is not None, 30, 0.2, "a heartbeat")
    return {"late": late["case_no"], "done": done["case_no"]}


async def test_the_wall_shows_a_new_case_without_reload_and_the_site_page_speaks_chinese(env, tmp_path):
    cases = await asyncio.to_thread(_prepare, env)
    async with chromium() as browser:
        page = await new_page(browser)
        await page.goto(f"{env.hub_url}/")
        await page.wait_for_url("**/login")
        await page.fill("input[name=login]", env.login)
        await page.fill("input[name=password]", env.password)
        await page.click("button[type=submit]")
        await page.wait_for_selector(f"#late tr[data-case='{cases['late']}'][data-light='red']")
        late_row = await page.inner_text(f"#late tr[data-case='{cases['late']}']")
        assert "S01便民服务中心" in late_row and "3号窗口" in late_row and "赵六" in late_row
        assert "超期" in late_row and "工作日" in late_row and "逾期未办结" in late_row and "王建国" in late_row
        await page.wait_for_selector("#live.on")  # the event stream is open
        await page.evaluate("window.__sameWall = 'marker'")  # survives only if the page is never reloaded

        t0 = time.monotonic()
        st, fresh = await asyncio.to_thread(env.register, "S02", "XK-001", window="2", clerk="王五")
        assert st == 201
        await page.wait_for_selector(f"#cases tr[data-case='{fresh['case_no']}']", timeout=APPEAR_S * 1000)
        appeared_s = time.monotonic() - t0
        assert await page.evaluate("window.__sameWall") == "marker"
        assert appeared_s < APPEAR_S
        sites = await page.inner_text("#sites")
        assert "S02便民服务中心" in sites and "在线" in sites
        await page.screenshot(path=str(tmp_path / "wall.png"))

        await page.click("#sites a[href='/site?code=S01']")
        await page.wait_for_selector("#by-window tbody tr td.num")
        assert await page.inner_text("#title") == "S01便民服务中心"
        health = await page.inner_text("#health")
        assert "在线" in health and "时钟" in health and "最近心跳" in health
        assert "时钟NTP 同步" in health or "时钟按中心校时" in health  # the label, never the code (ntp, hub)
        assert "unknown" not in health and "None" not in health
        assert "评价器" in await page.inner_text("#devices")
        assert "1号窗口" in await page.inner_text("#by-window")
        assert "李四" in await page.inner_text("#by-staff")
        assert await page.inner_text("#satisfaction") == "100.0%"
        await page.screenshot(path=str(tmp_path / "site.png"))
        assert page.errors == []

        # a viewer (read-only wall): the same wall, site names without links to the site page
        st, _ = await asyncio.to_thread(
            http,
            "POST",
            f"{env.hub_url}/api/users",
            {"login": "viewer1", "role": "viewer", "password": VIEWER_PASSWORD},
            env.token,
        )
        assert st == 201, st
        viewer = await new_page(browser)
        await viewer.goto(f"{env.hub_url}/login")
        await viewer.fill("input[name=login]", "viewer1")
        await viewer.fill("input[name=password]", VIEWER_PASSWORD)
        await viewer.click("button[type=submit]")
        await viewer.wait_for_selector(f"#late tr[data-case='{cases['late']}']")
        await viewer.wait_for_selector("#sites tr[data-site='S01']")
        assert await viewer.locator("#sites a").count() == 0
        assert "S01便民服务中心" in await viewer.inner_text("#sites")
        assert viewer.errors == []
    screens = os.environ.get("JIANCHA_SCREENS")
    if screens:
        for name in ("wall.png", "site.png"):
            shutil.copy(tmp_path / name, Path(screens) / name)
    assert (tmp_path / "wall.png").stat().st_size > 10_000
