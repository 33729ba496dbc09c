"""A province hub's walls (issue 14, hub/levels.py) on both engines: two cities send cards, 督办
steps and roll-ups (one relaying its county's) through the real child ingest; the province wall
lists cities → counties with their cards and the month's totals; a region-scoped supervisor sees
only its city; click down to a county's cards and to one card's case summary. In a browser:
the three pages, screenshots (docs/screens/ on request), no page error, no personal data."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from hub.app import Hub
from hub.config import HubConfig
from iobase.config import load_config
from protocol import topics
from protocol.calendar import CST
from protocol.records import GENESIS, Record, encode_record, record_hash
from protocol.uplink import KIND_CARD, KIND_ROLLUP, KIND_TICKET_STEP
from provisioning.child_hub import add_child_hub
from provisioning.setup import init_hub
from tests.hub.accounts_helpers import PASSWORD, cookie_headers, make_user, open_session
from tests.hub.hubapp import close, served
from tests.hub.test_uplink import _bundle_keys, _seal, _summary
from tests.pw import chromium, new_page

CITY_A, CITY_B, COUNTY = "hub-140700", "hub-140800", "hub-140721"
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)


def _rollup(region, hour, revision, received, origin=None, **extra):
    return {"region": region, "department": "市场监督管理局", "hour": hour, "revision": revision,
            "origin": origin, "received": received, "status": {"accepted": received}, "light": {"green": received},
            "warned": 0, "concluded": 0, "on_time": 0, "late": 0, "days_sum": 0, "durations": [],
            "keypad": [0] * 5, "portal": [0] * 5, "misuse": 0, "marked": 0, "complaints": 0,
            "complaint_status": {}, **extra}  # fmt: skip


def _case(n, site="140721-001", light="red"):
    s = _summary(n)
    s.update(case_no=f"{site}-20261102-{n:04d}", site=site, light=light, violations=["acceptance_timeout"])
    return s


def _encode(items):
    out, prev = [], GENESIS
    for i, (kind, body) in enumerate(items, 1):
        enc = encode_record(Record(i, prev, kind, 1_794_000_000_000, 0, "", "ntp", body))
        out.append(enc)
        prev = record_hash(enc)
    return out


def _step(n, origin):
    return {"ticket": 7, "origin": origin, "parent_ticket": None, "level": "order_explain", "action": "open",
            "status": "open", "reply_due": "2026-11-13", "by_system": True, "at_ms": 1_794_240_002_000,
            "case": _case(n)}  # fmt: skip


@pytest.fixture
def province(tmp_path, store_url):
    root = tmp_path / "province"
    init_hub(root, region="140000", name="山西省政务服务中心", level="province", broker_port=1, http_port=1)
    keys_a = _bundle_keys(add_child_hub(root, code="140700", name="晋中市政务服务中心", level="city"))
    keys_b = _bundle_keys(add_child_hub(root, code="140800", name="运城市政务服务中心", level="city"))
    cfg = load_config(root / "hub.yaml", HubConfig)
    if store_url.startswith("postgresql"):
        cfg.store.url = store_url
    hub = Hub(cfg)
    hub.ingest.now = lambda: NOW
    hub.link.publish = lambda *a, **k: None
    a = _encode([
        (KIND_CARD, {"card": "yellow", "origin": COUNTY, "previous": "green", "at_ms": 1_794_240_000_000,
                     "case": _case(1, light="yellow")}),
        (KIND_CARD, {"card": "red", "origin": COUNTY, "previous": "yellow", "at_ms": 1_794_240_001_000,
                     "case": _case(1)}),
        (KIND_TICKET_STEP, _step(1, COUNTY)),
        (KIND_ROLLUP, _rollup("140721", "2026-11-02T09", 1, 5, COUNTY)),
        (KIND_ROLLUP, _rollup("140721", "2026-11-02T10", 1, 2, COUNTY)),
        (KIND_ROLLUP, _rollup("140721", "2026-11-02T09", 2, 6, COUNTY)),  # revised: 6, not 5 + 6
        (KIND_CARD, {"card": "red", "origin": None, "previous": "green", "at_ms": 1_794_240_003_000,
                     "case": _case(2, site="140700-001")}),
        (KIND_ROLLUP, _rollup("140700", "2026-11-03T09", 1, 4, None, keypad=[3, 0, 0, 1, 0])),
        (KIND_ROLLUP, _rollup("140721", "2026-10-30T09", 1, 100, COUNTY)),  # October: not in November's totals
    ])  # fmt: skip
    b = _encode([
        (KIND_CARD, {"card": "red", "origin": None, "previous": "green", "at_ms": 1_794_240_004_000,
                     "case": _case(3, site="140802-001")}),
        (KIND_ROLLUP, _rollup("140802", "2026-11-04T09", 1, 7, None)),
    ])  # fmt: skip
    hub.ingest.process_group([(topics.child_batch(CITY_A), _seal(*keys_a, a, 1, CITY_A))])
    hub.ingest.process_group([(topics.child_batch(CITY_B), _seal(*keys_b, b, 1, CITY_B))])
    make_user(hub, "admin1", "admin")
    make_user(hub, "sup-b", "supervisor", "1408")
    make_user(hub, "dept-x", "department", "自然资源局")
    yield hub
    close(hub)


def _get(hub, login, paths):
    async def go():
        out = []
        async with served(hub) as (base, _), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, login), base)
            for p in paths:
                async with s.get(base + p, headers=h, allow_redirects=False) as r:
                    out.append((r.status, await r.text()))
        return out

    return asyncio.run(go())


def _cells(html: str, child: str, origin: str = "") -> str:
    start = html.index(f'data-child="{child}" data-origin="{origin}"')
    return html[start : html.index("</tr>", start)]


def test_the_province_wall_shows_cities_and_counties_with_their_totals(province):
    [(st, html)] = _get(province, "admin1", ["/levels?month=2026-11"])
    assert st == 200 and "省级监察大屏" in html
    county = _cells(html, CITY_A, COUNTY)
    # the county: yellow 1, red 1; received 6 (revision 2 of 09:00) + 2 (10:00) = 8; October's 100 left out
    assert '"num yellow-n">1<' in county and '"num red-n">1<' in county and '"num received">8<' in county
    assert "区县 140721" in county and "经上级转报" in county
    city = _cells(html, CITY_A)  # the whole city: its own 4 and its county's 8; cards 1 + 1 red, 1 yellow
    assert "晋中市政务服务中心" in city and '"num red-n">2<' in city and '"num received">12<' in city
    assert '"num yellow-n">1<' in city and "75.00%" in city  # satisfaction: 3 of 4 keypad ratings at 1-3
    assert '"num received">7<' in _cells(html, CITY_B)
    assert "黄牌 1" in html and "红牌 3" in html  # the province's total
    [(st, oct_html)] = _get(province, "admin1", ["/levels?month=2026-10"])
    assert '"num received">100<' in _cells(oct_html, CITY_A, COUNTY)


def test_click_down_to_a_countys_cards_and_a_card(province):
    got = _get(province, "admin1", [f"/levels/{CITY_A}?origin={COUNTY}", f"/levels/{CITY_A}/cards/2"])
    (st1, cards), (st2, card) = got
    assert st1 == 200 and cards.count("data-case=") == 2  # its yellow and its red card, not the city's own
    assert "140721-001-20261102-0001" in cards and "140700-001" not in cards
    assert st2 == 200 and "红牌" in card and "食品经营许可" in card and "已受理" in card
    assert "责令说明理由 #7：发起" in card and "系统自动" in card
    assert "逾期未受理（视为受理）" in card and "acceptance_timeout" not in card  # violations in Chinese


def test_scope_and_bad_input(province):
    pages = ["/levels", f"/levels/{CITY_A}", f"/levels/{CITY_A}/cards/2", f"/levels/{CITY_B}", "/levels?month=2026-13"]
    (s1, wall), (s2, _), (s3, _), (s4, b), (s5, bad) = _get(province, "sup-b", pages)
    assert s1 == 200 and CITY_B in wall and CITY_A not in wall  # a 1408 supervisor: 运城 only
    assert (s2, s3, s4) == (404, 404, 200) and "140802-001-20261102-0003" in b
    assert s5 == 400 and "月份" in bad
    (d1, dwall), (d2, dcard) = _get(province, "dept-x", ["/levels", f"/levels/{CITY_A}/cards/2"])
    assert d1 == 200 and "红牌 0" in dwall and d2 == 404  # another department's cards and figures: none
    (x1, _), (x2, _) = _get(province, "admin1", ["/levels/nonsense", "/levels/hub-140700/cards/99"])
    assert (x1, x2) == (404, 404)


async def test_the_walls_in_a_browser(province, tmp_path):
    screens = os.environ.get("JIANCHA_SCREENS")
    async with served(province) as (base, _), chromium() as browser:
        page = await new_page(browser)
        await page.goto(base + "/levels?month=2026-11")
        await page.fill("input[name=login]", "admin1")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(base + "/levels?month=2026-11")
        shots = []
        shots.append(("levels-province.png", await _shot(page, tmp_path, "levels-province.png")))
        await page.click(f'tr[data-origin="{COUNTY}"] a')
        await page.wait_for_url(f"**/levels/{CITY_A}?origin={COUNTY}")
        shots.append(("levels-cards.png", await _shot(page, tmp_path, "levels-cards.png")))
        await page.click("tr[data-case] a >> nth=0")
        await page.wait_for_url(f"**/levels/{CITY_A}/cards/*")
        text = await page.inner_text("main")
        assert "办件摘要" in text and "王五" not in text
        shots.append(("levels-card.png", await _shot(page, tmp_path, "levels-card.png")))
        assert page.errors == []
    if screens:
        for name, path in shots:
            shutil.copy(path, Path(screens) / name)


async def _shot(page, tmp_path, name):
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    return path


def test_the_levels_api_gives_the_figures_of_a_period(province):
    got = _get(province, "admin1", ["/api/levels?from=2026-11-01&to=2026-11-30", "/api/levels?from=2026-11-02&to=2026-11-02",
                                    "/api/levels?bogus=1", "/api/levels?from=2026-13-01"])  # fmt: skip
    (s1, month), (s2, day), (s3, bad), (s4, bad_date) = got
    month, day = json.loads(month), json.loads(day)
    assert s1 == 200 and month["total"]["received"] == 6 + 2 + 4 + 7  # revision 2 of 11-02 09:00 counted once
    assert month["total"]["keypad"] == [3, 0, 0, 1, 0] and month["total"]["satisfaction"] == 0.75
    rows = {(r["child"], r["origin"]): r for r in month["children"]}
    assert rows[(CITY_A, COUNTY)]["figures"]["received"] == 8 and rows[(CITY_A, None)]["cards"] == {
        "yellow": 1,
        "red": 2,
    }
    assert s2 == 200 and day["total"]["received"] == 8  # only Monday 11-02: the county's two hours
    assert s3 == 400 and "未知参数" in json.loads(bad)["error"]
    assert s4 == 400 and "YYYY-MM-DD" in json.loads(bad_date)["error"]
    [(s5, scoped)] = _get(province, "sup-b", ["/api/levels?from=2026-11-01&to=2026-11-30"])
    scoped = json.loads(scoped)
    assert scoped["total"]["received"] == 7 and {r["child"] for r in scoped["children"]} == {CITY_B}
