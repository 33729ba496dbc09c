"""Complaint and 差评 tickets in a real browser (Playwright + Debian's Chromium, tests/pw.py), on
both store engines: a supervisor assigns a follow-up that has no department on /followups; the
clock moves past the limits and the sweep opens a 督办 on a complaint and on the follow-up; on
/tickets each links to its subject; the department replies to the complaint's, the supervisor
rejects it with a reason and the next rung (责令说明理由) opens with that reason; the wall lists
the late follow-up. Screenshots of /followups, /tickets and the wall. No page error."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub import complaints as cp
from protocol.calendar import CST
from tests.hub.accounts_helpers import PASSWORD
from tests.hub.case_helpers import DEPT, NOW, SITE_A, make_world
from tests.hub.hubapp import close, served
from tests.hub.test_followups import send_vote, vote_body
from tests.pw import chromium, new_page

LATE = datetime(2026, 10, 29, 10, 0, tzinfo=CST)  # complaint assigned Wed 14 Oct: reply due Wed 28 Oct


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    yield w
    close(w[0])


async def login(page, base: str, who: str, path: str) -> None:
    await page.goto(base + path)
    await page.fill("input[name=login]", who)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + path)


def shoot(tmp_path: Path, page_shot: Path, name: str) -> None:
    if os.environ.get("JIANCHA_SCREENS"):  # docs/screens/, on request (docs/testing.md)
        shutil.copy(page_shot, Path(os.environ["JIANCHA_SCREENS"]) / name)


async def test_complaint_and_followup_tickets_in_the_browser(world, tmp_path):
    hub, a, _case, _ = world
    at = NOW - timedelta(minutes=5)
    send_vote(a, vote_body(5, None, at, window="7", staff="钱七", dept=None), at)  # nobody's 差评
    cfg, cal = hub.cfg.complaints, hub.ingest.calendar
    values, errors = cp.clean({"about_kind": "window", "about": "3号窗口", "text": "窗口人员态度生硬",
                               "contact_name": "王五", "contact_phone": "13912345678"})  # fmt: skip
    assert not errors

    def file(c):
        no, _ = cp.file_complaint(c, values, cfg, cal, NOW)
        cp.act(c, no, "accept", "sup", "", cfg, cal, NOW)
        cp.act(c, no, "assign", "sup", "", cfg, cal, NOW, department=DEPT)
        return no

    no = hub.write(file)
    async with served(hub) as (base, _app), chromium() as browser:
        sup = await new_page(browser)
        await login(sup, base, "sup", "/followups")
        card = sup.locator("#f1")
        assert "未确定（请监察人员分派）" in await card.inner_text()
        shot = tmp_path / "followups-unassigned.png"
        await sup.screenshot(path=str(shot), full_page=True)
        shoot(tmp_path, shot, "followups-unassigned.png")
        await card.locator("form.assign input[name=department]").fill(DEPT)
        await card.locator("form.assign textarea").fill("7号窗口为市场监管窗口")
        await card.locator("form.assign button").click()
        await sup.wait_for_url("**/followups?status=all&ok=assign#f1")
        text = await sup.inner_text("#f1")
        assert f"部门\n{DEPT}" in text or f"部门\t{DEPT}" in text or DEPT in text
        assert f"分派承办部门：分派至{DEPT}：7号窗口为市场监管窗口" in text
        assert await sup.locator("#f1 form.assign").count() == 0  # assigned: no second form
        shot = tmp_path / "followups-assign.png"
        await sup.screenshot(path=str(shot), full_page=True)
        shoot(tmp_path, shot, "followups-assign.png")

        hub.ingest.now = lambda: LATE  # the follow-up (due 23 Oct) and the complaint (28 Oct) are late
        hub.ingest.sweep()
        await sup.goto(base + "/tickets")
        complaint_t = sup.locator("article.ticket:has(dd[data-subject=complaint])")
        followup_t = sup.locator("article.ticket:has(dd[data-subject=followup])")
        assert await complaint_t.count() == 1 and await followup_t.count() == 1
        assert await complaint_t.locator("dd[data-subject] a").get_attribute("href") == f"/complaints#c{no}"
        assert await followup_t.locator("dd[data-subject] a").get_attribute("href") == "/followups#f1"
        assert f"投诉{no}逾期未答复（答复期限 2026-10-28）" in await complaint_t.inner_text()
        assert "差评回访件 #1 逾期未办结（期限 2026-10-23）" in await followup_t.inner_text()
        shot = tmp_path / "tickets-subjects.png"
        await sup.screenshot(path=str(shot), full_page=True)
        shoot(tmp_path, shot, "tickets-subjects.png")

        tid = int(await complaint_t.get_attribute("data-ticket"))
        dept = await new_page(browser)
        await login(dept, base, "dept", "/tickets")
        mine = dept.locator(f"#t{tid}")
        await mine.locator("form.reply textarea").fill("已向投诉人说明并致歉")
        await mine.locator("form.reply button").click()
        await dept.wait_for_url(f"**/tickets?ok=replied#t{tid}")

        await sup.goto(base + "/tickets")
        await sup.locator(f"#t{tid} form.review textarea").fill("答复未说明逾期原因")
        await sup.locator(f"#t{tid} form.review button[value=reject]").click()
        await sup.wait_for_load_state()
        await sup.goto(base + "/tickets")
        assert await sup.locator(f"#t{tid}").get_attribute("data-status") == "escalated"
        nxt = sup.locator("article.ticket[data-status=open]:has(dd[data-subject=complaint])")
        assert await nxt.count() == 1
        body = await nxt.inner_text()
        assert "责令说明理由" in body and "对督办通知的回复不予采纳：答复未说明逾期原因" in body

        await sup.goto(base + "/")
        await sup.wait_for_selector("#late-followups tr[data-followup='1']")
        row = await sup.inner_text("#late-followups tr[data-followup='1']")
        assert "评价器「非常不满意」" in row and "差评回访逾期未办结" in row and DEPT in row
        assert "超期 4 个工作日" in row  # 23 Oct → 26, 27, 28, 29 Oct
        shot = tmp_path / "wall-followups.png"
        await sup.screenshot(path=str(shot), full_page=True)
        shoot(tmp_path, shot, "wall-followups.png")

        # the site page: keypad and portal apart, with the total (one keypad 差评 above, and one
        # portal 满意 added here for the same day)
        def portal(c):
            c.execute(
                'INSERT INTO votes (site, seq, case_no, "window", staff, department, key, level, level_name, '
                "mapping_version, misuse, pressed_ms, channel) VALUES (?, -1, NULL, '7', '钱七', ?, 'portal', 2, "
                "'满意', 'portal', NULL, ?, 'portal')",
                (SITE_A, DEPT, int(at.timestamp() * 1000)),
            )

        hub.write(portal)
        day = NOW.date().isoformat()
        await sup.goto(f"{base}/site?code={SITE_A}")
        await sup.wait_for_selector("#votes-note:has-text('有效评价')")
        await sup.fill("#from", day)
        await sup.fill("#to", day)
        await sup.click("#period button[type=submit]")
        await sup.wait_for_selector(f"#votes-note:has-text('{day} 至 {day}')")
        rows = [await sup.inner_text(f"#by-channel tr[data-channel={c}]") for c in ("keypad", "portal", "all")]
        cells = [r.split("\t") for r in rows]
        assert cells[0] == ["评价器", "0", "0", "0", "0", "1", "1", "0.0%"]
        assert cells[1] == ["网上评价", "0", "1", "0", "0", "0", "1", "100.0%"]
        assert cells[2] == ["合计", "0", "1", "0", "0", "1", "2", "50.0%"]
        shot = tmp_path / "site-votes-channels.png"
        await sup.screenshot(path=str(shot), full_page=True)
        shoot(tmp_path, shot, "site-votes-channels.png")
        assert sup.errors == [] and dept.errors == []
