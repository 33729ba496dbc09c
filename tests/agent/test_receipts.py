"""Receipts (受理回执, 补正告知书): contents on A4 and 80 mm paper, and the QR code of the lookup URL."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from agent.receipts import lookup_url, qr_matrix, qr_svg
from tests.agent.clerk_helpers import (
    LOOKUP,
    Clock,
    cheap_hasher,
    client_for,
    login,
    make_store,
    post_form,
    register,
    step,
)


@pytest.fixture
def store(tmp_path, monkeypatch):
    cheap_hasher(monkeypatch)
    s = make_store(tmp_path / "agent.db")
    yield s
    s.close()


def decode(matrix) -> str:
    """Decode a QR module matrix with OpenCV, drawn at a few sizes with a quiet zone (OpenCV's
    detector misses some matrices at one size: the query code, and so the matrix, is random)."""
    for px in (8, 6, 10, 12, 5):
        img = np.kron(1 - np.array(matrix, dtype=np.uint8), np.ones((px, px), dtype=np.uint8)) * 255
        img = np.pad(img, 4 * px, constant_values=255)
        text, _points, _ = cv2.QRCodeDetector().detectAndDecode(img)
        if text:
            return text
    return ""


def test_lookup_url_carries_case_number_and_query_code():
    assert lookup_url(LOOKUP, "S01-20261120-0001", "01234567") == f"{LOOKUP}?case_no=S01-20261120-0001&code=01234567"
    assert lookup_url("https://x.cn/public?lang=zh", "A", "1") == "https://x.cn/public?lang=zh&case_no=A&code=1"
    assert lookup_url(None, "A", "1") is None


def test_the_qr_matrix_decodes_to_the_url():
    url = f"{LOOKUP}?case_no=S01-20261120-0001&code=01234567"
    assert decode(qr_matrix(url)) == url


@pytest.mark.parametrize("paper", ["a4", "80mm"])
async def test_receipt_contents(store, paper):
    async with client_for(store, Clock()) as client:
        await login(client)
        case_no = await register(client, item="XK-003")
        r = await client.get(f"/cases/{case_no}/receipt?paper={paper}")
        html = await r.text()
    assert r.status == 200 and f'class="paper-{paper}"' in html
    code = store.case_view(case_no, Clock().now)["query_code"]
    url = lookup_url(LOOKUP, case_no, code)
    for text in (
        "受理回执",
        case_no,
        code,
        "排水许可",
        "住房和城乡建设局",
        "东阳镇便民服务中心",
        "0354-12345",
        "1号窗口 · 李四",
    ):
        assert text in html, text
    assert "2026年11月20日 10:00" in html  # received, China time
    assert "受理之日起 5 个工作日内" in html  # not yet accepted: the promised date is not known yet
    # the QR code on the page is the one of the lookup URL (regenerated the same way, and it decodes)
    assert str(qr_svg(url)) in html and decode(qr_matrix(url)) == url
    assert html.count("<svg") == 1 and "<?xml" not in html


async def test_after_acceptance_the_receipt_names_the_promised_date(store):
    async with client_for(store, Clock()) as client:
        await login(client)
        case_no = await register(client)
        await step(client, case_no, "accept")
        html = await (await client.get(f"/cases/{case_no}/receipt")).text()
    assert re.search(r'id="r-promised">2026年12月4日<', html)  # 10 working days after Friday 20 November


async def test_supplement_notice_lists_what_to_bring(store):
    async with client_for(store, Clock()) as client:
        await login(client)
        case_no = await register(client)
        r = await client.get(f"/cases/{case_no}/receipt?kind=supplement")
        assert r.status == 409 and "没有补正告知" in await r.text()
        await step(client, case_no, "request_supplement", reason="营业执照复印件\n\n场所平面图 <b>")
        html = await (await client.get(f"/cases/{case_no}/receipt?kind=supplement&paper=80mm")).text()
        assert "补正告知书" in html and "<li>营业执照复印件</li>" in html and "<li>场所平面图 &lt;b&gt;</li>" in html
        r = await client.get(f"/cases/{case_no}/receipt?kind=other")
        assert r.status == 422
        r = await client.get(f"/cases/{case_no}/receipt?paper=a3")
        assert r.status == 422


async def test_without_a_lookup_url_there_is_no_qr(store):
    from agent.web import CLERK_WEB

    async with client_for(store, Clock()) as client:
        client.server.app[CLERK_WEB].lookup_url = None
        await login(client)
        case_no = await register(client)
        html = await (await client.get(f"/cases/{case_no}/receipt")).text()
    assert "<svg" not in html and "凭办件编号和查询码" in html


async def test_a_receipt_of_another_window_is_not_printed(store):
    async with client_for(store, Clock()) as client:
        await login(client)
        case_no = await register(client)
        await post_form(client, "/logout", {})
        await login(client, "赵六", "7391")
        r = await client.get(f"/cases/{case_no}/receipt")
    assert r.status == 404
