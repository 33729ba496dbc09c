"""督办 in the browser without JavaScript, on both store engines: a supervisor opens a ticket by
hand on the case page; the department sees it on /tickets with its reply deadline (working days
left, against chinese_calendar) and replies; the supervisor rejects with text (the next level
opens with that text), then accepts. Forms need the session's CSRF token; rule errors show in
Chinese; ticket actors come from the session, never from the body; documents download with their
number as the file name."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from urllib.parse import unquote

import aiohttp
import pytest

from hub.documents import DocumentStore
from hub.supervision import ticket_view
from tests.hub.accounts_helpers import cookie_headers, open_session
from tests.hub.case_helpers import NOW, make_world, wd_after, wd_between
from tests.hub.hubapp import close, served


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    yield w
    close(w[0])


class Browser:
    """One logged-in person's forms over HTTP, as a browser without JavaScript sends them."""

    def __init__(self, hub, login: str, s: aiohttp.ClientSession, base: str):
        self.sess = open_session(hub, login)
        self.s, self.base = s, base
        self.headers = cookie_headers(self.sess, base, csrf=False)  # cookie and Origin only

    async def get(self, path: str) -> tuple[int, str]:
        async with self.s.get(self.base + path, headers=self.headers, allow_redirects=False) as r:
            return r.status, await r.text()

    async def post(self, path: str, form: dict, *, csrf: bool = True) -> tuple[int, str, str]:
        data = {**form, **({"csrf": self.sess["csrf"]} if csrf else {})}
        async with self.s.post(self.base + path, data=data, headers=self.headers, allow_redirects=False) as r:
            return r.status, r.headers.get("Location", ""), await r.text()


def _ticket_ids(hub, case_no: str) -> list[int]:
    return [r[0] for r in hub.reader.execute("SELECT id FROM tickets WHERE case_no=? ORDER BY id", (case_no,))]


def _fresh_case(a) -> str:
    """A case received and accepted an hour before NOW: green, no ticket yet."""
    case = a.register(2, NOW - timedelta(hours=1))
    a.event(case, "accept", NOW - timedelta(minutes=30))
    return case


def _article(page: str, tid: int) -> str:
    m = re.search(rf'<article class="ticket [a-z]+" id="t{tid}".*?</article>', page, re.S)
    assert m, f"ticket {tid} not on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m.group(0)))


def test_open_reply_reject_reply_accept_through_the_forms(world):
    hub, a, _case, _ = world
    case = _fresh_case(a)

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            sup, dept = Browser(hub, "sup", s, base), Browser(hub, "dept", s, base)
            # without the form's CSRF token: refused, nothing opened
            st, _loc, page = await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": "x"}, csrf=False)
            assert st == 403 and "CSRF" in page and "<html" in page and _ticket_ids(hub, case) == []
            # an empty reason: the case page again with the reason it was refused
            st, _loc, page = await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": "  "})
            assert st == 422 and "请填写督办事由" in page
            form = {"level": "order_explain", "reason": "超过承诺时限未办结，请说明理由", "actor": "冒名顶替"}
            st, loc, _ = await sup.post(f"/cases/{case}/tickets", form)
            assert st == 303 and loc.endswith("?ok=opened#tickets")
            (tid,) = _ticket_ids(hub, case)
            st, page = await sup.get(loc.split("#")[0])
            assert st == 200 and "已发起督办" in page and "责令说明理由" in page and "发起督办（人工督办）" not in page
            t = ticket_view(hub.reader, tid)
            assert t["actor"] == "sup" and "冒名顶替" not in str(t)  # the session's account, not the form
            # a second one while it is open: refused in Chinese
            st, _loc, page = await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": "再次"})
            assert st == 409 and "已有在办督办件" in page

            # the department sees it with its reply deadline and replies
            due = wd_after(NOW.date(), hub.cfg.supervision.reply_days)
            st, page = await dept.get("/tickets?status=open")
            text = _article(page, tid)
            assert st == 200 and due.isoformat() in text and f"剩余 {wd_between(NOW.date(), due)} 个工作日" in text
            assert t["reply_due"] == due.isoformat()
            st, _loc, page = await dept.post(f"/tickets/{tid}/reply", {"text": ""})
            assert st == 422 and "请填写回复内容" in page
            st, loc, _ = await dept.post(f"/tickets/{tid}/reply", {"text": "材料补正中，本周办结"})
            assert st == 303 and loc == f"/tickets?ok=replied#t{tid}"
            st, _loc, page = await dept.post(f"/tickets/{tid}/reply", {"text": "再回复一次"})
            assert st == 409 and "不能回复" in page  # the ticket's rule, in Chinese
            st, _loc, page = await dept.post(f"/tickets/{tid}/review", {"decision": "accept"})
            assert st == 403 and "无权访问" in page  # departments do not review

            # the supervisor rejects: text required; the next level opens with it
            st, _loc, page = await sup.post(f"/tickets/{tid}/review", {"decision": "reject", "text": ""})
            assert st == 422 and "请填写审核意见" in page
            st, loc, _ = await sup.post(f"/tickets/{tid}/review", {"decision": "reject", "text": "理由不充分"})
            assert st == 303 and "ok=rejected" in loc
            st, page = await sup.get(loc.split("#")[0])
            assert "已退回" in page
            assert ticket_view(hub.reader, tid)["status"] == "escalated"
            (_, nxt) = _ticket_ids(hub, case)
            st, page = await dept.get("/tickets")
            assert "理由不充分" in _article(page, nxt) and f'action="/tickets/{nxt}/reply"' in page
            await dept.post(f"/tickets/{nxt}/reply", {"text": "已办结，附办结单"})
            st, loc, _ = await sup.post(f"/tickets/{nxt}/review", {"decision": "accept", "text": "同意"})
            assert st == 303 and "ok=accepted" in loc
            final = ticket_view(hub.reader, nxt)
            assert final["status"] == "accepted"
            assert [(e["actor"], e["action"]) for e in final["events"]] == [
                ("sup", "open"),
                ("dept", "reply"),
                ("sup", "accept"),
            ]

    asyncio.run(go())


def test_api_ticket_actor_is_the_session_account_and_a_token_may_name_its_person(world):
    hub, a, _case, _ = world
    case = _fresh_case(a)

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, "sup"), base)
            body = {"level": "duban", "actor": "别人", "text": "超期"}
            async with s.post(f"{base}/api/cases/{case}/tickets", json=body, headers=h) as r:
                assert r.status == 201, await r.text()
                tid = (await r.json())["id"]
            h = cookie_headers(open_session(hub, "dept"), base)
            async with s.post(f"{base}/api/tickets/{tid}/reply", json={"actor": "别人", "text": "好"}, headers=h) as r:
                assert r.status == 201
            h = {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
            body = {"decision": "accept", "actor": "李监察", "text": "可"}
            async with s.post(f"{base}/api/tickets/{tid}/review", json=body, headers=h) as r:
                assert r.status == 201
            return tid

    tid = asyncio.run(go())
    events = ticket_view(hub.reader, tid)["events"]
    assert [e["actor"] for e in events] == ["sup", "dept", "token:admin/李监察"]


def test_documents_download_with_their_number_as_the_file_name(world):
    hub, a, _case, _ = world
    case = _fresh_case(a)
    hub.docs.prefix = "晋中监察"
    hub.write(lambda c: hub.supervisor.open_ticket(c, case, "duban", "sup", NOW, reason="超期"))
    issued = hub.docs.run_once(hub.writer, DocumentStore(hub.writer, files_dir=hub.docs.files_dir), NOW)
    assert issued >= 1  # (and those of the red cards the other cases got at ingest)
    (doc,) = DocumentStore(hub.reader, ensure_schema=False).list(case)
    assert re.fullmatch(r"晋中监察〔2026〕\d+号", doc["number"])

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, "sup"), base)
            async with s.get(f"{base}/api/documents/{doc['id']}.pdf", headers=h) as r:
                assert r.status == 200 and (await r.read()).startswith(b"%PDF")
                cd = r.headers["Content-Disposition"]
            async with s.get(f"{base}/cases/{case}", headers=h) as r:
                page = await r.text()
            return cd, page

    cd, page = asyncio.run(go())
    assert cd.startswith("attachment;") and cd.isascii()
    star = re.search(r"filename\*=UTF-8''(\S+)", cd).group(1)
    assert unquote(star) == doc["number"] + ".pdf"
    fallback = re.search(r'filename="([^"]+)"', cd).group(1)
    assert fallback.isascii() and fallback.endswith(".pdf") and str(doc["id"]) in fallback
    assert f'href="/api/documents/{doc["id"]}.pdf"' in page and doc["number"] in page


def test_text_from_people_is_escaped_on_the_pages(world):
    hub, a, _case, _ = world
    case = _fresh_case(a)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            sup, dept = Browser(hub, "sup", s, base), Browser(hub, "dept", s, base)
            st, _loc, _ = await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": evil})
            assert st == 303
            (tid,) = _ticket_ids(hub, case)
            await dept.post(f"/tickets/{tid}/reply", {"text": evil})
            return (await sup.get(f"/cases/{case}"))[1], (await sup.get("/tickets"))[1]

    for page in asyncio.run(go()):
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
