"""The 绩效评估 page in a real browser (Playwright, Debian's Chromium: tests/pw.py) on both store
engines: a supervisor logs in, opens November's department ranking, clicks down to a
department's points, enters a manual item in the form, closes the month; the portal then
publishes it. Screenshots in tmp_path (and docs/screens/ under JIANCHA_SCREENS). No page error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.hub.accounts_helpers import PASSWORD
from tests.hub.hubapp import served
from tests.hub.scores_helpers import MS, ZR
from tests.hub.test_scores_http import hub  # noqa: F401  (the fixture: the hand-built month, NOW 2026-12-02)
from tests.pw import chromium, new_page


def _keep(shot: Path, name: str) -> None:
    if os.environ.get("JIANCHA_SCREENS"):  # docs/screens/, on request (docs/testing.md)
        shutil.copy(shot, Path(os.environ["JIANCHA_SCREENS"]) / name)


async def test_ranking_drill_down_manual_item_and_closing_in_the_browser(hub, tmp_path):  # noqa: F811
    async with served(hub) as (base, _app), chromium() as browser:
        page = await new_page(browser)
        await page.goto(base + "/scores?period=2026-11")
        await page.fill("input[name=login]", "sup")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(base + "/scores?period=2026-11")
        await page.click(f"tr[data-key='{MS}'] a")
        await page.wait_for_selector("#lines")
        assert "= 63 分" in await page.inner_text("#lines h3")
        assert await page.locator("#lines tr[data-rule]").count() == 14
        shot = tmp_path / "scores.png"
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot, "scores.png")
        form = page.locator("form.manual")
        await form.locator("select[name=category]").select_option("media_praise")
        await form.locator("input[name=day]").fill("2026-11-28")
        await form.locator("input[name=department]").fill(ZR)
        await form.locator("textarea[name=reason]").fill("日报专题报道窗口服务")
        await form.locator("input[name=attachment]").fill("报道.pdf")
        await form.locator("button").click()
        await page.wait_for_url("**/scores?period=2026-11&ok=manual")
        assert "90" in await page.inner_text(f"tr[data-key='{ZR}'] td.score")
        await page.click("form.close button")
        await page.wait_for_url("**/scores?period=2026-11&ok=closed")
        assert await page.locator("[data-closed='1']").count() == 1
        pub = await new_page(browser, width=420, height=900, mobile=True)
        await pub.goto(base + "/public/scores")
        text = await pub.inner_text("#scores")
        assert "市场监督管理局" in text and "90" in text and "张三" not in text
        shot = tmp_path / "public-scores.png"
        await pub.screenshot(path=str(shot), full_page=True)
        _keep(shot, "public-scores.png")
        assert page.errors == [] and pub.errors == []
