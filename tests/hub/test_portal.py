"""The citizen portal (hub/portal.py): guides, forms, case lookup, ratings and results, HTML
page and JSON twin together, on both engines."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from hub.devices import store_vote
from protocol.models import VoteCast
from tests.hub.hubapp import close, served
from tests.hub.portal_helpers import CODE, DONE_CASE, HALL, LATE_CASE, OPEN_CASE, SITE, portal_hub, wide_limiter


@pytest.fixture
def hub(tmp_path, store_url):
    h = portal_hub(tmp_path / "hub", store_url)
    yield h
    close(h)


def call(hub, fn):
    """Run fn(session, base_url) against the served app."""

    async def go():
        async with served(hub, limiter=wide_limiter()) as (base, _app), aiohttp.ClientSession() as s:
            return await fn(s, base)

    return asyncio.run(go())


async def get(s, url, **kw):
    async with s.get(url, **kw) as r:
        return r.status, (await r.json()) if r.content_type == "application/json" else await r.text()


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("spjy", ["XK-001"]),  # pinyin initials of 食品经营许可
        ("SPJYXK", ["XK-001"]),
        ("市场监督", ["XK-001", "XK-004"]),  # department
        ("scjd", ["XK-001", "XK-004"]),  # the department's initials
        ("身份证", ["QR-001"]),
        ("qr-001", ["QR-001"]),
        ("无此事项", []),
    ],
)
def test_guide_search_by_name_department_and_initials(hub, q, expected):
    async def go(s, base):
        status, body = await get(s, base + "/api/public/items", params={"q": q})
        assert status == 200
        assert sorted(i["code"] for i in body["items"]) == expected
        status, html = await get(s, base + "/public", params={"q": q})
        assert status == 200
        for code in expected:
            assert f'href="/public/items/{code}"' in html
        if not expected:
            assert "没有找到相关事项" in html

    call(hub, go)


def test_search_query_is_bounded_and_pypinyin_is_not_loaded_to_answer(hub):
    import sys

    async def go(s, base):
        status, body = await get(s, base + "/api/public/items", params={"q": "x" * 5000})
        assert status == 200 and body["items"] == []
        status, body = await get(s, base + "/api/public/items")
        assert status == 200 and len(body["items"]) == 9

    sys.modules.pop("pypinyin", None)  # loaded by the catalog import above, not by a request
    call(hub, go)
    assert "pypinyin" not in sys.modules


def test_item_page_shows_the_whole_guide_and_serves_its_form(hub):
    async def go(s, base):
        status, item = await get(s, base + "/api/public/items/XK-001")
        assert status == 200
        assert item["eligibility"].startswith("在本市从事食品")
        assert item["promised_days"] == 10 and item["legal_days"] == 20
        assert item["process"][0] == "窗口收件" and len(item["process"]) == 5
        assert item["legal_basis"].startswith("《中华人民共和国食品安全法》")
        assert item["supervision_phone"] == "0354-12345" and item["phone"] == "0354-1234501"
        assert item["halls"] == [{"code": SITE, "name": HALL}]
        form = item["materials"][0]
        assert form == {
            "text": "食品经营许可申请书",
            "form": "food-permit-application.pdf",
            "form_url": "/public/forms/food-permit-application.pdf",
        }
        assert item["materials"][1]["form_url"] is None
        async with s.get(base + form["form_url"]) as r:
            assert r.status == 200 and r.content_type == "application/pdf"
            assert "attachment" in r.headers["Content-Disposition"]
            assert (await r.read()).startswith(b"%PDF")
        status, html = await get(s, base + "/public/items/XK-001")
        for label in (
            "受理条件",
            "申请材料",
            "办理流程",
            "承诺时限",
            "法定时限",
            "收费标准",
            "设定依据",
            "监督电话",
            "办理大厅",
            HALL,
        ):
            assert label in html, label
        assert 'href="/public/forms/food-permit-application.pdf"' in html
        qr = (await get(s, base + "/api/public/items/QR-001"))[1]
        assert qr["fee"] == "20元" and qr["fee_basis"].startswith("《国家发展改革委")

    call(hub, go)


@pytest.mark.parametrize(
    "path",
    [
        "/public/forms/..%2Fhub.yaml",
        "/public/forms/evil.exe",
        "/public/forms/missing.pdf",
        "/public/items/NOPE",
        "/public/items/" + "x" * 300,
    ],
)
def test_unknown_forms_and_items_are_404_pages(hub, path):
    status, html = call(hub, lambda s, base: get(s, base + path))
    assert status == 404 and "未找到" in html


def test_unknown_item_json_is_a_json_error(hub):
    status, body = call(hub, lambda s, base: get(s, base + "/api/public/items/NOPE"))
    assert status == 404 and "未找到该事项" in body["error"]


def test_lookup_shows_progress_timeline_and_hall_without_personal_data(hub):
    async def go(s, base):
        status, body = await get(s, f"{base}/api/public/cases/{DONE_CASE}", params={"code": "99999999"})
        assert status == 404 and "未找到该办件" in body["error"]
        status, body = await get(s, f"{base}/api/public/cases/{DONE_CASE}", params={"code": CODE})
        assert status == 200
        assert [e["type_zh"] for e in body["events"]] == ["收件", "受理", "办结"]
        assert body["events"][0]["at"] == "2026-11-20T09:00:00+08:00"
        assert body["hall"] == {"code": SITE, "name": HALL}
        assert body["progress"] == {"stage": 3, "stages": ["收件", "受理", "办理", "办结"]}
        assert body["due_date"] == "2026-12-04" and body["status_zh"] == "已办结" and body["ratable"] is True
        text = str(body)
        assert "王五" not in text and "赵六" not in text and "query_code" not in text
        status, html = await get(s, f"{base}/public", params={"case_no": DONE_CASE, "code": CODE})
        assert status == 200 and "当前状态" in html and HALL in html and "2026-11-20 09:00" in html
        assert "王五" not in html and "赵六" not in html
        status, html = await get(s, f"{base}/public", params={"case_no": DONE_CASE, "code": "1"})
        assert status == 200 and "未找到该办件" in html  # a message on the page (its JSON twin: 404)
        status, body = await get(s, f"{base}/api/public/cases/{OPEN_CASE}", params={"code": "00000002"})
        assert body["progress"]["stage"] == 1 and body["ratable"] is False

    call(hub, go)


def test_a_finished_case_is_rated_once_online_beside_its_keypad_vote(hub):
    vote = VoteCast(case_no=DONE_CASE, window="1号窗口", staff="赵六", department="市场监督管理局", key="k5",
                    level=2, level_name="满意", mapping_version="v1", pressed_wall_ms=1_795_000_000_000)  # fmt: skip
    hub.write(lambda c: store_vote(c, SITE, 7, vote))
    url = f"/api/public/cases/{DONE_CASE}/rating"

    async def post(s, base, path, body):
        async with s.post(base + path, json=body, headers={"Origin": base}) as r:
            return r.status, await r.json()

    async def go(s, base):
        assert (await post(s, base, url, {"code": "12345678", "level": 1}))[0] == 404
        assert (await post(s, base, url, {"code": CODE, "level": 0}))[0] == 400
        assert (await post(s, base, url, {"code": CODE, "level": True}))[0] == 400
        assert (await post(s, base, url, {"code": CODE, "level": "1"}))[0] == 400
        assert (await post(s, base, url, {"code": CODE, "level": 1, "comment": "长" * 501}))[0] == 400
        status, body = await post(s, base, f"/api/public/cases/{OPEN_CASE}/rating", {"code": "00000002", "level": 1})
        assert status == 409 and "尚未办结" in body["error"]
        status, body = await post(s, base, url, {"code": CODE, "level": 5, "comment": "等了太久"})
        assert status == 201 and body["level_name"] == "非常不满意" and body["channel"] == "portal"
        status, body = await post(s, base, url, {"code": CODE, "level": 1})
        assert status == 409 and "已经评价过" in body["error"]
        status, body = await get(s, f"{base}/api/public/cases/{DONE_CASE}", params={"code": CODE})
        assert [(r["channel_zh"], r["level_name"], r["comment"]) for r in body["ratings"]] == [
            ("评价器", "满意", None),
            ("网上评价", "非常不满意", "等了太久"),
        ]
        assert body["ratable"] is False
        # the form: a later case, then the page says thanks and shows the rating
        async with s.post(base + "/public/rating", data={"case_no": LATE_CASE, "code": "00000003", "level": "3"},
                          headers={"Origin": base}) as r:  # fmt: skip
            assert r.status == 200 and "感谢您的评价" in await r.text() and "基本满意" in await r.text()
        async with s.post(base + "/public/rating", data={"case_no": LATE_CASE, "code": "00000003", "level": "3"},
                          headers={"Origin": base}) as r:  # fmt: skip
            assert r.status == 409 and "已经评价过" in await r.text()
        async with s.post(base + "/public/rating", data={"case_no": LATE_CASE, "code": "00000003", "level": "2"},
                          headers={"Origin": "http://evil.example"}) as r:  # fmt: skip
            assert r.status == 403

    call(hub, go)
    # the 非常不满意 online opened one 差评 follow-up for the case's department; the 基本满意 none
    fus = hub.reader.execute("SELECT channel, case_no, department, level, step FROM followups").fetchall()
    assert [tuple(r) for r in fus] == [("portal", DONE_CASE, "市场监督管理局", 5, "verify")]
    # marked 误评 by a supervisor, the online rating leaves the rates as a keypad one does
    from hub.followups import VOTE_NOT_MARKED

    counted = f"SELECT channel FROM votes WHERE case_no=? AND {VOTE_NOT_MARKED} ORDER BY channel"
    assert [r[0] for r in hub.reader.execute(counted, (DONE_CASE,))] == ["keypad", "portal"]
    hub.write(lambda c: c.execute("UPDATE followups SET mark='misuse', mark_reason='test' WHERE channel='portal'"))
    assert [r[0] for r in hub.reader.execute(counted, (DONE_CASE,))] == ["keypad"]
    rows = hub.reader.execute(
        "SELECT channel, level, seq < 0, staff FROM votes WHERE case_no=? ORDER BY channel", (DONE_CASE,)
    ).fetchall()
    assert [tuple(r) for r in rows] == [("keypad", 2, False, "赵六"), ("portal", 5, True, "赵六")]


def test_results_publish_monthly_on_time_rates_per_department(hub):
    async def go(s, base):
        status, body = await get(s, base + "/api/public/results", params={"until": "2026-12", "months": "2"})
        assert status == 200 and body["months"] == ["2026-11", "2026-12"]
        (dept,) = body["departments"]
        assert dept["department"] == "市场监督管理局"
        assert dept["months"] == [
            {"month": "2026-11", "finished": 0, "on_time": 0, "rate": None},
            {"month": "2026-12", "finished": 2, "on_time": 1, "rate": 50.0},
        ]
        status, html = await get(s, base + "/public/results", params={"until": "2026-12", "months": "2"})
        assert status == 200 and "按时办结率" in html and "50.0%" in html and "2026年12月" in html
        for bad in ({"until": "2026-13"}, {"until": "12-2026"}, {"months": "13"}, {"months": "0"}, {"months": "x"}):
            status, body = await get(s, base + "/api/public/results", params=bad)
            assert status == 400 and body["error"], bad
            status, html = await get(s, base + "/public/results", params=bad)
            assert status == 400 and "flash bad" in html, bad

    call(hub, go)


def test_the_search_index_is_kept_until_a_new_catalog_is_signed(hub):
    from hub import portal_data as pd
    from hub.catalog import store_catalog
    from protocol.models import CatalogItem
    from tests.craft import ITEM

    cache: dict = {}
    assert [i["code"] for i in pd.search_items(hub.reader, "spjy", cache)] == ["XK-001"]
    rows = cache["rows"]
    assert pd.search_items(hub.reader, "spjy", cache) and cache["rows"] is rows  # not read again
    store_catalog(hub.conn, [CatalogItem.model_validate({**ITEM, "code": "XK-009", "name": "排水许可"})])
    assert [i["code"] for i in pd.search_items(hub.reader, "psxk", cache)] == ["XK-009"]
    assert pd.search_items(hub.reader, "spjy", cache) == []


def test_ratings_draw_on_the_lookup_limiter(hub):
    from hub.api import Limiter

    async def go():
        async with served(hub, limiter=Limiter(n=3)) as (base, _app), aiohttp.ClientSession() as s:
            got = []
            for _ in range(2):
                async with s.get(f"{base}/api/public/cases/{DONE_CASE}", params={"code": "99999999"}) as r:
                    got.append(r.status)
            for _ in range(2):
                async with s.post(f"{base}/api/public/cases/{DONE_CASE}/rating", json={"code": "99999999", "level": 1},
                                  headers={"Origin": base}) as r:  # fmt: skip
                    got.append(r.status)
                    body = await r.json()
            assert got == [404, 404, 404, 429] and "查询过于频繁" in body["error"]

    asyncio.run(go())
