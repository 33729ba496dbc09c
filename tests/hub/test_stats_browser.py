"""The stats page in a real browser (Playwright driving Debian's Chromium, tests/pw.py), on both
store engines, over generated data: an operator logs in, every chart container holds an ECharts
canvas, no console or page error, and an export link downloads that table as CSV."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

from tests.hub.accounts_helpers import PASSWORD
from tests.hub.hubapp import served
from tests.hub.test_stats_http import FIRST, LAST, world  # noqa: F401 - the same generated month
from tests.pw import chromium, new_page

CHARTS = ("trend", "status", "light", "department", "item", "county", "site", "ratings", "complaints")


async def test_stats_page_draws_every_chart_and_exports(world, tmp_path):  # noqa: F811
    hub, g = world
    async with served(hub) as (base, _app), chromium() as browser:
        page = await new_page(browser, width=1600, height=1000)
        await page.goto(base + "/stats")
        assert page.url.startswith(base + "/login?next=")
        await page.fill("input[name=login]", "sup-a")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(base + "/stats")
        await page.fill("input[name=from]", FIRST.isoformat())
        await page.fill("input[name=to]", LAST.isoformat())
        await page.click(".stats-filter button[type=submit]")
        await page.wait_for_url(f"**/stats?from={FIRST}&to={LAST}*")
        for name in CHARTS:
            await page.wait_for_selector(f"#t-{name} .chart canvas")
        assert await page.locator(".chart").count() == len(CHARTS)
        received = sum(FIRST <= c["received"] <= LAST and c["site"].startswith("140702") for c in g.cases)
        summary = await page.inner_text("#t-summary table")
        assert f"收件数\t{received}" in summary
        shot = tmp_path / "stats.png"
        await page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("JIANCHA_SCREENS"):  # docs/screens/, on request (docs/testing.md)
            shutil.copy(shot, Path(os.environ["JIANCHA_SCREENS"]) / "stats.png")
        async with page.expect_download() as info:
            await page.click("#t-county p.exports a:has-text('CSV')")
        download = await info.value
        path = tmp_path / download.suggested_filename
        await download.save_as(path)
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        assert rows[0][0] == "区县（行政区划代码）" and [r[0] for r in rows[1:]] == ["140702"]
        assert rows[1][1] == str(received)
        assert page.errors == []
