"""Roles and scope on every route of the hub (hub/access.py), on both store engines.

The table below is written here, apart from the code's: every route of the real app is walked
with every kind of actor, and the set of actors let through must be the one written here. A
new route without a rule in hub/access.py is refused for everyone (and fails this test until
both tables name it)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import aiohttp
import pytest

from hub.api import create_app
from hub.app import start_http
from protocol.calendar import CST
from tests.craft import registration
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.hubapp import close, provisioned_hub, served

SITE_A, SITE_B = "140702-001", "140703-001"  # two counties of one city
CASE_A, CASE_B = f"{SITE_A}-20261120-0001", f"{SITE_B}-20261120-0001"
DEPT_A, DEPT_B = "市场监督管理局", "自然资源局"
DEPT_TOKEN = "t" * 40

PUBLIC = {"anonymous", "admin", "supervisor", "department", "viewer", "token", "dept_token"}
LOGGED_IN = PUBLIC - {"anonymous"}
ADMIN = {"admin", "token"}
SUPERVISOR = {"supervisor"}
DEPARTMENT = {"department", "dept_token"}
VIEWER = {"viewer"}
EXPECTED = {
    ("GET", "/"): PUBLIC,
    ("GET", "/public"): PUBLIC,
    ("GET", "/calendar"): PUBLIC,
    ("GET", "/site"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/api/public/cases/{case_no}"): PUBLIC,
    ("GET", "/public/items/{code}"): PUBLIC,
    ("POST", "/public/rating"): PUBLIC,
    ("GET", "/public/results"): PUBLIC,
    ("GET", "/public/forms/{name}"): PUBLIC,
    ("GET", "/api/public/items"): PUBLIC,
    ("GET", "/api/public/items/{code}"): PUBLIC,
    ("POST", "/api/public/cases/{case_no}/rating"): PUBLIC,
    ("GET", "/api/public/results"): PUBLIC,
    ("GET", "/api/public/openapi.json"): PUBLIC,
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/logout"): LOGGED_IN,
    ("GET", "/api/me"): LOGGED_IN,
    ("GET", "/api/cases"): LOGGED_IN,
    ("GET", "/api/cases/{case_no}"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("GET", "/api/sites"): ADMIN | SUPERVISOR | VIEWER,
    ("GET", "/api/alerts"): ADMIN | SUPERVISOR | VIEWER,
    ("GET", "/api/cards"): LOGGED_IN,
    ("GET", "/api/wall"): LOGGED_IN,
    ("GET", "/api/events/wall"): LOGGED_IN,
    ("GET", "/api/tickets"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("GET", "/api/tickets/{id}"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("POST", "/api/tickets/{id}/reply"): ADMIN | DEPARTMENT,
    ("POST", "/api/tickets/{id}/review"): ADMIN | SUPERVISOR,
    ("POST", "/api/cases/{case_no}/tickets"): ADMIN | SUPERVISOR,
    ("GET", "/api/documents"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("GET", "/api/documents/{id}.pdf"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("GET", "/cases/{case_no}"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("POST", "/cases/{case_no}/tickets"): ADMIN | SUPERVISOR,
    ("GET", "/tickets"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("POST", "/tickets/{id}/reply"): ADMIN | DEPARTMENT,
    ("POST", "/tickets/{id}/review"): ADMIN | SUPERVISOR,
    ("GET", "/api/calendar"): ADMIN | SUPERVISOR,
    ("POST", "/api/calendar"): ADMIN,
    ("GET", "/api/sites/{code}"): ADMIN | SUPERVISOR,
    ("GET", "/api/sites/{code}/votes"): ADMIN | SUPERVISOR,
    ("GET", "/api/sites/{code}/snapshots/{seq}.jpg"): ADMIN | SUPERVISOR,
    ("POST", "/api/sites/{code}/sign"): ADMIN | SUPERVISOR,
    ("GET", "/api/sites/{code}/signs/{window}.png"): ADMIN | SUPERVISOR | VIEWER,
    ("POST", "/api/sites/{code}/clips"): ADMIN | SUPERVISOR,
    ("GET", "/api/clips"): ADMIN | SUPERVISOR,
    ("GET", "/api/clips/{clip_id}.mp4"): ADMIN | SUPERVISOR,
    ("DELETE", "/api/clips/{clip_id}"): ADMIN,
    ("GET", "/public/complaints"): PUBLIC,
    ("POST", "/public/complaints"): PUBLIC,
    ("GET", "/public/complaints/{no}"): PUBLIC,
    ("POST", "/public/complaints/{no}/confirm"): PUBLIC,
    ("POST", "/public/complaints/{no}/reopen"): PUBLIC,
    ("POST", "/api/public/complaints"): PUBLIC,
    ("GET", "/api/public/complaints/{no}"): PUBLIC,
    ("POST", "/api/public/complaints/{no}/confirm"): PUBLIC,
    ("POST", "/api/public/complaints/{no}/reopen"): PUBLIC,
    ("GET", "/complaints"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("POST", "/complaints/{no}/accept"): ADMIN | SUPERVISOR,
    ("POST", "/complaints/{no}/refuse"): ADMIN | SUPERVISOR,
    ("POST", "/complaints/{no}/assign"): ADMIN | SUPERVISOR,
    ("POST", "/complaints/{no}/reply"): ADMIN | DEPARTMENT,
    ("GET", "/api/complaints"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("GET", "/api/complaints/{no}"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("POST", "/api/complaints/{no}/accept"): ADMIN | SUPERVISOR,
    ("POST", "/api/complaints/{no}/refuse"): ADMIN | SUPERVISOR,
    ("POST", "/api/complaints/{no}/assign"): ADMIN | SUPERVISOR,
    ("POST", "/api/complaints/{no}/reply"): ADMIN | DEPARTMENT,
    ("GET", "/api/users"): ADMIN,
    ("POST", "/api/users"): ADMIN,
    ("POST", "/api/users/{login}/disable"): ADMIN,
    ("POST", "/api/users/{login}/reset"): ADMIN,
    ("GET", "/api/audit"): ADMIN,
    ("GET", "/api/followups"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("GET", "/api/followups/{id}"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("POST", "/api/followups/{id}/{action}"): ADMIN | DEPARTMENT,  # action=verify: the department's step
    ("GET", "/followups"): ADMIN | SUPERVISOR | DEPARTMENT,
    ("POST", "/followups/{id}/{action}"): ADMIN | DEPARTMENT,
    ("POST", "/api/followups/{id}/assign"): ADMIN | SUPERVISOR,  # a follow-up without a department
    ("POST", "/followups/{id}/assign"): ADMIN | SUPERVISOR,
    ("GET", "/api/scores"): LOGGED_IN,  # each role sees its part (tests/hub/test_scores_http.py)
    ("GET", "/scores"): LOGGED_IN,
    ("POST", "/scores/manual"): ADMIN | SUPERVISOR,
    ("POST", "/scores/close"): ADMIN | SUPERVISOR,
    ("GET", "/public/scores"): PUBLIC,
    ("GET", "/api/public/scores"): PUBLIC,
    ("GET", "/api/stats"): LOGGED_IN,  # every role: the figures of its own scope
    ("GET", "/api/stats/export"): LOGGED_IN,
    ("GET", "/stats"): LOGGED_IN,
    ("GET", "/stats/bulletin.pdf"): ADMIN | SUPERVISOR,  # issues a numbered document
    ("GET", "/levels"): LOGGED_IN,  # a parent's walls: counts and case summaries, no personal data
    ("GET", "/api/levels"): LOGGED_IN,
    ("GET", "/levels/{child}"): LOGGED_IN,
    ("GET", "/levels/{child}/cards/{seq}"): LOGGED_IN,
}
PARAMS = {
    "case_no": CASE_A,
    "code": SITE_A,
    "seq": "1",
    "window": "1",
    "clip_id": f"{SITE_A}-c1-1790000000000",
    "login": "ghost",
    "filename": "style.css",
    "no": "TS20261207000001",  # a complaint of site A's case, department A (seed)
    "action": "verify",
    "name": "form.pdf",
    "child": "hub-140702",
}


def _case(c, case_no, site, dept, light="red"):
    reg = registration(site, 1)
    reg["case_no"] = case_no
    c.execute(
        "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, "
        "reg_seq, reg_json, status, light, due_date, red_cards) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (case_no, site, "XK-001", "食品经营许可", dept, reg["query_code"], reg["received_at"], 1,
         json.dumps(reg, ensure_ascii=False), "received", light, "2026-12-04", 1),
    )  # fmt: skip


def seed(hub) -> dict[str, int]:
    """A case and an open ticket in each county (departments A and B); both sites online."""

    def write(c):
        _case(c, CASE_A, SITE_A, DEPT_A)
        _case(c, CASE_B, SITE_B, DEPT_B)
        for site in (SITE_A, SITE_B):
            c.execute(
                "INSERT INTO sites (code, online, last_seen_ms) VALUES (?, 1, ?)", (site, int(time.time() * 1000))
            )
        at = datetime(2026, 12, 7, 9, tzinfo=CST)
        c.execute(
            "INSERT INTO complaints (complaint_no, query_code, about_kind, about, site, department, text, "
            "contact_name, status, filed_ms, updated_ms) VALUES ('TS20261207000001', 'ABCDEFGH', 'case', ?, ?, ?, "
            "'t', '张三', 'submitted', 1, 1)",
            (CASE_A, SITE_A, DEPT_A),
        )
        return {
            "A": hub.supervisor.open_ticket(c, CASE_A, "duban", "监察员", at, reason="t"),
            "B": hub.supervisor.open_ticket(c, CASE_B, "duban", "监察员", at, reason="t"),
        }

    return hub.write(write)


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=(SITE_A, SITE_B), store_url=store_url)
    h.cfg.api.department_tokens[DEPT_A] = DEPT_TOKEN
    h.link.publish = lambda *a, **k: None  # no broker
    make_user(h, "admin1", "admin")
    make_user(h, "sup", "supervisor")
    make_user(h, "sup-a", "supervisor", "140702")
    make_user(h, "dept-a", "department", DEPT_A)
    make_user(h, "wall", "viewer")
    make_user(h, "wall-a", "viewer", "140702")
    yield h
    close(h)


def _headers(hub, actor: str, base: str) -> dict:
    logins = {"admin": "admin1", "supervisor": "sup", "department": "dept-a", "viewer": "wall"}
    if actor in logins:
        return cookie_headers(open_session(hub, logins[actor]), base)
    if actor == "token":
        return {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
    if actor == "dept_token":
        return {"Authorization": f"Bearer {DEPT_TOKEN}"}
    return {"Origin": base}


def test_every_route_lets_through_exactly_the_roles_in_the_table(hub):
    tickets = seed(hub)
    params = {**PARAMS, "id": str(tickets["A"])}

    answers: dict[tuple, tuple[int, str]] = {}  # (route, actor) → (status, start of the body): for a failure

    async def go():
        got: dict[tuple[str, str], set[str]] = {}
        async with served(hub) as (base, app), aiohttp.ClientSession() as s:
            for route in app.router.routes():
                if route.method == "HEAD":
                    continue  # follows GET (hub.access.rule_for)
                key = (route.method, route.resource.canonical)
                names = {k: v for k, v in params.items() if "{" + k + "}" in key[1]}
                if key[1] == "/static":
                    names = {"filename": "style.css"}
                url = base + str(route.resource.url_for(**names))
                for actor in sorted(PUBLIC):
                    headers = _headers(hub, actor, base)
                    kwargs = {"json": {}}
                    if key == ("POST", "/login"):  # a form with a matching CSRF pair and a wrong password
                        headers["Cookie"] = "jc_login_csrf=" + "c" * 43
                        kwargs = {"data": {"login": "nobody", "password": "x" * 12, "csrf": "c" * 43}}
                    async with s.request(route.method, url, headers=headers, allow_redirects=False, **kwargs) as r:
                        assert r.status < 500, (key, actor, r.status, await r.text())
                        to_login = r.status == 303 and r.headers["Location"].startswith("/login?")  # pages
                        live = r.content_type == "text/event-stream"  # a stream never ends: its status will do
                        answers[(key, actor)] = (r.status, "" if live else (await r.text())[:300])
                        if r.status not in (401, 403) and not to_login:
                            got.setdefault(key, set()).add(actor)
                got.setdefault(key, set())
        return got

    got = asyncio.run(go())
    assert set(got) == set(EXPECTED), f"routes without an expectation here: {set(got) ^ set(EXPECTED)}"
    wrong = {k: (sorted(got[k]), sorted(EXPECTED[k])) for k in EXPECTED if got[k] != EXPECTED[k]}
    why = {(k, a): answers.get((k, a)) for k in wrong for a in set(got[k]) ^ EXPECTED[k]}
    assert not wrong, f"(got, expected) let through: {wrong}; the answers that differ: {why}"


def test_a_route_without_a_rule_is_refused_even_for_the_admin(hub):
    async def go():
        app = create_app(hub, hub.reader, hub.cfg.api.admin_token)

        async def new_thing(request):
            return aiohttp.web.json_response({"leak": True})

        app.router.add_get("/api/new-thing", new_thing)
        runner, port = await start_http(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as s:
                h = {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
                async with s.get(f"http://127.0.0.1:{port}/api/new-thing", headers=h) as r:
                    return r.status, await r.json()
        finally:
            await runner.cleanup()

    status, body = asyncio.run(go())
    assert status == 403 and "未配置访问规则" in body["error"] and "leak" not in body


def _get(hub, actor_login: str | None, paths: list[str], *, token: str | None = None):
    async def go():
        out = []
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            headers = (
                {"Authorization": f"Bearer {token}"} if token else cookie_headers(open_session(hub, actor_login), base)
            )
            for p in paths:
                async with s.get(base + p, headers=headers) as r:
                    out.append((r.status, await r.json() if r.content_type == "application/json" else None))
        return out

    return asyncio.run(go())


def test_a_county_supervisor_sees_only_its_county(hub):
    t = seed(hub)
    got = _get(
        hub,
        "sup-a",
        [
            "/api/cases",
            f"/api/cases/{CASE_A}",
            f"/api/cases/{CASE_B}",
            "/api/tickets",
            f"/api/tickets/{t['B']}",
            "/api/sites",
            f"/api/sites/{SITE_B}",
            f"/api/sites/{SITE_A}",
            "/api/cards",
        ],
    )
    (s1, cases), (s2, _), (s3, b), (s4, tickets), (s5, _), (s6, sites), (s7, _), (s8, _), (s9, cards) = got
    assert s1 == 200 and [c["case_no"] for c in cases["cases"]] == [CASE_A] and cases["total"] == 1
    assert s2 == 200
    assert s3 == 404 and "管辖范围" in b["error"]  # another county's case: as if it did not exist
    assert s4 == 200 and [x["id"] for x in tickets] == [t["A"]]
    assert s5 == 404
    assert s6 == 200 and [x["code"] for x in sites] == [SITE_A]
    assert s7 == 404 and s8 == 200
    assert s9 == 200 and [c["department"] for c in cards] == [DEPT_A]
    # the whole city's supervisor sees both
    (st, all_cases), (st2, _) = _get(hub, "sup", ["/api/cases", f"/api/cases/{CASE_B}"])
    assert st == 200 and all_cases["total"] == 2 and st2 == 200


def test_a_county_supervisor_cannot_act_on_another_countys_case(hub):
    t = seed(hub)

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, "sup-a"), base)
            body = {"decision": "reject", "actor": "监察员", "text": "x"}
            async with s.post(f"{base}/api/tickets/{t['B']}/review", json=body, headers=h) as r:
                review_b = r.status
            body = {"level": "duban", "actor": "监察员", "text": "超期"}
            async with s.post(f"{base}/api/cases/{CASE_B}/tickets", json=body, headers=h) as r:
                open_b = r.status
            async with s.post(f"{base}/api/sites/{SITE_B}/sign", json={"window": "1", "text": "x"}, headers=h) as r:
                sign_b = r.status
            async with s.post(f"{base}/api/sites/{SITE_A}/sign", json={"window": "1", "text": "x"}, headers=h) as r:
                sign_a = r.status
        return review_b, open_b, sign_b, sign_a

    assert asyncio.run(go()) == (404, 404, 404, 202)


def test_a_department_officer_reaches_only_its_department(hub):
    t = seed(hub)
    got = _get(hub, "dept-a", ["/api/cases", f"/api/cases/{CASE_B}", "/api/tickets", f"/api/tickets/{t['B']}"])
    assert got[0][0] == 200 and [c["case_no"] for c in got[0][1]["cases"]] == [CASE_A]
    assert got[1][0] == 404
    assert got[2][0] == 200 and [x["id"] for x in got[2][1]] == [t["A"]]
    assert got[3][0] == 404
    # the department's machine token gets the same scope
    got = _get(hub, None, ["/api/cases", f"/api/cases/{CASE_B}", "/api/sites"], token=DEPT_TOKEN)
    assert [c["case_no"] for c in got[0][1]["cases"]] == [CASE_A] and got[1][0] == 404 and got[2][0] == 403
    assert "无权访问" in got[2][1]["error"]


def test_a_viewer_reads_the_wall_of_its_scope_only(hub):
    seed(hub)
    got = _get(hub, "wall-a", ["/api/cases", "/api/sites", "/api/alerts", f"/api/cases/{CASE_A}"])
    assert [c["case_no"] for c in got[0][1]["cases"]] == [CASE_A]
    assert [x["code"] for x in got[1][1]] == [SITE_A]
    assert got[2][0] == 200
    assert got[3][0] == 403  # the single case view carries personal data: not for the wall
