"""Findings of the attacker's and user's review of the clerk's window pages (docs/clerk.md
"Review"): each test failed before its fix."""

from __future__ import annotations

import asyncio
import re

import pytest

from agent.clerk_sessions import PinThrottle
from agent.once_forms import OnceForms, submission_key
from tests.agent.clerk_helpers import APPLICANT, Clock, cheap_hasher, client_for, csrf_of, login, make_store


@pytest.fixture
def store(tmp_path, monkeypatch):
    cheap_hasher(monkeypatch)
    s = make_store(tmp_path / "agent.db")
    yield s
    s.close()


@pytest.fixture
async def client(store):
    async with client_for(store, Clock()) as c:
        yield c


def fields_of(html: str, form_id: str) -> dict:
    """The hidden fields of one form of a page, as the browser would send them."""
    form = re.search(rf'<form[^>]*id="{form_id}".*?</form>', html, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def step_fields(html: str, type_: str) -> dict:
    form = re.search(rf'<form[^>]*data-step="{type_}".*?</form>', html, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


async def test_a_double_click_on_register_makes_one_case(client, store):
    """收件登记 pressed twice (or the page re-posted with the back button): one case, and both
    answers lead to it."""
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    form = {**fields_of(page, "register"), **APPLICANT}
    first, second = await asyncio.gather(client.post("/register", data=form), client.post("/register", data=form))
    assert first.status == second.status == 200
    assert str(first.url) == str(second.url) and "/cases/" in str(first.url)
    again = await client.post("/register", data=form)  # back button, then submit again
    assert str(again.url) == str(first.url)
    assert store.counts()["cases"] == 1
    # a new form (a new page) for another applicant registers a new case
    page = await (await client.get("/register?item=XK-001")).text()
    await client.post("/register", data={**fields_of(page, "register"), **APPLICANT, "name": "钱八"})
    assert store.counts()["cases"] == 2


async def test_a_register_form_refused_can_be_corrected_and_sent_again(client, store):
    """The once-only token is spent only by a registration that happened."""
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    form = {**fields_of(page, "register"), **APPLICANT}
    r = await client.post("/register", data={**form, "phone": "12"})
    html = await r.text()
    assert r.status == 422 and 'value="12"' in html and store.counts()["cases"] == 0
    r = await client.post("/register", data={**fields_of(html, "register"), **APPLICANT})
    assert "/cases/" in str(r.url) and store.counts()["cases"] == 1


async def test_a_double_click_on_a_step_records_it_once(client, store):
    """办理环节 (here a named step, which the rules allow any number of times) sent twice: once."""
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    r = await client.post("/register", data={**fields_of(page, "register"), **APPLICANT})
    case_no = re.search(r"/cases/([^/?]+)", str(r.url)).group(1)
    page = await (await client.get(f"/cases/{case_no}")).text()
    accept = step_fields(page, "accept")
    await asyncio.gather(client.post(f"/cases/{case_no}/steps", data=accept),
                         client.post(f"/cases/{case_no}/steps", data=accept))  # fmt: skip
    page = await (await client.get(f"/cases/{case_no}")).text()
    form = {**step_fields(page, "step"), "step": "现场勘查"}
    a, b = await asyncio.gather(client.post(f"/cases/{case_no}/steps", data=form),
                                client.post(f"/cases/{case_no}/steps", data=form))  # fmt: skip
    assert a.status == b.status == 200 and str(a.url) == str(b.url)
    types = [
        r[0]
        for r in store.conn.execute(
            "SELECT json_extract(body_json, '$.type') FROM case_events WHERE case_no=? ORDER BY seq", (case_no,)
        )
    ]
    assert types == ["accept", "step"]


async def test_forms_without_the_once_only_token_still_work(client, store):
    """Department tools and old pages that post without form_id are not refused (no dedupe)."""
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    r = await client.post("/register", data={"csrf": csrf_of(page), "item_code": "XK-001", **APPLICANT})
    assert "/cases/" in str(r.url) and store.counts()["cases"] == 1


async def test_once_forms_keep_a_bounded_number_of_keys():
    once = OnceForms(max_keys=3)
    for i in range(10):
        key = submission_key("s", "/register", {"form_id": f"{i:022d}"})
        assert await once.claim(key) is None
        once.finish(key, f"/cases/{i}")
    assert len(once) == 3
    assert await once.claim(submission_key("s", "/register", {"form_id": f"{9:022d}"})) == "/cases/9"
    assert submission_key("s", "/register", {"form_id": "short"}) is None


async def test_a_supplement_list_of_many_lines_the_textarea_allows_is_accepted(client, store):
    """The browser's maxlength counts a line break as one character but sends CR LF: a full
    2,000-character list of materials, one per line, is not "too long"."""
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    r = await client.post("/register", data={**fields_of(page, "register"), **APPLICANT})
    case_no = re.search(r"/cases/([^/?]+)", str(r.url)).group(1)
    lines = ["法定代表人身份证明复印件一份"] * 130  # 14 characters and a line break each
    typed = "\n".join(lines)
    typed += "。" * (2000 - len(typed))
    page = await (await client.get(f"/cases/{case_no}")).text()
    form = {**step_fields(page, "request_supplement"), "reason": typed.replace("\n", "\r\n")}
    r = await client.post(f"/cases/{case_no}/steps", data=form)
    assert r.status == 200 and "?done=request_supplement" in str(r.url), await r.text()
    body = store.conn.execute("SELECT body_json FROM case_events WHERE case_no=?", (case_no,)).fetchone()[0]
    assert "\\r" not in body


async def test_the_same_registration_from_a_fresh_form_is_asked_to_be_confirmed(client, store):
    """The back button fetches the form anew (new form_id) with what was typed put back: the same
    registration again is asked about (409, a link to the case), and registered when confirmed."""
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    first = await client.post("/register", data={**fields_of(page, "register"), **APPLICANT})
    page = await (await client.get("/register?item=XK-001")).text()
    r = await client.post("/register", data={**fields_of(page, "register"), **APPLICANT})
    html = await r.text()
    case_path = first.url.path_qs
    assert r.status == 409 and "刚刚已登记" in html and f'href="{case_path}"' in html and store.counts()["cases"] == 1
    assert 'value="王五"' in html  # what was typed stays
    r = await client.post("/register", data={**fields_of(html, "register"), **APPLICANT, "again": "1"})
    assert "/cases/" in str(r.url) and store.counts()["cases"] == 2
    r = await client.post("/register", data={**fields_of(html, "register"), **APPLICANT, "phone": "13900000000"})
    assert "/cases/" in str(r.url) and store.counts()["cases"] == 3  # another applicant's details: no question


async def test_a_flood_of_made_up_names_does_not_lock_the_clerks_out(store):
    """PIN guesses under names that are no clerk's fill no per-clerk slots: when the throttle's
    table is full, the real clerks are not thrown into the flooders' shared overflow slot."""
    throttle = PinThrottle(per_address=10**6, max_keys=50)  # one test address plays many
    async with client_for(store, Clock(), throttle=throttle) as client:
        page = await (await client.get("/")).text()
        for i in range(200):
            await client.post("/login", data={"clerk": f"假名{i}", "pin": "1357", "csrf": csrf_of(page)})
        r = await login(client, "李四", "2580")
        assert "1号窗口 · 李四" in await r.text()
        assert len(throttle) <= 50


async def test_a_refused_registration_keeps_the_materials_ticked(client, store):
    """The clerk ticks the materials the citizen brought; a mistyped phone must not untick them."""
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    boxes = re.findall(r'<input type="checkbox" form="register" name="materials" value="(\d+)">', page)
    assert boxes == ["0", "1", "2"]
    form = [*fields_of(page, "register").items(), *APPLICANT.items(), ("materials", "0"), ("materials", "2")]
    r = await client.post("/register", data=[(k, "12" if k == "phone" else v) for k, v in form])
    html = await r.text()
    assert r.status == 422
    ticked = re.findall(r'<input type="checkbox" form="register" name="materials" value="(\d+)" checked>', html)
    assert ticked == ["0", "2"]


async def test_after_a_wrong_pin_the_cursor_waits_in_the_pin_field(client):
    """The name stays picked; typing the PIN again must not go into the name list (digits typed
    on a list jump to another entry)."""
    page = await (await client.get("/")).text()
    assert re.search(r"<select name=\"clerk\"[^>]*autofocus", page)
    r = await client.post("/login", data={"clerk": "李四", "pin": "9999", "csrf": csrf_of(page)})
    html = await r.text()
    assert r.status == 401 and re.search(r'<option value="李四" selected>', html)
    assert re.search(r'<input type="password" name="pin"[^>]*autofocus', html)
    assert not re.search(r"<select name=\"clerk\"[^>]*autofocus", html)
