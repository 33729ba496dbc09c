"""Findings of the attacker's and user's review of the case page and the 督办 page, on both store
engines (docs/case-page.md "Review"): each test failed before its fix."""

from __future__ import annotations

import asyncio
import html
import re

import aiohttp
import pytest

from tests.hub.case_helpers import make_world
from tests.hub.hubapp import close, served
from tests.hub.test_ticket_pages import Browser, _fresh_case, _ticket_ids


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    yield w
    close(w[0])


def textarea(page: str, name: str) -> str:
    m = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert m, f"no textarea {name}"
    return html.unescape(m.group(1))


def test_a_long_text_with_line_breaks_the_form_allows_is_accepted(world):
    """A browser counts a line break as one character for maxlength but sends it as CR LF: a
    2,000-character reason of several lines must not be refused as too long."""
    hub, a, _case, _ = world
    case = _fresh_case(a)
    lines = ["超过承诺时限未办结，请说明理由" * 6] * 20  # 20 lines of 90 characters: 1,819 with LF
    typed = "\n".join(lines)
    sent = typed.replace("\n", "\r\n") + "。" * (2000 - len(typed))
    assert len(sent.replace("\r\n", "\n")) == 2000 < len(sent)

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            sup = Browser(hub, "sup", s, base)
            return await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": sent})

    st, _loc, page = asyncio.run(go())
    assert st == 303, page
    (tid,) = _ticket_ids(hub, case)
    reason = hub.reader.execute("SELECT reason FROM tickets WHERE id=?", (tid,)).fetchone()[0]
    assert "\r" not in reason and reason.count("\n") == 19


def test_a_refused_form_keeps_what_was_typed(world):
    """A refused 督办, reply or review shows the form again with the text in it (nothing to retype)."""
    hub, a, _case, _ = world
    case = _fresh_case(a)
    too_long = "请说明" * 700

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            sup, dept = Browser(hub, "sup", s, base), Browser(hub, "dept", s, base)
            st, _loc, page = await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": too_long})
            assert st == 422 and "过长" in page and textarea(page, "reason") == too_long
            st, _loc, _ = await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": "超期未办结"})
            (tid,) = _ticket_ids(hub, case)
            st, _loc, page = await dept.post(f"/tickets/{tid}/reply", {"text": too_long})
            assert st == 422 and textarea(page, "text") == too_long
            await dept.post(f"/tickets/{tid}/reply", {"text": "已办结"})
            st, _loc, page = await sup.post(f"/tickets/{tid}/review", {"decision": "maybe", "text": "再说明"})
            assert st == 422 and textarea(page, "text") == "再说明"

    asyncio.run(go())


def test_a_flood_of_made_up_login_names_does_not_lock_the_accounts_out(tmp_path, store_url):
    """Guesses under names that are no account's filled the login throttle's table (each took a
    per-login slot), after which every account without a slot of its own was refused through
    the flooders' overflow key, even with the right password. They now share one key."""
    from tests.hub.accounts_helpers import http_login, make_user
    from tests.hub.hubapp import provisioned_hub

    hub = provisioned_hub(tmp_path / "hub", store_url=store_url)
    hub.link.publish = lambda *a, **k: None  # no broker
    make_user(hub, "sup", "supervisor")
    hub.cfg.api.login_throttle.per_address = 10_000  # the one test address plays many
    hub.cfg.api.login_throttle.max_tracked = 100

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            for i in range(200):  # the last ones are refused together (429): the table is full
                r = await http_login(s, base, f"nobody{i}", "wrong-password-1")
                assert r.status in (302, 429)
            r = await http_login(s, base, "sup")
            return r.status, r.headers.get("Location")

    try:
        assert asyncio.run(go()) == (302, "/")
    finally:
        close(hub)


EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>javascript:alert(3)'


def test_strings_from_a_stolen_box_stay_text_on_the_case_and_ticket_pages(world):
    """A box's records are signed but their text is the box's: applicant, window, clerk, reasons,
    steps, approvers and actors crafted to break out of an element or attribute stay text."""
    from datetime import timedelta

    from tests.hub.case_helpers import NOW

    hub, a, _case, _ = world
    case = a.register(7, NOW - timedelta(hours=2), {"name": EVIL, "id_no": EVIL[:18], "phone": EVIL[:20]})
    a.event(case, "accept", NOW - timedelta(hours=1), actor=EVIL[:64])
    a.event(case, "suspend", NOW - timedelta(minutes=50), procedure="检验", reason=EVIL, actor=EVIL[:64])
    a.event(case, "resume", NOW - timedelta(minutes=40))
    a.event(case, "extend", NOW - timedelta(minutes=30), days=5, reason=EVIL, approver=EVIL[:64])
    a.event(case, "step", NOW - timedelta(minutes=20), step=EVIL[:64])
    hub.write(lambda c: hub.supervisor.open_ticket(c, case, "duban", EVIL[:64], NOW, reason=EVIL))

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            pages = []
            for login in ("admin1", "sup", "dept"):
                b = Browser(hub, login, s, base)
                pages += [(await b.get(f"/cases/{case}"))[1], (await b.get("/tickets"))[1]]
            return pages

    pages = asyncio.run(go())
    for page in pages:
        assert "<script" not in page and not re.search(r"<[^>]*\sonerror=", page)
        assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", page, re.I)
    # it did arrive: applicant (in full for the admin), actors, reasons, step, approver, ticket
    assert pages[0].count("&lt;script&gt;") >= 5 and "&lt;script&gt;" in pages[1]


def test_a_rules_refusal_on_a_page_is_in_chinese_only(world):
    """A reply sent twice (a double click) is refused by the ticket's rule: the page says why in
    Chinese, without the API's English and status codes in brackets."""
    hub, a, _case, _ = world
    case = _fresh_case(a)

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            sup, dept = Browser(hub, "sup", s, base), Browser(hub, "dept", s, base)
            await sup.post(f"/cases/{case}/tickets", {"level": "duban", "reason": "超期未办结"})
            (tid,) = _ticket_ids(hub, case)
            await dept.post(f"/tickets/{tid}/reply", {"text": "已办结"})
            st, _loc, page = await dept.post(f"/tickets/{tid}/reply", {"text": "已办结"})
            assert st == 409
            alert = re.search(r'<p class="flash bad" role="alert">(.*?)</p>', page, re.S).group(1)
            return alert

    alert = asyncio.run(go())
    assert "不能回复" in alert and "已回复" in alert
    assert not re.search(r"[A-Za-z]{3,}", alert), alert
