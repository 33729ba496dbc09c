"""投诉 over HTTP on both engines (hub/api_complaints.py): the citizen files and follows with a
number and a code (JSON and forms with their double-submit CSRF), the supervisor accepts and
assigns, the department replies on its page; contact details reach only admins and supervisors
in scope, never a public answer or the log; filing and guessing are rate-limited; operator
forms need the session's CSRF token; a county supervisor never sees another county's complaint."""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
import pytest

from hub.api import Limiter
from hub.api_complaints import FILING
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.case_helpers import DEPT, make_world
from tests.hub.hubapp import close, served

PHONE, EMAIL, NAME = "13912345678", "zhao@example.cn", "赵小明"


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    make_user(w[0], "sup-a", "supervisor", "140702")
    yield w
    close(w[0])


def filing(case_no: str) -> dict:
    return {"about_kind": "case", "about": case_no, "text": "材料齐全却让我跑了三趟", "contact_name": NAME,
            "contact_phone": PHONE, "contact_email": EMAIL}  # fmt: skip


async def _json(s, method, url, **kw):
    async with s.request(method, url, allow_redirects=False, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


def test_the_walk_over_the_json_api_and_who_sees_the_contact(world, caplog):
    hub, _a, case, _other = world
    caplog.set_level(logging.DEBUG)

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            st, body = await _json(s, "POST", base + "/api/public/complaints", json=filing(case))
            assert st == 201, body
            no, code = body["complaint_no"], body["query_code"]
            h = {who: cookie_headers(open_session(hub, who), base) for who in ("sup", "sup-b", "sup-a", "dept")}
            st, c = await _json(s, "GET", f"{base}/api/complaints/{no}", headers=h["sup"])
            assert st == 200 and c["contact_phone"] == PHONE and c["site"] == "140702-001" and c["department"] == DEPT
            st, _ = await _json(s, "GET", f"{base}/api/complaints/{no}", headers=h["sup-b"])
            assert st == 404  # another county's supervisor: as if it did not exist
            st, lst = await _json(s, "GET", base + "/api/complaints", headers=h["sup-b"])
            assert st == 200 and lst == []
            st, lst = await _json(s, "GET", base + "/api/complaints", headers=h["dept"])
            assert st == 200 and lst == []  # not yet assigned
            st, c = await _json(s, "POST", f"{base}/api/complaints/{no}/accept", json={}, headers=h["sup-a"])
            assert st == 200 and c["status"] == "accepted"
            st, c = await _json(s, "POST", f"{base}/api/complaints/{no}/reply", json={"text": "x"}, headers=h["sup"])
            assert st == 403  # a supervisor does not reply
            st, c = await _json(
                s, "POST", f"{base}/api/complaints/{no}/assign", json={"department": DEPT}, headers=h["sup"]
            )
            assert st == 200 and c["status"] == "assigned"
            st, lst = await _json(s, "GET", base + "/api/complaints", headers=h["dept"])
            assert st == 200 and [x["complaint_no"] for x in lst] == [no]
            assert "contact_phone" not in lst[0] and "contact_name" not in lst[0]
            st, c = await _json(
                s, "POST", f"{base}/api/complaints/{no}/reply", json={"text": "已约谈窗口人员"}, headers=h["dept"]
            )
            assert st == 200 and c["status"] == "replied" and PHONE not in str(c)
            assert c["events"][-1]["actor"] == "dept"  # from the session, never from the body
            # the citizen: wrong code, then the right one (lower case is fine)
            st, _ = await _json(s, "GET", f"{base}/api/public/complaints/{no}?code=WRONG123")
            assert st == 404
            st, pub = await _json(s, "GET", f"{base}/api/public/complaints/{no}?code={code.lower()}")
            assert st == 200 and pub["status"] == "replied" and pub["events"][-1]["text"] == "已约谈窗口人员"
            assert pub["events"][-1]["actor"] == "工作人员"
            assert PHONE not in str(pub) and NAME not in str(pub) and EMAIL not in str(pub) and "dept" not in str(pub)
            st, pub = await _json(
                s, "POST", f"{base}/api/public/complaints/{no}/reopen", json={"code": code, "text": "仍未解决"}
            )
            assert st == 200 and pub["status"] == "reopened"
            st, err = await _json(s, "POST", f"{base}/api/public/complaints/{no}/confirm", json={"code": code})
            assert st == 409 and "不能" in err["error"]
            st, err = await _json(s, "POST", f"{base}/api/public/complaints/{no}/confirm", json={"code": "NOPE"})
            assert st == 404

    asyncio.run(go())
    assert PHONE not in caplog.text and EMAIL not in caplog.text and NAME not in caplog.text


@pytest.mark.parametrize(
    "body, status, field",
    [
        ([1, 2], 400, None),
        ("[" * 5000, 400, None),
        ({"about_kind": "case"}, 422, "about"),
        ({**filing("X"), "text": "长" * 2001}, 422, "text"),
        ({**filing("X"), "contact_phone": "110"}, 422, "contact_phone"),
    ],
)
def test_a_bad_filing_gets_a_json_error(world, body, status, field):
    hub = world[0]

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            return await _json(s, "POST", base + "/api/public/complaints", json=body)

    st, err = asyncio.run(go())
    assert st == status and err["error"] and err.get("field") == field
    assert hub.reader.execute("SELECT count(*) FROM complaints").fetchone()[0] == 0


def test_filing_is_rate_limited_per_client(world):
    hub, _a, case, _ = world
    hub.cfg.complaints.per_client_per_hour = 2

    async def go():
        async with served(hub) as (base, app), aiohttp.ClientSession() as s:
            out = [(await _json(s, "POST", base + "/api/public/complaints", json=filing(case)))[0] for _ in range(4)]
            return out, len(app[FILING])

    got, tracked = asyncio.run(go())
    assert got == [201, 201, 429, 429] and tracked == 1
    assert hub.reader.execute("SELECT count(*) FROM complaints").fetchone()[0] == 2


def test_guessing_codes_spends_the_lookup_budget(world):
    hub = world[0]

    async def go():
        async with served(hub, limiter=Limiter(3, 60.0)) as (base, _app), aiohttp.ClientSession() as s:
            return [
                (await _json(s, "GET", f"{base}/api/public/complaints/TS20261014000001?code=AAAAAAA{i}"))[0]
                for i in range(5)
            ]

    assert asyncio.run(go()) == [404, 404, 404, 429, 429]


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_the_forms_citizen_supervisor_department(world):
    hub, _a, case, _ = world

    async def go():
        async with served(hub) as (base, _app):
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as citizen, aiohttp.ClientSession() as ops:
                async with citizen.get(base + "/public/complaints") as r:
                    assert r.status == 200 and "我要投诉" in (page := await r.text())
                    token = _csrf(page)
                form = {**filing(case), "csrf": token}
                async with citizen.post(base + "/public/complaints", data={**form, "csrf": "x" * 43}) as r:
                    assert r.status == 400 and "页面已过期" in await r.text()
                async with citizen.post(base + "/public/complaints", data={**form, "contact_phone": "1"}) as r:
                    assert r.status == 422 and "手机号码应为" in (page := await r.text()) and NAME in page
                async with citizen.post(base + "/public/complaints", data=form, headers={"Origin": base}) as r:
                    assert r.status == 200
                    page = await r.text()
                no = re.search(r'id="no" class="mono">([^<]+)<', page).group(1)
                code = re.search(r'id="code" class="mono">([^<]+)<', page).group(1)
                sup = open_session(hub, "sup")
                h = cookie_headers(sup, base, csrf=False)
                async with ops.get(base + "/complaints", headers=h) as r:
                    page = await r.text()
                    assert r.status == 200 and no in page and PHONE in page  # the supervisor sees the contact
                async with ops.post(f"{base}/complaints/{no}/accept", data={}, headers=h, allow_redirects=False) as r:
                    assert r.status == 403 and "CSRF" in await r.text()
                for action, data in (("accept", {}), ("assign", {"department": DEPT})):
                    async with ops.post(
                        f"{base}/complaints/{no}/{action}", data={**data, "csrf": sup["csrf"]}, headers=h,
                        allow_redirects=False,
                    ) as r:  # fmt: skip
                        assert r.status == 303 and r.headers["Location"].startswith(f"/complaints?ok={action}")
                dept = open_session(hub, "dept")
                hd = cookie_headers(dept, base, csrf=False)
                async with ops.get(base + "/complaints", headers=hd) as r:
                    page = await r.text()
                    assert no in page and PHONE not in page and NAME not in page and "答复期限" in page
                async with ops.post(
                    f"{base}/complaints/{no}/reply", data={"text": "", "csrf": dept["csrf"]}, headers=hd
                ) as r:
                    assert r.status == 409 and "请填写答复内容" in await r.text()
                async with ops.post(
                    f"{base}/complaints/{no}/reply", data={"text": "已整改", "csrf": dept["csrf"]}, headers=hd,
                    allow_redirects=False,
                ) as r:  # fmt: skip
                    assert r.status == 303
                async with citizen.get(f"{base}/public/complaints/go?no={no}&code={code}") as r:
                    page = await r.text()
                    assert r.status == 200 and "已整改" in page and PHONE not in page and "dept" not in page
                    token = _csrf(page)
                async with citizen.post(
                    f"{base}/public/complaints/{no}/confirm", data={"code": code, "csrf": token},
                    headers={"Origin": base}, allow_redirects=False,
                ) as r:  # fmt: skip
                    assert r.status == 303
                async with citizen.get(f"{base}/public/complaints/{no}?code={code}") as r:
                    assert 'data-status="closed"' in await r.text()

    asyncio.run(go())
