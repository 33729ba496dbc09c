"""The case page (/cases/{case_no}) and its JSON twin, on both store engines: timeline in chain
order with the chain re-checked (a tampered record shows ✗), deadlines with working-day counts
checked against chinese_calendar (an independent reference, not the code under test),
suspensions and extensions, masking by role, the same 404 for out-of-scope and unknown cases,
and the login redirect."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from protocol.calendar import CST
from tests.hub.case_helpers import (
    NOW,
    RECEIVED,
    SITE_A,
    SITE_B,
    cells,
    fetch,
    make_world,
    ms,
    wd_after,
    wd_between,
)
from tests.hub.hubapp import close, served


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    yield w
    close(w[0])


def test_deadlines_count_working_days_as_chinese_calendar_does(world):
    hub, _a, case, _ = world
    ((st, body, _h), (sp, page, _)) = fetch(hub, "admin1", f"/api/cases/{case}", f"/cases/{case}")
    assert st == 200 and sp == 200
    got = {d["kind"]: d for d in body["clock"]["deadlines"]}
    accepted, today = RECEIVED.date(), NOW.date()
    promised_due, legal_due = wd_after(accepted, 10), wd_after(accepted, 20)  # XK-001: promised 10, legal 20
    assert got["promised"]["due"] == promised_due.isoformat()
    assert got["legal"]["due"] == legal_due.isoformat()
    assert got["acceptance"]["due"] == wd_after(accepted, 5).isoformat()
    assert got["acceptance"]["state_zh"] == "按期完成" and got["acceptance"]["elapsed"] == 0
    assert got["promised"]["elapsed"] == wd_between(accepted, today)
    assert today < promised_due and got["promised"]["remaining"] == wd_between(today, promised_due)
    assert got["promised"]["overdue"] == 0
    assert got["legal"]["remaining"] == wd_between(today, legal_due) and got["legal"]["overdue"] == 0
    rows = cells(page, "data-deadline")
    assert promised_due.isoformat() in rows["promised"] and "承诺时限" in rows["promised"]
    assert f"剩余 {wd_between(today, legal_due)} 个工作日" in rows["legal"]


def test_suspensions_and_extensions_are_listed_with_their_reasons(world):
    hub, a, case, _ = world
    s_at, r_at = datetime(2026, 10, 9, 10, tzinfo=CST), datetime(2026, 10, 13, 16, tzinfo=CST)
    a.event(case, "suspend", s_at, procedure="检测", reason="送省质检院检测")
    a.event(case, "resume", r_at)
    a.event(case, "extend", datetime(2026, 10, 14, 9, tzinfo=CST), days=10, reason="情况复杂", approver="王局长")
    ((st, body, _h), (_, page, _)) = fetch(hub, "admin1", f"/api/cases/{case}", f"/cases/{case}")
    (s,) = body["clock"]["suspensions"]
    assert (s["procedure"], s["reason"], s["ongoing"]) == ("检测", "送省质检院检测", False)
    assert s["working_days"] == wd_between(s_at.date(), r_at.date())
    (e,) = body["clock"]["extensions"]
    assert (e["days"], e["reason"], e["approver"]) == (10, "情况复杂", "王局长")
    assert "送省质检院检测" in page and "情况复杂" in page and "王局长" in page
    kinds = [x["type"] for x in body["timeline"] if x["kind"] == "case.event"]
    assert kinds == ["accept", "suspend", "resume", "extend"]


def test_timeline_in_chain_order_and_a_tampered_record_shows_a_cross(world):
    hub, a, case, _ = world
    later = a.event(case, "step", datetime(2026, 10, 12, 9, tzinfo=CST), step="现场核查")
    (_, body, _), (_, page, _) = fetch(hub, "sup", f"/api/cases/{case}", f"/cases/{case}")
    seqs = [x["seq"] for x in body["timeline"]]
    assert seqs == [1, 2, later] and [x["what_zh"] for x in body["timeline"]] == ["收件登记", "受理", "办理环节"]
    assert all(x["chain"] == "ok" and x["chain_mark"] == "✓" for x in body["timeline"]) and body["chain_ok"]
    assert [x["clock_zh"] for x in body["timeline"]] == ["NTP 同步（可信）"] * 3
    assert body["timeline"][0]["at"].startswith("2026-09-28T09:00") and "2026-09-28 09:00" in page
    assert "记录链校验通过" in page and f"{SITE_A}便民服务中心" in page  # the site by its name
    # someone with the database edits the acceptance record's bytes (its time) after ingest
    data = bytes(hub.reader.execute("SELECT data FROM records WHERE site=? AND seq=2", (SITE_A,)).fetchone()[0])
    forged = data.replace(b"2026-09-28T10:00", b"2026-09-28T08:00")
    assert forged != data
    hub.write(lambda c: c.execute("UPDATE records SET data=? WHERE site=? AND seq=2", (forged, SITE_A)))
    (_, body, _), (_, page, _) = fetch(hub, "sup", f"/api/cases/{case}", f"/cases/{case}")
    marks = {x["seq"]: (x["chain"], x["chain_zh"]) for x in body["timeline"]}
    assert marks[2][0] == "broken" and "哈希值不符" in marks[2][1]
    assert marks[1][0] == "ok" and marks[later][0] == "ok" and not body["chain_ok"]
    rows = cells(page, "data-seq")
    assert "✗" in rows["2"] and "✓" in rows["1"] and "记录链校验未通过" in page
    # ... and writes a matching hash beside it: then the next record no longer links to it
    new_hash = hashlib.sha256(forged).digest()
    hub.write(lambda c: c.execute("UPDATE records SET hash=? WHERE site=? AND seq=2", (new_hash, SITE_A)))
    ((_, body, _),) = fetch(hub, "sup", f"/api/cases/{case}")
    marks = {x["seq"]: (x["chain"], x["chain_zh"]) for x in body["timeline"]}
    assert marks[2][0] == "ok" and marks[later][0] == "broken" and "不相连" in marks[later][1]


@pytest.mark.parametrize(
    "login, name, id_no, phone",
    [
        ("admin1", "张三丰", "140702199001011234", "13812345678"),
        ("dept", "张三丰", "140702199001011234", "13812345678"),
        ("sup", "张**", "140***********1234", "138****5678"),
    ],
)
def test_personal_data_by_role(world, login, name, id_no, phone):
    hub, _a, case, _ = world
    (_, body, _), (_, page, _) = fetch(hub, login, f"/api/cases/{case}", f"/cases/{case}")
    assert body["applicant"]["name"] == name and body["applicant"]["id_no"] == id_no
    assert body["applicant"]["phone"] == phone
    assert f'id="applicant">{name}<' in page and f'id="phone">{phone}<' in page
    if login == "sup":
        assert "张三丰" not in str(body) and "13812345678" not in page and body["personal_data"] == "masked"


def test_viewer_cannot_open_a_case(world):
    hub, _a, case, _ = world
    (sa, body, _), (sp, page, _) = fetch(hub, "wall", f"/api/cases/{case}", f"/cases/{case}")
    assert sa == 403 and "无权访问" in body["error"]
    assert sp == 403 and "无权访问" in page and "张三" not in page


def test_out_of_scope_case_is_the_same_404_as_an_unknown_one(world):
    hub, _a, case, other = world
    unknown = f"{SITE_B}-20261120-0999"
    got = fetch(hub, "sup-b", f"/cases/{case}", f"/cases/{unknown}", f"/api/cases/{case}", f"/api/cases/{unknown}",
                f"/cases/{other}")  # fmt: skip
    (s1, p1, _), (s2, p2, _), (s3, j1, _), (s4, j2, _), (s5, own, _) = got
    assert (s1, s2, s3, s4, s5) == (404, 404, 404, 404, 200)
    assert p1 == p2 and "不在您的管辖范围内" in p1 and "<html" in p1 and case not in p1
    assert j1 == j2 and "error" in j1
    assert other in own


def test_not_logged_in_goes_to_login_and_comes_back(world):
    hub, _a, case, _ = world
    ((st, _body, headers),) = fetch(hub, None, f"/cases/{case}?x=1")
    loc = urlsplit(headers["Location"])
    assert st == 303 and loc.path == "/login" and parse_qs(loc.query) == {"next": [f"/cases/{case}?x=1"]}
    ((st, body, _),) = fetch(hub, None, f"/api/cases/{case}")
    assert st == 401 and "error" in body

    async def login_then_follow():
        from tests.hub.accounts_helpers import PASSWORD

        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with served(hub) as (base, _app), aiohttp.ClientSession(cookie_jar=jar) as s:
            async with s.get(base + headers["Location"]) as r:
                html = await r.text()
            token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
            nxt = re.search(r'name="next" value="([^"]+)"', html).group(1)
            form = {"login": "sup", "password": PASSWORD, "csrf": token, "next": nxt}
            async with s.post(base + "/login", data=form, headers={"Origin": base}, allow_redirects=False) as r:
                return nxt, r.status, r.headers["Location"]

    assert asyncio.run(login_then_follow()) == (f"/cases/{case}?x=1", 302, f"/cases/{case}?x=1")
    # another site is never a place to go after login
    from hub.web_auth import safe_next

    assert [safe_next(x) for x in ("//evil.example/", "https://evil.example/", "/\\evil", "/ok")] == [
        "/",
        "/",
        "/",
        "/ok",
    ]


def test_votes_of_the_case_are_on_the_page_and_in_the_chain(world):
    hub, a, case, _ = world
    at = datetime(2026, 10, 13, 11, tzinfo=CST)
    vote = {"case_no": case, "window": "3", "staff": "赵六", "key": "1", "level": 1, "level_name": "非常满意",
            "mapping_version": "v1", "pressed_wall_ms": ms(at)}  # fmt: skip
    from protocol.models import VoteCast

    body = VoteCast.model_validate(vote).model_dump(mode="json", exclude_none=True)
    (seq,) = a.send(("vote", body, at))
    (_, got, _), (_, page, _) = fetch(hub, "admin1", f"/api/cases/{case}", f"/cases/{case}")
    assert [x["seq"] for x in got["timeline"]][-1] == seq and got["timeline"][-1]["what_zh"] == "评价：非常满意"
    assert got["timeline"][-1]["chain"] == "ok" and "非常满意" in page


def test_an_overdue_case_counts_its_working_days_late_and_a_deemed_acceptance_says_so(world):
    hub, a, _case, other = world
    received = datetime(2026, 9, 1, 9, tzinfo=CST)  # accepted at once; due long before NOW
    late = a.register(3, received)
    a.event(late, "accept", received + timedelta(minutes=20))
    (_, body, _), (_, page, _), (_, b, _) = fetch(hub, "admin1", f"/api/cases/{late}", f"/cases/{late}",
                                                  f"/api/cases/{other}")  # fmt: skip
    got = {d["kind"]: d for d in body["clock"]["deadlines"]}
    due = wd_after(received.date(), 10)
    overdue = wd_between(due, NOW.date())  # across the National Day holidays and their make-up days
    assert got["promised"]["due"] == due.isoformat() and got["promised"]["overdue"] == overdue > 5
    assert got["promised"]["remaining"] == 0 and f"已超期 {overdue} 个工作日" in page
    assert body["light"] == "red"
    # site B's case was never accepted: deemed accepted on the receipt day when its 5 days ran out
    acc = {d["kind"]: d for d in b["clock"]["deadlines"]}["acceptance"]
    assert acc["due"] == wd_after(RECEIVED.date(), 5).isoformat() and "视为" in acc["state_zh"]
