"""Real browser (Playwright driving Debian's Chromium, tests/pw.py) against real agents, Mosquitto and
hub: a county supervisor opens a case page from its URL (login on the way), opens a 督办 by hand;
a department officer, in a browser of their own, sees the ticket with its reply deadline and
replies in the form; the supervisor accepts the reply; the supervisor is refused another county's
case, as a page and over the API. No JavaScript is needed by these pages; none fails."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from hub.admin import user_add
from tests.e2e.harness import Env, wait_for
from tests.pw import chromium, new_page

SITE_A, SITE_B = "140702-001", "140703-001"  # two counties
PASSWORD = "e2e-password-for-pages-1"


@pytest.fixture
def counties(tmp_path):
    e = Env(tmp_path / "hub", sites=(SITE_A, SITE_B))
    cfg = e.root / "hub.yaml"
    user_add(cfg, "sup-a", "supervisor", "140702", PASSWORD, display_name="李监察")
    user_add(cfg, "market", "department", "市场监督管理局", PASSWORD, display_name="王科长")
    try:
        e.start_broker()
        e.start_hub_and_agents(SITE_A, SITE_B)
        for code in (SITE_A, SITE_B):
            wait_for(lambda: e.agent_health(code)["catalog_version"] > 0, 30, what=f"catalog at {code}")
        yield e
    finally:
        e.close()


async def login(page, base: str, path: str, who: str) -> None:
    """Open `path`; not logged in, the hub sends the browser to its login page and back."""
    await page.goto(base + path)
    assert page.url.startswith(base + "/login?next=")
    await page.fill("input[name=login]", who)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + path)


async def test_case_page_and_supervision_in_the_browser(counties, tmp_path):
    env = counties
    st, case = await asyncio.to_thread(env.register, SITE_A, "XK-001", window="3号窗口")
    assert st == 201
    await asyncio.to_thread(env.event, SITE_A, case["case_no"], "accept", actor="赵六")
    st, other = await asyncio.to_thread(env.register, SITE_B, "XK-001")
    assert st == 201
    for code in (SITE_A, SITE_B):
        await asyncio.to_thread(env.wait_synced, code)
    case_no, other_no = case["case_no"], other["case_no"]
    await asyncio.to_thread(
        wait_for, lambda: env.hub_get(f"/api/cases/{case_no}")["status"] == "accepted", 30, 0.2, "case accepted"
    )
    base = env.hub_url

    async with chromium() as browser:
        sup = await new_page(browser)
        await login(sup, base, f"/cases/{case_no}", "sup-a")
        text = await sup.inner_text("main")
        assert case_no in text and "食品经营许可" in text and "承诺时限" in text and "法定时限" in text
        assert "张*" in text and "13800000000" not in text and "138****0000" in text  # masked for supervisors
        marks = await sup.locator("#timeline tbody td.chain .mark").all_inner_texts()
        assert marks == ["✓", "✓"] and "记录链校验通过" in text
        assert await sup.locator("#timeline tbody tr").count() == 2  # 收件登记, 受理
        await sup.select_option("select[name=level]", "order_explain")
        await sup.fill("textarea[name=reason]", "请说明该件办理进度并限期办结")
        await sup.click("#open-ticket button[type=submit]")
        await sup.wait_for_url(f"**/cases/{case_no}?ok=opened*")
        assert "已发起督办" in await sup.inner_text("main")
        assert "李监察（sup-a）" in await sup.inner_text("#tickets")
        # the ticket's documents (督办通知书, 责令说明理由通知书) are issued by the hub's document worker
        docs = await asyncio.to_thread(
            wait_for,
            lambda: len(d := env.hub_get(f"/api/documents?case_no={case_no}")) == 2 and d,
            60,
            0.3,
            "documents",
        )
        await sup.reload()
        links = sup.locator("#documents a")
        assert await links.count() == 2
        async with sup.expect_download() as got:
            await links.first.click()
        assert (await got.value).suggested_filename == docs[0]["number"] + ".pdf"  # e.g. 监察〔2026〕1号.pdf
        await sup.screenshot(path=str(tmp_path / "case.png"), full_page=True)

        # another county's case: the same 404 page as an unknown one, and the API says 404 too (in a
        # tab of the same session: Chromium logs each 404 it is shown as a console error)
        probe = await sup.context.new_page()
        probe.errors = []
        probe.on("console", lambda m: probe.errors.append(m.text) if m.type == "error" else None)
        resp = await probe.goto(f"{base}/cases/{other_no}")
        assert resp.status == 404 and "不在您的管辖范围内" in await probe.inner_text("main")
        refused = await resp.text()
        assert other_no not in refused
        resp = await probe.goto(f"{base}/cases/{SITE_B}-20991231-9999")
        assert resp.status == 404 and await resp.text() == refused
        api = await probe.evaluate("n => fetch('/api/cases/' + n).then(r => r.status)", other_no)
        assert api == 404
        assert probe.errors and all("404" in e for e in probe.errors)
        await probe.close()

        dept = await new_page(browser)  # a context of its own: its own cookies
        await login(dept, base, "/tickets", "market")
        tickets = env.hub_get(f"/api/tickets?case_no={case_no}")
        (ticket,) = tickets
        art = dept.locator(f"#t{ticket['id']}")
        shown = await art.inner_text()
        assert "责令说明理由" in shown and ticket["reply_due"] in shown and "个工作日" in shown
        assert "请说明该件办理进度并限期办结" in shown
        await art.locator("textarea[name=text]").fill("材料已补齐，预计三个工作日内办结")
        await dept.screenshot(path=str(tmp_path / "tickets.png"), full_page=True)
        await art.locator("button[type=submit]").click()
        await dept.wait_for_url("**/tickets?ok=replied*")
        assert "回复已提交" in await dept.inner_text("main")
        await dept.screenshot(path=str(tmp_path / "tickets-replied.png"), full_page=True)

        await sup.goto(f"{base}/tickets?status=replied")
        art = sup.locator(f"#t{ticket['id']}")
        assert "材料已补齐" in await art.inner_text()
        await art.locator("textarea[name=text]").fill("同意，请按期办结")
        await art.locator("button[value=accept]").click()
        await sup.wait_for_url("**/tickets?ok=accepted*")
        assert "已采纳回复" in await sup.inner_text("main")
        assert sup.errors == [] and dept.errors == []

    done = env.hub_get(f"/api/tickets/{ticket['id']}")
    assert done["status"] == "accepted"
    assert [(e["actor"], e["action"]) for e in done["events"]] == [
        ("李监察（sup-a）", "open"),
        ("王科长（market）", "reply"),
        ("李监察（sup-a）", "accept"),
    ]
    for name in ("case.png", "tickets.png"):
        assert (tmp_path / name).stat().st_size > 20_000
        if os.environ.get("JIANCHA_SCREENS"):  # docs/screens/, on request (docs/testing.md)
            shutil.copy(tmp_path / name, Path(os.environ["JIANCHA_SCREENS"]) / name)
