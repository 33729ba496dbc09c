"""Real browser at the clerk's window (窗口受理) with the city network down: a clerk logs in on the
box's page while the broker is stopped, registers a case, prints its receipt, accepts and
completes it and sees the evaluator armed; when the broker returns the case reaches the hub.
Screenshots (the window's screen, the receipt) are kept in the test's tmp_path; docs/screens/
holds copies of them."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from tests.e2e.harness import REPO, Env, http, wait_for
from tests.pw import chromium, new_page

PIN = "2580"


@pytest.fixture
def clerk_env(tmp_path):
    """Hub and broker running; site S01 with hall details, a clerk 李四 at window 1, its agent running."""
    e = Env(tmp_path / "hub", sites=("S01",))
    try:
        e.start_broker()
        e.start_hub()
        e.set_agent(
            "S01", hall={"supervision_phone": "0354-12345", "lookup_url": f"{e.hub_url}/public"}
        )  # the box's receipts point at the hub's public lookup
        config = e.root / "sites" / "S01" / "agent.yaml"
        add = subprocess.run(
            [sys.executable, "-m", "agent", "clerk", "add", "--config", str(config), "--name", "李四", "--window", "1"],
            input=f"{PIN}\n",
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert add.returncode == 0, add.stderr
        e.start_agent("S01")
        wait_for(lambda: e.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
        yield e
    finally:
        e.close()


async def _submit(page, selector: str) -> None:
    """Click a form's button and wait for the page it leads to."""
    async with page.expect_navigation():
        await page.click(selector)


async def test_clerk_registers_prints_and_completes_offline_then_the_case_reaches_the_hub(clerk_env, tmp_path):
    env = clerk_env
    await asyncio.to_thread(env.broker.stop)  # the city network is down from here on
    base = env.agent_url("S01")
    async with chromium() as browser:
        page = await new_page(browser)
        await page.goto(f"{base}/")
        assert "未启用 HTTPS" in await page.inner_text("#plain-http")  # plain HTTP warns on the login page
        await page.select_option("select[name=clerk]", "李四")
        await page.fill("input[name=pin]", PIN)
        await _submit(page, "#login button")
        assert "1号窗口 · 李四" in await page.inner_text("#who")

        # register: search the catalog by pinyin initials, pick the item, fill the applicant
        await _submit(page, "#new-case")
        await page.fill("input[name=q]", "psxk")
        await _submit(page, "#search button")
        assert await page.inner_text("#results") and "排水许可" in await page.inner_text("#results")
        await _submit(page, "#results a[data-code='XK-003']")
        assert "事项目录未列出申请材料" in await page.inner_text("#item")  # the demo catalog lists none
        await page.fill("input[name=name]", "王五")
        await page.fill("input[name=id_no]", "11010519491231002X")
        await page.fill("input[name=phone]", "13800000000")
        await _submit(page, "#register button")
        case_no = re.search(r"/cases/([^/?]+)", page.url).group(1)
        assert "收件" in await page.inner_text("#done")
        query_code = (await page.inner_text("dl.facts")).split("查询码")[1].split()[0]

        # the receipt's print view
        await _submit(page, "#print-a4")
        receipt = await page.inner_text("#receipt")
        for text in ("受理回执", case_no, query_code, "排水许可", "0354-12345", "S01便民服务中心", "1号窗口"):
            assert text in receipt, text
        url = await page.get_attribute("#qr", "data-url")
        assert url == f"{env.hub_url}/public?case_no={case_no}&code={query_code}"
        await page.screenshot(path=tmp_path / "receipt.png", clip={"x": 0, "y": 0, "width": 1400, "height": 720})
        # printed: one A4 page, and on the thermal layout one page 80 mm wide
        assert _pdf_pages(await page.pdf(prefer_css_page_size=True)) == [(595, 842)]
        await _submit(page, "a[href*='paper=80mm']")
        assert [w for w, _h in _pdf_pages(await page.pdf(prefer_css_page_size=True))] == [227]  # 80 mm in points
        assert case_no in await page.inner_text("#receipt")
        # the code as the browser draws it, enlarged (on screen 34 mm is ~3 px a module: too fine for OpenCV)
        await page.eval_on_selector("#qr svg", "s => { s.style.width = '360px'; s.style.height = '360px'; }")
        await page.locator("#qr svg").screenshot(path=tmp_path / "qr.png")
        assert _decode(tmp_path / "qr.png") == url

        # accept and complete: only the allowed steps are offered; then the evaluator is armed
        await page.goto(f"{base}/cases/{case_no}")
        offered = await page.eval_on_selector_all("#steps form", "fs => fs.map(f => f.dataset.step)")
        assert "accept" in offered and "complete" not in offered and "deliver" not in offered
        await _submit(page, "form[data-step=accept] button")
        assert "已受理" in await page.inner_text("#status")
        offered = await page.eval_on_selector_all("#steps form", "fs => fs.map(f => f.dataset.step)")
        assert "complete" in offered and "accept" not in offered
        await _submit(page, "form[data-step=complete] button")
        assert await page.get_attribute("#evaluator", "data-armed") == "1"
        assert "评价器已就绪" in await page.inner_text("#evaluator")
        await page.screenshot(path=tmp_path / "completed.png", full_page=True)

        # a second case waits for acceptance: the window's screen lists the open one with its light
        await page.goto(f"{base}/register?item=XK-001")
        await page.fill("input[name=name]", "晋中市某某餐饮有限公司")
        await page.fill("input[name=phone]", "0354-1234567")
        await _submit(page, "#register button")
        await page.goto(f"{base}/")
        rows = await page.eval_on_selector_all(
            "#cases tbody tr", "rs => rs.map(r => [r.dataset.case, r.dataset.light])"
        )
        assert len(rows) == 1 and rows[0][1] == "green" and rows[0][0] != case_no
        await page.screenshot(path=tmp_path / "clerk.png", clip={"x": 0, "y": 0, "width": 1400, "height": 520})
        assert page.errors == []

    # the broker returns: the case and its steps reach the hub
    assert env.agent_health("S01")["backlog"] > 0
    await asyncio.to_thread(env.start_broker)
    await asyncio.to_thread(env.wait_synced, "S01", 90)
    got = await asyncio.to_thread(
        wait_for, lambda: _hub_case(env, case_no), 60, 0.3, f"{case_no} with its events at the hub"
    )
    assert got["clerk"] == "李四" and got["window"] == "1"

    # the citizen scans the receipt's code with a phone: the lookup opens with the progress shown
    async with chromium() as browser:
        phone = await new_page(browser, width=390, height=844, mobile=True)
        await phone.goto(url)
        await phone.wait_for_function("document.getElementById('result').innerText.includes('当前状态')")
        shown = await phone.inner_text("#result")
        assert case_no in shown and "排水许可" in shown and "办结" in shown
        assert "王五" not in shown  # no personal data on the public lookup
        assert phone.errors == []
    assert (tmp_path / "receipt.png").stat().st_size > 10_000 and (tmp_path / "clerk.png").stat().st_size > 10_000


def _hub_case(env, case_no: str):
    status, case = http("GET", f"{env.hub_url}/api/cases/{case_no}", token=env.token)
    if status != 200:
        return None
    types = [e["type"] for e in case.get("events", [])]
    return case if types == ["accept", "complete"] else None


def _decode(png) -> str:
    """The text of the QR code in an image (OpenCV), with a white quiet zone added."""
    import cv2

    img = cv2.copyMakeBorder(cv2.imread(str(png)), 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    text, _points, _ = cv2.QRCodeDetector().detectAndDecode(img)
    return text


def _pdf_pages(pdf: bytes) -> list[tuple[int, int]]:
    """(width, height) in points of each page of a PDF Chromium printed."""
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([0-9.]+) ([0-9.]+)\s*\]", pdf)
    return [(round(float(w)), round(float(h))) for w, h in boxes]
