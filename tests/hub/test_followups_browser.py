"""The 差评回访 page in a real browser (Playwright driving Debian's Chromium, tests/pw.py), on both
store engines: two keypad 差评 arrive through the hub's ingest; the department officer logs in,
records 核实, 整改 and 回访 on one in the forms, and appeals the other; the supervisor, in a
browser of their own, marks it 误评; the site page's rate leaves it out. No page error."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from tests.hub.accounts_helpers import PASSWORD, make_user
from tests.hub.case_helpers import NOW, SITE_A, make_world
from tests.hub.hubapp import close, served
from tests.hub.test_followups import send_vote, vote_body
from tests.pw import chromium, new_page


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    make_user(w[0], "market", "department", "市场监督管理局")
    yield w
    close(w[0])


async def login(page, base: str, who: str) -> None:
    await page.goto(base + "/followups")
    assert page.url.startswith(base + "/login?next=")
    await page.fill("input[name=login]", who)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + "/followups")


async def step(page, fid: int, text: str, after: str) -> None:
    """Fill the step form of follow-up `fid` and wait for the page to come back at `after`."""
    card = page.locator(f"#f{fid}")
    await card.locator("form.step textarea").fill(text)
    await card.locator("form.step button[type=submit]").click()
    await page.wait_for_url(f"**/followups?status=all&ok=*#f{fid}")
    assert await page.locator(f"#f{fid}").get_attribute("data-step") == after


async def test_department_steps_an_appeal_and_a_misuse_mark_in_the_browser(world, tmp_path):
    hub, a, case, _ = world
    at = NOW - timedelta(hours=1)
    send_vote(a, vote_body(4, case, at), at)
    send_vote(a, vote_body(5, case, at + timedelta(minutes=3)), at + timedelta(minutes=3))
    async with served(hub) as (base, _app), chromium() as browser:
        dept = await new_page(browser)
        await login(dept, base, "market")
        text = await dept.inner_text("main")
        assert "评价器「不满意」" in text and "评价器「非常不满意」" in text and "待核实" in text
        await dept.screenshot(path=str(tmp_path / "followups-department.png"), full_page=True)
        await step(dept, 1, "调取录像核实：窗口人员答复不够耐心", "rectify")
        assert "核实情况已记录" in await dept.inner_text("main")
        await step(dept, 1, "已对窗口人员批评教育，组织服务礼仪培训", "callback")
        await step(dept, 1, "电话回访评价人，对整改表示满意", "done")
        card = await dept.inner_text("#f1")
        assert "已办结" in card and "核实：调取录像核实" in card and "回访：电话回访评价人" in card
        await dept.locator("#f2 details summary").click()
        await dept.locator("#f2 form.appeal textarea").fill("评价人当场表示误按按键")
        await dept.locator("#f2 form.appeal button").click()
        await dept.wait_for_url("**/followups?status=all&ok=appeal#f2")
        assert await dept.locator("#f2").get_attribute("data-step") == "appealed"
        assert "申诉复核中" in await dept.inner_text("#f2")

        sup = await new_page(browser)
        await login(sup, base, "sup")
        assert await sup.locator("#f1 form").count() == 0  # a supervisor takes no department step
        await sup.locator("#f2 form.decide textarea").fill("经查看录像，评价人确系误按")
        await sup.click("#f2 form.decide button:has-text('认定误评')")
        await sup.wait_for_url("**/followups?status=all&ok=misuse#f2")
        await sup.goto(base + "/followups?status=all")
        card = await sup.inner_text("#f2")
        assert "误评·不计入满意率" in card and "经查看录像，评价人确系误按" in card and "已认定无效评价" in card
        shot = tmp_path / "followups.png"
        await sup.screenshot(path=str(shot), full_page=True)
        if os.environ.get("JIANCHA_SCREENS"):  # docs/screens/, on request (docs/testing.md)
            shutil.copy(shot, Path(os.environ["JIANCHA_SCREENS"]) / "followups.png")
        day = NOW.date().isoformat()
        resp = await sup.request.get(f"{base}/api/sites/{SITE_A}/votes?from={day}&to={day}")
        votes = await resp.json()
        assert (votes["total"]["total"], votes["total"]["bad"], votes["marked"]) == (1, 1, 1)
        await sup.goto(f"{base}/site?code={SITE_A}")  # the site page says what it left out
        await sup.wait_for_selector("#votes-note:has-text('有效评价')")
        await sup.fill("#from", day)
        await sup.fill("#to", day)
        await sup.click("#period button[type=submit]")
        await sup.wait_for_selector(f"#votes-note:has-text('{day} 至 {day}')")
        note = await sup.inner_text("#votes-note")
        assert "有效评价 1 条" in note and "认定误评或恶意差评 1 条" in note, note
        assert await sup.inner_text("#satisfaction") == "0.0%"  # the one counted vote is a 差评
        assert dept.errors == [] and sup.errors == []
