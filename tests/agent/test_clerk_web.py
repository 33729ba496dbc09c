"""The clerk's window pages in process (aiohttp TestClient): login, sessions, CSRF, registering,
steps with the rules' own refusals, the evaluator's state, and that the bearer API is unchanged."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from agent import clerk_sessions as sessions
from tests.agent.clerk_helpers import (
    APPLICANT,
    TOKEN,
    Clock,
    cheap_hasher,
    client_for,
    csrf_of,
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


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def client(store, clock):
    async with client_for(store, clock) as c:
        yield c


def text_of(html: str, id_: str) -> str:
    m = re.search(rf'id="{id_}"[^>]*>(.*?)</', html, re.S)
    return m.group(1).strip() if m else ""


async def test_login_page_without_a_session_and_pages_redirect_to_it(client):
    r = await client.get("/")
    html = await r.text()
    assert r.status == 200 and "窗口人员登录" in html and "李四（1号窗口）" in html
    assert "未启用 HTTPS" in html
    assert "HttpOnly" in r.headers.getall("Set-Cookie")[0] and "SameSite=Strict" in r.headers.getall("Set-Cookie")[0]
    assert "form-action 'self'" in r.headers["Content-Security-Policy"]
    r = await client.get("/register", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"
    r = await client.post("/register", data={"item_code": "XK-001"})
    assert r.status == 401 and "登录已过期" in await r.text()


async def test_login_sets_a_strict_session_cookie_and_logout_ends_it(client, store):
    page = await (await client.get("/")).text()
    r = await client.post("/login", data={"clerk": "李四", "pin": "2580", "csrf": csrf_of(page)}, allow_redirects=False)
    assert r.status == 303
    cookie = next(c for c in r.headers.getall("Set-Cookie") if c.startswith(sessions.COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    home = await (await client.get("/")).text()
    assert "1号窗口 · 李四" in home and "本窗口暂无在办件" in home
    r = await post_form(client, "/logout", {})
    assert "窗口人员登录" in await r.text()
    assert store.conn.execute("SELECT count(*) FROM clerk_sessions").fetchone()[0] == 0


async def test_wrong_pin_then_throttled(client):
    page = await (await client.get("/")).text()
    for _ in range(5):
        r = await client.post("/login", data={"clerk": "李四", "pin": "9999", "csrf": csrf_of(page)})
        assert r.status == 401 and "姓名或 PIN 不正确" in await r.text()
    r = await client.post("/login", data={"clerk": "李四", "pin": "2580", "csrf": csrf_of(page)})
    assert r.status == 429 and "分钟后再试" in await r.text() and int(r.headers["Retry-After"]) > 800
    r = await login(client, "赵六", "7391")  # another clerk at the same counter PC is not locked out
    assert "2号窗口 · 赵六" in await r.text()


async def test_login_form_needs_its_csrf_cookie(client):
    await client.get("/")
    r = await client.post("/login", data={"clerk": "李四", "pin": "2580", "csrf": "forged"})
    assert r.status == 403 and "登录页面已过期" in await r.text()


async def test_sessions_expire_when_idle(client, clock):
    await login(client)
    clock.ms += 29 * 60_000
    assert "李四" in await (await client.get("/")).text()
    clock.ms += 31 * 60_000
    assert "窗口人员登录" in await (await client.get("/")).text()


async def test_a_form_without_the_sessions_csrf_token_is_refused(client, store):
    await login(client)
    r = await client.post("/register", data={"item_code": "XK-001", **APPLICANT, "csrf": "0" * 64})
    assert r.status == 403 and "安全令牌" in await r.text()
    r = await client.post("/register", data={"item_code": "XK-001", **APPLICANT})
    assert r.status == 403
    assert store.counts()["cases"] == 0


async def test_a_cross_site_form_is_refused_before_anything(client, store):
    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()
    r = await client.post(
        "/register",
        data={"item_code": "XK-001", **APPLICANT, "csrf": csrf_of(page)},
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status == 403 and store.counts()["cases"] == 0


async def test_register_takes_window_and_clerk_from_the_session(client, store):
    await login(client)
    r = await post_form(
        client,
        "/register",
        {"item_code": "XK-001", **APPLICANT, "window": "9", "clerk": "冒名"},
        "/register?item=XK-001",
    )
    html = await r.text()
    assert "已办理：收件" in html and "打印受理回执" in html
    (window, clerk) = store.conn.execute("SELECT window, clerk FROM cases").fetchone()
    assert (window, clerk) == ("1", "李四")


async def test_the_materials_checklist_comes_from_the_catalog(client):
    await login(client)
    html = await (await client.get("/register?item=XK-001")).text()
    assert "营业执照复印件" in html and 'type="checkbox"' in html
    # a material's downloadable form (the portal's file name) is not shown to the clerk
    assert "食品经营许可申请书</label>" in html and "food-permit-application.pdf" not in html
    html = await (await client.get("/register?item=XK-003")).text()
    assert "事项目录未列出申请材料" in html
    r = await client.get("/register?item=NOPE")
    assert r.status == 404 and "不在本站事项目录中" in await r.text()


async def test_search_page_finds_by_pinyin_initials(client):
    await login(client)
    html = await (await client.get("/register?q=psxk")).text()
    assert 'data-code="XK-003"' in html and 'data-code="XK-001"' not in html
    html = await (await client.get("/register?q=zzzz")).text()
    assert "没有找到" in html


@pytest.mark.parametrize(
    "applicant, field, says",
    [
        ({"name": ""}, "name", "请填写申请人姓名"),
        ({"name": "王" * 101}, "name", "不能超过 100 个字"),
        ({"id_no": "110105194912310021"}, "id_no", "证件号码无效"),  # wrong check digit
        ({"id_no": "12345"}, "id_no", "证件号码无效"),
        ({"id_no": "91140700MA0K123456"}, "id_no", "证件号码无效"),  # credit code with a wrong check character
        ({"phone": ""}, "phone", "请填写联系电话"),
        ({"phone": "12345"}, "phone", "联系电话无效"),
    ],
)
async def test_applicant_fields_are_checked_in_chinese(client, store, applicant, field, says):
    await login(client)
    r = await post_form(client, "/register", {"item_code": "XK-001", **APPLICANT, **applicant}, "/register?item=XK-001")
    html = await r.text()
    assert r.status == 422 and re.search(rf'data-field="{field}">[^<]*{says}', html), html
    assert store.counts()["cases"] == 0


async def test_a_company_with_its_credit_code_and_a_landline(client, store):
    await login(client)
    await register(client, name="晋中市某某餐饮有限公司", id_no="91140700MA0K12345X", phone="0354-1234567")
    assert store.counts()["cases"] == 1


@pytest.mark.parametrize(
    "history, type_, fields, says, status",
    [
        ((), "reject", {}, "不予受理必须说明理由", 409),
        (("accept",), "extend", {"days": "5"}, "延期必须说明理由并经负责人批准", 409),
        (
            ("accept",),
            "extend",
            {"days": "12", "reason": "需现场核查", "approver": "张局长"},
            "延期不能超过10个工作日",
            409,
        ),
        (("accept",), "extend", {"days": "abc"}, "延长天数须为 1–60 之间的整数", 422),
        ((), "request_supplement", {}, "请列出需补正的全部材料", 422),
        ((), "complete", {}, "案件未受理，不能作出决定或办结", 409),
        (("accept", "complete"), "accept", {}, "案件已受理或已办结，不能再受理", 409),
    ],
)
async def test_steps_refused_with_the_rules_own_message(client, history, type_, fields, says, status):
    await login(client)
    case_no = await register(client)
    for t in history:
        assert (await step(client, case_no, t)).status == 200
    r = await step(client, case_no, type_, **fields)
    html = await r.text()
    assert r.status == status and says in html, html


async def test_only_allowed_steps_are_offered_and_each_asks_for_what_it_needs(client):
    await login(client)
    case_no = await register(client)
    html = await (await client.get(f"/cases/{case_no}")).text()
    offered = re.findall(r'data-step="([a-z_]+)"', html)
    assert offered == ["accept", "request_supplement", "reject", "withdraw"]
    r = await step(client, case_no, "request_supplement", reason="营业执照复印件\n场所平面图")
    html = await r.text()
    assert "已告知补正" in html and "补正告知书" in html
    await step(client, case_no, "supplement_received")
    html = await (await client.get(f"/cases/{case_no}")).text()
    assert 'data-step="extend"' in html and 'name="approver"' in html and 'name="days"' in html
    assert 'data-step="suspend"' in html and "<option>听证</option>" in html


async def test_a_case_of_another_window_is_not_shown(client, store):
    await login(client)
    case_no = await register(client)
    await post_form(client, "/logout", {})
    await login(client, "赵六", "7391")
    r = await client.get(f"/cases/{case_no}")
    assert r.status == 404 and "本窗口没有办件" in await r.text()
    r = await post_form(client, f"/cases/{case_no}/steps", {"type": "accept"}, "/")
    assert r.status == 404 and store.case_view(case_no, Clock().now)["status"] == "received"


@dataclass
class FakeHall:
    """The hall's evaluator state as agent.hall.Hall.evaluator reports it."""

    armed_case: str | None = None
    voted: bool = False

    def evaluator(self, window):
        if window != "1":
            return {"keypad": False, "armed": False}
        if self.armed_case is None:
            return {"keypad": True, "armed": False}
        return {"keypad": True, "armed": True, "case_no": self.armed_case, "voted": self.voted, "seconds_left": 118}


async def test_after_completion_the_screen_shows_the_evaluator_state(store, clock):
    hall = FakeHall()
    store.on_case_event.append(lambda view, t: setattr(hall, "armed_case", view["case_no"]) if t == "complete" else 0)
    async with client_for(store, clock, hall=hall) as client:
        await login(client)
        case_no = await register(client)
        await step(client, case_no, "accept")
        html = await (await step(client, case_no, "complete")).text()
        assert 'data-armed="1"' in html and "评价器已就绪" in html and "118 秒" in html
        hall.voted = True
        html = await (await client.get(f"/cases/{case_no}?done=complete")).text()
        assert 'data-voted="1"' in html and "申请人已在评价器上作出评价" in html
        hall.armed_case = None
        html = await (await client.get(f"/cases/{case_no}?done=complete")).text()
        assert 'data-armed="0"' in html and "评价器未就绪" in html


async def test_home_lists_open_cases_with_light_and_deadline(client, store, clock):
    await login(client)
    a = await register(client)
    b = await register(client, item="XK-003")
    await step(client, a, "accept")
    html = await (await client.get("/")).text()
    rows = re.findall(r'data-case="([^"]+)" data-light="(\w+)"', html)
    assert rows == [(b, "green"), (a, "green")]  # both green: the fewest days left first
    assert "受理期限 2026年11月27日" in html and "承诺办结 2026年12月4日" in html and "10 天" in html
    await step(client, a, "complete")
    html = await (await client.get("/")).text()
    assert re.findall(r'data-case="([^"]+)"', html) == [b]


async def test_the_bearer_api_is_unchanged_beside_the_pages(client):
    r = await client.post("/api/cases", json={"item_code": "XK-001", "applicant": {"name": "张三"}})
    assert r.status == 401
    r = await client.post(
        "/api/cases",
        json={"item_code": "XK-001", "applicant": {"name": "张三"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status == 201
    r = await client.get("/api/health")
    assert r.status == 200 and r.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_most_urgent_case_comes_first():
    from agent.web_cases import urgency

    views = [
        {"case_no": "g-new", "light": "green", "remaining_days": 5, "seq": 9},
        {"case_no": "g-none", "light": "green", "remaining_days": None, "seq": 8},
        {"case_no": "r", "light": "red", "remaining_days": -3, "seq": 1},
        {"case_no": "y", "light": "yellow", "remaining_days": 0, "seq": 2},
        {"case_no": "g-old", "light": "green", "remaining_days": 5, "seq": 3},
    ]
    assert [v["case_no"] for v in sorted(views, key=urgency)] == ["r", "y", "g-new", "g-old", "g-none"]


async def test_a_full_disk_is_a_page_the_clerk_can_read(client, store, monkeypatch):
    import sqlite3

    await login(client)
    page = await (await client.get("/register?item=XK-001")).text()

    def full(*a, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "register", full)
    r = await client.post("/register", data={"item_code": "XK-001", **APPLICANT, "csrf": csrf_of(page)})
    assert r.status == 507 and "存储空间已满" in await r.text() and r.content_type == "text/html"


async def test_json_twins_of_the_window_and_the_case(client):
    r = await client.get("/", headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status == 200 and "窗口人员登录" in await r.text()  # no session: the login page, no data
    await login(client)
    case_no = await register(client)
    got = await (await client.get("/", headers={"Accept": "application/json"})).json()
    assert got["window"] == "1" and got["clerk"] == "李四" and [c["case_no"] for c in got["cases"]] == [case_no]
    got = await (await client.get(f"/cases/{case_no}", headers={"Accept": "application/json"})).json()
    assert got["status"] == "received" and got["next_steps"] == ["accept", "request_supplement", "reject", "withdraw"]
    assert got["evaluator"] is None  # no devices in this test
    r = await client.get("/cases/S01-20261120-0999", headers={"Accept": "application/json"})
    assert r.status == 404 and (await r.json())["error"].startswith("本窗口没有办件")
