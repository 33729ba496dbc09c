"""A citizen on a phone (390×844, Playwright driving Debian's Chromium, tests/pw.py) against a real
agent, Mosquitto and hub: searches the guides by pinyin initials, opens the item and its form,
looks up a case the clerk finished with a wrong then the right query code, and rates it once.
The portal's pages need no JavaScript; no console error occurs."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import Env, wait_for
from tests.pw import chromium, new_page

SITE = "140702-001"
SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"


@pytest.fixture
def hall(tmp_path):
    e = Env(tmp_path / "hub", sites=(SITE,))
    try:
        e.start_broker()
        e.start_hub_and_agents(SITE)
        wait_for(lambda: e.agent_health(SITE)["catalog_version"] > 0, 60, what=f"catalog at {SITE}")
        yield e
    finally:
        e.close()


async def test_citizen_finds_a_guide_looks_up_and_rates_a_case_on_a_phone(hall, tmp_path):
    env = hall
    st, case = await asyncio.to_thread(env.register, SITE, "XK-001", window="3号窗口")
    assert st == 201, case
    for step in ("accept", "complete"):
        assert (await asyncio.to_thread(env.event, SITE, case["case_no"], step))[0] == 201
    await asyncio.to_thread(env.wait_synced, SITE, 90)
    await asyncio.to_thread(
        wait_for,
        lambda: env.hub_get(f"/api/cases/{case['case_no']}")["status"] == "completed",
        60,
        0.3,
        "the finished case at the hub",
    )
    base, case_no = env.hub_url, case["case_no"]

    async with chromium() as browser:
        page = await new_page(browser, width=390, height=844, mobile=True)
        await page.goto(base + "/public")
        await page.fill("#q", "spjy")
        await page.click("#guide button[type=submit]")
        await page.wait_for_selector("#items a")
        assert await page.inner_text("#items") == "食品经营许可\n市场监督管理局"
        await page.click("#items a")
        await page.wait_for_url(base + "/public/items/XK-001")
        text = await page.inner_text("#item")
        for shown in ("受理条件", "在本市从事食品", "申请材料", "办理流程", "承诺时限", "10 个工作日", "监督电话"):
            assert shown in text, shown
        href = await page.get_attribute("#item .materials a", "href")
        form = await page.request.get(base + href)
        assert form.status == 200 and (await form.body()).startswith(b"%PDF")
        await page.screenshot(path=tmp_path / "portal-item.png", full_page=True)

        await page.goto(base + "/public")
        await page.fill("#case_no", case_no)
        await page.fill("#code", "00000000" if case["query_code"] != "00000000" else "11111111")
        await page.click("#f button")
        await page.wait_for_selector("#result .flash.bad")
        assert "未找到该办件" in await page.inner_text("#result")
        await page.fill("#code", case["query_code"])
        await page.click("#f button")
        await page.wait_for_selector("#rate")
        shown = await page.inner_text("#result")
        assert "当前状态" in shown and "已办结" in shown and "收件" in shown and "食品经营许可" in shown
        assert "张三" not in shown and "13800000000" not in shown
        await page.check("#rate input[name=level][value='2']")
        await page.fill("#rate textarea", "窗口服务很耐心")
        await page.screenshot(path=tmp_path / "portal.png", full_page=True)
        await page.click("#rate button[type=submit]")
        await page.wait_for_selector(".flash.ok")
        result = await page.inner_text("#result")
        assert "网上评价" in result and "满意：窗口服务很耐心" in result
        assert await page.query_selector("#rate") is None  # rated once
        assert page.errors == []

    votes = env.hub_get(f"/api/cases/{case_no}")["votes"]
    assert [(v["channel"], v["level_name"], v["comment"]) for v in votes] == [("portal", "满意", "窗口服务很耐心")]
    SCREENS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "portal.png", SCREENS / "portal.png")
