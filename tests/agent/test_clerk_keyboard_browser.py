"""A township clerk under time pressure, keyboard only, in a real browser (Debian's Chromium):
log in, find the item, type the applicant, correct a mistyped phone, press Enter twice on
登记收件 (one case), go back and submit again (still one case)."""

from __future__ import annotations

import pytest

from tests.agent.clerk_helpers import Clock, cheap_hasher, client_for, make_store
from tests.pw import chromium, new_page


@pytest.fixture
def store(tmp_path, monkeypatch):
    cheap_hasher(monkeypatch)
    s = make_store(tmp_path / "agent.db")
    yield s
    s.close()


async def focused(page) -> str:
    """The name of the field the cursor waits in, once the page has put it there (autofocus is
    applied a moment after the page shows; a person does not type that fast, a test does)."""
    try:
        await page.wait_for_function("document.activeElement && document.activeElement.name", timeout=5000)
    except Exception:
        return ""
    return await page.evaluate("document.activeElement.name")


async def test_registering_a_case_by_keyboard_only(store, tmp_path):
    async with client_for(store, Clock()) as client, chromium() as browser:
        page = await new_page(browser)
        await page.goto(str(client.make_url("/")))
        assert await focused(page) == "clerk"
        await page.keyboard.press("ArrowDown")  # the first clerk: 李四
        await page.keyboard.press("Tab")
        await page.keyboard.type("2580")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#who")
        await page.keyboard.press("Tab")  # the menu: 本窗口在办件, then 收件登记
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#search")
        assert await focused(page) == "q"
        await page.keyboard.type("spjy")  # 食品经营许可 by its pinyin initials
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#results")
        await page.focus("#results a")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#register")
        assert await focused(page) == "name"  # no tabbing past the menu and 退出
        await page.keyboard.type("王五")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await page.keyboard.type("1380000000")  # a digit short
        await page.keyboard.press("Enter")
        await page.wait_for_selector('[data-field="phone"]')
        assert await focused(page) == "phone" and await page.input_value('input[name="name"]') == "王五"
        await page.screenshot(path=tmp_path / "register-error.png", full_page=True)
        # the 422 answer of the refused form is the only console message (its status), as planned
        assert [e for e in page.errors if "422" not in e] == []
        page.errors.clear()
        await page.keyboard.type("0")
        await page.keyboard.press("Enter")
        await page.keyboard.press("Enter")  # impatient: pressed again while the page loads
        await page.wait_for_selector("#done")
        assert store.counts()["cases"] == 1 and "13800000000" in await page.content()  # typed at the end
        # the next citizen: right first time, then the back button and 登记收件 again
        await page.goto(str(client.make_url("/register?item=XK-003")))
        assert await focused(page) == "name"
        await page.keyboard.type("赵七")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await page.keyboard.type("13900000000")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#done")
        assert store.counts()["cases"] == 2
        await page.go_back()  # the form again, fetched anew, with what was typed put back
        await page.wait_for_selector("#register")
        assert await page.input_value('input[name="name"]') == "赵七"
        await page.locator("#register button[type=submit]").click()
        await page.wait_for_selector("#again-ask")  # asked, not registered twice unseen
        assert store.counts()["cases"] == 2 and await page.evaluate("document.activeElement.id") == "registered"
        await page.screenshot(path=tmp_path / "register-again.png", full_page=True)
        await page.check('input[name="again"]')  # truly a second application: it may be registered
        await page.locator("#register button[type=submit]").click()
        await page.wait_for_selector("#done")
        assert store.counts()["cases"] == 3
        await page.screenshot(path=tmp_path / "registered.png", full_page=True)
        assert [e for e in page.errors if "409" not in e] == []
