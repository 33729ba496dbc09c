"""投诉 in a real browser (Playwright driving Debian's Chromium, tests/pw.py) against a real hub app
and store (a case fed as signed records): a citizen files a complaint on a phone-sized screen
and gets its number and code; the supervisor accepts and assigns it; the department replies; the
citizen reopens with their words; the department replies again; the citizen confirms. A second
complaint left unanswered past its limit turns red and opens a 督办 ticket — time is moved by
giving the hub's sweep a later `now`, not by waiting. No page logs an error."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from hub.config import Complaints
from tests.calendar_reference import is_working_day
from tests.hub.accounts_helpers import PASSWORD
from tests.hub.case_helpers import DEPT, NOW, make_world
from tests.hub.hubapp import close, served
from tests.pw import chromium, new_page


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path, None)  # SQLite: the store's both engines are covered in tests/hub
    yield w
    close(w[0])


async def login(page, base: str, path: str, who: str) -> None:
    """Open `path`; not logged in, the hub sends the browser to its login page and back."""
    await page.goto(base + path)
    assert page.url.startswith(base + "/login?next=")
    await page.fill("input[name=login]", who)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + path)


async def file_on_phone(phone, base: str, case_no: str, text: str, shot: Path | None = None) -> tuple[str, str]:
    await phone.goto(base + "/public/complaints")
    await phone.check("input[name=about_kind][value=case]")
    await phone.fill("input[name=about]", case_no)
    await phone.fill("textarea[name=text]", text)
    await phone.fill("input[name=contact_name]", "赵小明")
    await phone.fill("input[name=contact_phone]", "13912345678")
    if shot is not None:
        await phone.screenshot(path=shot, full_page=True)
    await phone.click("#file button[type=submit]")
    await phone.wait_for_selector("#no")
    return (await phone.inner_text("#no")).strip(), (await phone.inner_text("#code")).strip()


async def act(page, no: str, form: str, **fields) -> None:
    art = page.locator(f"article[data-complaint='{no}']")
    for name, value in fields.items():
        await art.locator(f"form.{form} [name={name}]").fill(value)
    await art.locator(f"form.{form} button[type=submit]").click()
    await page.wait_for_url(re.compile(r".*/complaints\?ok="))


async def test_a_complaint_from_filing_to_confirmation_and_a_late_one_turns_red(world, tmp_path):
    hub, _feed, case, _other = world
    async with served(hub) as (base, _app), chromium() as browser:
        phone = await new_page(browser, width=390, height=844, mobile=True)
        sup = await new_page(browser)
        dept = await new_page(browser)

        no, code = await file_on_phone(phone, base, case, "材料齐全，窗口却要求我补交无关证明", tmp_path / "form.png")
        assert re.fullmatch(r"TS20261014\d{6}", no) and len(code) == 8
        await phone.screenshot(path=tmp_path / "filed.png", full_page=True)

        await login(sup, base, "/complaints", "sup")
        assert "13912345678" in await sup.inner_text(f"article[data-complaint='{no}'] .contact")
        await act(sup, no, "accept")
        assert await sup.input_value(f"article[data-complaint='{no}'] input[name=department]") == DEPT  # from the case
        await act(sup, no, "assign", text="请核实并答复")
        assert await sup.get_attribute(f"article[data-complaint='{no}']", "data-status") == "assigned"

        await login(dept, base, "/complaints", "dept")
        art = dept.locator(f"article[data-complaint='{no}']")
        assert "13912345678" not in await art.inner_text() and "答复期限" in await art.inner_text()
        await act(dept, no, "reply", text="经核实，已要求窗口一次性告知")

        await phone.click("#follow-link")
        await phone.wait_for_selector("#reopen")
        assert "经核实，已要求窗口一次性告知" in await phone.inner_text("ol.events")
        await phone.fill("#reopen textarea[name=text]", "至今没有人联系我")
        await phone.click("#reopen button[type=submit]")
        await phone.wait_for_selector("#status[data-status=reopened]")

        await dept.goto(base + "/complaints")
        await act(dept, no, "reply", text="已电话联系并当场办结")
        await phone.reload()
        await phone.screenshot(path=tmp_path / "replied.png", full_page=True)
        await phone.click("#confirm button[type=submit]")
        await phone.wait_for_selector("#status[data-status=closed]")
        steps = await phone.locator("ol.events li").evaluate_all("els => els.map(e => e.dataset.action)")
        assert steps == ["file", "accept", "assign", "reply", "reopen", "reply", "confirm"]
        assert "13912345678" not in await phone.content()
        await phone.screenshot(path=tmp_path / "complaint.png", full_page=True)

        # a second complaint, assigned and never answered: past its limit it turns red with a 督办
        late, _code = await file_on_phone(phone, base, case, "办件超期无人答复")
        await sup.goto(base + "/complaints")
        await act(sup, late, "accept")
        await act(sup, late, "assign")
        limit, due = Complaints().reply_days, NOW.date()
        while limit:
            due += timedelta(days=1)
            limit -= is_working_day(due)
        hub.ingest.now = lambda: NOW + timedelta(days=(due - NOW.date()).days + 1)
        hub.ingest.sweep()
        await sup.goto(base + "/complaints")
        art = sup.locator(f"article[data-complaint='{late}']")
        assert await art.get_attribute("data-light") == "red"
        assert "已超期" in await art.inner_text()
        await sup.screenshot(path=tmp_path / "operators.png", full_page=True)
        await art.locator("a[href^='/tickets']").click()
        await sup.wait_for_url(re.compile(r".*/tickets"))
        ticket = sup.locator("article.ticket").first
        assert late in await ticket.inner_text() and "督办通知" in await ticket.inner_text()
        await sup.screenshot(path=tmp_path / "ticket.png", full_page=True)
        await ticket.locator(f"a:has-text('{late}')").click()  # the ticket leads back to the complaint
        await sup.wait_for_url(re.compile(rf".*/complaints#c{late}$"))
        assert await sup.locator(f"article#c{late}").count() == 1
        for p in (phone, sup, dept):
            assert p.errors == []
    if os.environ.get("JIANCHA_SCREENS"):  # docs/screens/, on request (docs/testing.md)
        shutil.copy(tmp_path / "complaint.png", Path(os.environ["JIANCHA_SCREENS"]) / "complaint.png")
