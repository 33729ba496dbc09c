"""Scores over HTTP (hub/api_scores.py) on both engines, over the hand-built month
(tests/hub/scores_helpers.py; figures in tests/hub/test_scores.py): what each role sees on
/api/scores, the /scores page and its drill-down, the manual-item and closing forms (audited),
and the portal's published ranking (closed periods only, no names)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import pytest

from protocol.calendar import CST
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.case_helpers import cells, fetch
from tests.hub.hubapp import close, provisioned_hub, served
from tests.hub.scores_helpers import GA, MS, SITE, ZR, seed_month

NOW = datetime(2026, 12, 2, 9, tzinfo=CST)


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=(SITE,), store_url=store_url)
    h.ingest.now = lambda: NOW
    h.write(seed_month)
    for login, role, scope in (("admin1", "admin", None), ("sup", "supervisor", None), ("sup-b", "supervisor", "140703"),
                               ("dept", "department", ZR), ("wall", "viewer", None)):  # fmt: skip
        make_user(h, login, role, scope)
    yield h
    close(h)


def _api(hub, login, query="period=2026-11&by=department"):
    ((status, body, headers),) = fetch(hub, login, f"/api/scores?{query}")
    return status, body, headers


def test_each_role_sees_its_part(hub):
    status, body, _ = _api(hub, "sup")
    assert status == 200 and body["closed"] is False
    assert [(e["rank"], e["key"], e["score"]) for e in body["entries"]] == [(1, GA, 100), (2, ZR, 87), (3, MS, 63)]
    assert len(body["entries"][2]["lines"]) == 14
    _, dept, _ = _api(hub, "dept", "period=2026-11&by=staff")
    assert [(e["key"], e["score"]) for e in dept["entries"]] == [(f"{SITE}/李四", 92)]  # its own staff only
    _, wall, _ = _api(hub, "wall")
    assert [e["score"] for e in wall["entries"]] == [100, 87, 63] and "lines" not in wall["entries"][0]
    assert _api(hub, "wall", "period=2026-11&by=staff")[1]["entries"] == []
    _, other, _ = _api(hub, "sup-b")  # another county: the ranking, none of this site's lines
    assert [e["score"] for e in other["entries"]] == [100, 87, 63]
    assert other["entries"][2]["lines"] == [] or all(ln["site"] is None for ln in other["entries"][2]["lines"])
    assert other["entries"][2]["lines_hidden"] == 12  # 14 lines, 2 without a site (the catalog's)
    assert _api(hub, "sup-b", "period=2026-11&by=window")[1]["entries"] == []
    assert _api(hub, "sup", "period=2026-13")[0] == 400 and "期间格式" in _api(hub, "sup", "period=x")[1]["error"]
    assert _api(hub, "dept", "period=2026-11&by=all")[0] == 403


def test_the_page_ranks_and_drills_down_to_each_point(hub):
    ((status, html, _),) = fetch(hub, "sup", f"/scores?period=2026-11&by=department&key={MS}")
    assert status == 200
    rows = cells(html, "data-key")
    assert rows[GA].startswith("1 公安局 100") and rows[MS].startswith("3 市场监督管理局 63")
    assert "22个工作日内两次投诉经查证属实" in rows[MS]
    lines = cells(html, "data-rule")
    assert "转办投诉逾期未答复" in lines["complaint_late"] and "TS1" in lines["complaint_late"]
    assert html.count('<tr data-rule="') == 14 and "未封存" in html


def _post(hub, login, path, data):
    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            sess = open_session(hub, login)
            h = cookie_headers(sess, base, csrf=False)
            async with s.post(base + path, data={**data, "csrf": sess["csrf"]}, headers=h, allow_redirects=False) as r:
                return r.status, r.headers.get("Location"), await r.text()

    return asyncio.run(go())


def test_forms_add_a_manual_item_and_close_the_month_then_the_portal_publishes_it(hub):
    status, loc, _ = _post(hub, "sup", "/scores/manual", {"category": "media_praise", "day": "2026-11-28",
                                                           "department": ZR, "reason": "日报表扬", "attachment": "报道.pdf"})  # fmt: skip
    assert (status, loc) == (303, "/scores?period=2026-11&ok=manual")
    status, _, html = _post(hub, "sup", "/scores/manual", {"category": "gift", "day": "2026-11-28", "reason": ""})
    assert status == 422 and "请选择类别" in html and "请填写事由" in html
    ((_, public_before, _),) = fetch(hub, None, "/api/public/scores")
    assert public_before["periods"] == [] and public_before["departments"] == []
    status, loc, _ = _post(hub, "sup", "/scores/close", {"period": "2026-11"})
    assert (status, loc) == (303, "/scores?period=2026-11&ok=closed")
    assert _post(hub, "sup", "/scores/close", {"period": "2026-11"})[0] == 409  # once
    assert _post(hub, "sup", "/scores/close", {"period": "2026-12"})[0] == 409  # not over
    ((_, pub, _),) = fetch(hub, None, "/api/public/scores")
    assert pub["period"] == "2026-11" and [(d["department"], d["score"]) for d in pub["departments"]] == [
        (GA, 100),
        (ZR, 90),
        (MS, 63),
    ]  # fmt: skip  (ZR: 87 + 3 for the media praise)
    assert "张三" not in str(pub) and "李四" not in str(pub) and "C1" not in str(pub)
    assert {r["rule"]: (r["count"], r["points"]) for r in pub["departments"][2]["rules"]}["complaint_late"] == (3, -12)
    ((status, page, _),) = fetch(hub, None, "/public/scores")
    assert status == 200 and "部门绩效评估公示" in page and "自然资源局" in page and "张三" not in page
    ((status, err, _),) = fetch(hub, None, "/api/public/scores?period=2026-10")
    assert status == 400 and "尚未公布" in err["error"]
    ((_, results, _),) = fetch(hub, None, "/public/results")
    assert 'href="/public/scores"' in results
    actions = [r[0] for r in hub.reader.execute("SELECT action FROM audit_log ORDER BY id")]
    assert "scores manual media_praise" in actions and "scores close" in actions


def test_a_region_supervisor_enters_manual_items_only_for_its_own_sites(hub):
    """sup-b is limited to 140703: an item for SITE (140702-001), or for a department without a
    site (which would count everywhere), is refused; nothing is stored."""
    base = {"category": "thanks", "day": "2026-11-28", "department": ZR, "reason": "表扬信", "attachment": "信.jpg"}
    seeded = hub.reader.execute("SELECT count(*) FROM score_manual").fetchone()[0]
    status, _, html = _post(hub, "sup-b", "/scores/manual", base)
    assert status == 422 and "须注明本辖区的站点编码" in html
    status, _, html = _post(hub, "sup-b", "/scores/manual", {**base, "site": SITE, "window": "1"})
    assert status == 422 and f"站点 {SITE} 不在您的辖区（140703）内" in html
    assert hub.reader.execute("SELECT count(*) FROM score_manual").fetchone()[0] == seeded
    status, loc, _ = _post(hub, "sup-b", "/scores/manual", {**base, "site": "140703-001", "window": "1"})
    stored = hub.reader.execute("SELECT site FROM score_manual ORDER BY id DESC").fetchall()
    assert status == 303 and len(stored) == seeded + 1 and tuple(stored[0]) == ("140703-001",)


def test_a_manual_item_shows_at_once_although_results_are_reused_for_a_minute(hub):
    """One running app reuses a period's result for CACHE_TTL_S; a manual item entered through it
    clears that, so the next view has the new line (a media praise for ZR)."""
    manual = {"category": "media_praise", "day": "2026-11-28", "department": ZR, "reason": "日报表扬",
              "attachment": "报道.pdf"}  # fmt: skip

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            sess = open_session(hub, "sup")
            h = cookie_headers(sess, base, csrf=False)

            async def scores_now():
                async with s.get(base + "/api/scores?period=2026-11&by=department", headers=h) as r:
                    return await r.json()

            first = await scores_now()
            hub.write(lambda c: c.execute("DELETE FROM votes"))  # behind the cache's back
            again = await scores_now()
            async with s.post(base + "/scores/manual", data={**manual, "csrf": sess["csrf"]}, headers=h,
                              allow_redirects=False) as r:  # fmt: skip
                assert r.status == 303
            return first, again, await scores_now()

    first, again, after = asyncio.run(go())
    assert again == first  # reused: the deleted votes are not seen yet
    zr = next(e for e in after["entries"] if e["key"] == ZR)
    assert any(ln["rule"] == "media_praise" for ln in zr["lines"])
    assert after["entries"] != first["entries"]
