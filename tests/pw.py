"""Playwright for Python driving Debian's Chromium (`/usr/bin/chromium`, headless; Playwright's own
browser download is never used). Browser tests use these two helpers:

    async with chromium() as browser:
        page = await new_page(browser, artifacts=tmp_path)
        ...

`new_page` records console errors and uncaught page errors on `page.errors` so a test can assert
that a page ran cleanly, and sets the zh-CN locale and China time zone the users have.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from playwright.async_api import Browser, Page, async_playwright

from tests.browser import find_chromium

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic"]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Debian Chromium under Playwright (fails clearly when Chromium is missing)."""
    path = os.environ.get("JIANCHA_CHROMIUM") or find_chromium()
    if not path:
        raise RuntimeError("Chromium is missing: apt-get install chromium (bash .ci/bootstrap.sh test does)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=path, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(
    browser: Browser, *, width: int = 1400, height: int = 1000, mobile: bool = False, https: bool = False
) -> Page:
    """A fresh context (own cookies) and page; `page.errors` collects console errors and page errors."""
    ctx = await browser.new_context(
        viewport={"width": width, "height": height},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        is_mobile=mobile,
        has_touch=mobile,
        ignore_https_errors=https,
    )
    ctx.set_default_timeout(20_000)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.errors = errors  # type: ignore[attr-defined]
    return page
