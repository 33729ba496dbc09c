"""Attacks on the hub's accounts, sessions and scope (review of issue 11's first part), on both
store engines: each test here failed before its fix."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.hub.accounts_helpers import cookie_headers, http_login, make_user, open_session
from tests.hub.hubapp import close, provisioned_hub, served
from tests.hub.test_access import CASE_B, DEPT_A, SITE_A, SITE_B, seed


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=(SITE_A, SITE_B), store_url=store_url)
    h.link.publish = lambda *a, **k: None  # no broker
    make_user(h, "sup-a", "supervisor", "140702")
    make_user(h, "dept-a", "department", DEPT_A)
    yield h
    close(h)


def _jar():
    return aiohttp.CookieJar(unsafe=True)


def test_parallel_wrong_passwords_cannot_outrun_the_throttle(hub, monkeypatch):
    """Attempts sent at once were all checked before any failure was counted: a burst of N
    guesses got N tries instead of per_login."""
    import hub.web_auth as web_auth

    real = web_auth.authenticate

    def slow(conn, login, password):  # what argon2 at its real cost does: the checks overlap
        time.sleep(0.3)
        return real(conn, login, password)

    monkeypatch.setattr(web_auth, "authenticate", slow)
    hub.cfg.api.login_throttle.per_login = 3

    async def go():
        async with served(hub) as (base, _app):
            sessions = [aiohttp.ClientSession(cookie_jar=_jar()) for _ in range(12)]
            try:
                rs = await asyncio.gather(
                    *(http_login(s, base, "sup-a", f"wrong-{i}-password") for i, s in enumerate(sessions))
                )
                return sorted(r.status for r in rs)
            finally:
                for s in sessions:
                    await s.close()

    statuses = asyncio.run(go())
    assert statuses.count(302) == 3 and statuses.count(429) == 9, statuses


def test_a_right_password_takes_its_attempt_back_from_its_address():
    from hub.throttle import LoginThrottle

    t = LoginThrottle(per_login=5, per_address=2, window_s=60)
    for _ in range(3):  # people who log in right do not use up their office's allowance
        assert t.attempt("zhang", "10.0.0.1", 0) is None
        t.succeeded("zhang", "10.0.0.1")
    assert t.attempt("li", "10.0.0.1", 1) is None and t.attempt("li", "10.0.0.1", 1) is None
    assert t.attempt("li", "10.0.0.1", 1) is not None  # two failures: the address waits


def test_another_countys_case_and_a_case_that_does_not_exist_answer_alike(hub):
    """The route table's 404 (out of scope) and the handler's own (no such object) differed, so a
    county supervisor could tell which case numbers, tickets, documents and clips exist elsewhere."""
    t = seed(hub)
    missing_case = f"{SITE_B}-20261120-0999"

    async def go():
        out = {}
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            for who in ("sup-a", "dept-a"):
                h = cookie_headers(open_session(hub, who), base)
                for name, (there, nowhere) in {
                    "case": (f"/api/cases/{CASE_B}", f"/api/cases/{missing_case}"),
                    "ticket": (f"/api/tickets/{t['B']}", "/api/tickets/999999"),
                }.items():
                    got = []
                    for path in (there, nowhere):
                        async with s.get(base + path, headers=h) as r:
                            got.append((r.status, await r.text()))
                    out[(who, name)] = got
                got = []
                for path in (f"/api/cases/{CASE_B}/tickets", f"/api/cases/{missing_case}/tickets"):
                    body = {"level": "duban", "actor": "监察员", "text": "超期"}
                    async with s.post(base + path, json=body, headers=h) as r:
                        got.append((r.status, await r.text()))
                if who == "sup-a":
                    out[(who, "open ticket")] = got
        return out

    for key, (there, nowhere) in asyncio.run(go()).items():
        assert there[0] == 404 and there == nowhere, (key, there, nowhere)


def test_a_password_typed_into_the_login_field_is_not_written_to_the_audit_log(hub):
    """A failed login's actor was the name typed, whatever it was: someone who types their
    password into the login field (or pastes it there) left it in clear in audit_log."""
    secret = "zhang-mima-2026-xyz"

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession(cookie_jar=_jar()) as s:
            r = await http_login(s, base, secret, "whatever-else-1")
            assert r.status == 302 and r.headers["Location"] == "/login?bad=1"
            r = await http_login(s, base, "sup-a", "wrong-password-1")  # a real account's failure keeps its name
            assert r.status == 302

    asyncio.run(go())
    rows = hub.reader.execute("SELECT actor, action, target, result FROM audit_log ORDER BY id").fetchall()
    assert secret not in repr(rows)
    assert [tuple(r) for r in rows] == [("?", "login", None, "failed"), ("sup-a", "login", None, "failed")]


def test_the_last_enabled_admin_account_cannot_be_disabled_over_the_api(hub):
    """Only disabling oneself was refused: the machine token (or two admins disabling each other)
    could leave the hub with no admin account to manage the others."""
    make_user(hub, "admin1", "admin")
    make_user(hub, "admin2", "admin")

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            token = {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
            got = []
            for login in ("admin2", "admin1", "sup-a"):
                async with s.post(f"{base}/api/users/{login}/disable", headers=token) as r:
                    got.append((r.status, (await r.json()).get("error", "")))
            return got

    (s1, _), (s2, e2), (s3, _) = asyncio.run(go())
    assert (s1, s2, s3) == (200, 409, 200) and "最后一个管理员" in e2


def test_a_browser_refused_at_login_gets_the_form_back_with_the_reason_in_chinese(hub):
    """The login page is a plain form post: a throttled (429) or stale (403) attempt answered
    JSON, which a browser shows as raw text, and left no form to try again with."""
    hub.cfg.api.login_throttle.per_login = 1
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession(cookie_jar=_jar(), headers=html) as s:
            await http_login(s, base, "sup-a", "wrong-password-1")
            r = await http_login(s, base, "sup-a", "wrong-password-2")
            throttled = (r.status, r.content_type, r.headers.get("Retry-After"), await r.text())
            s.cookie_jar.clear()  # the form's cookie is gone (expired, another browser profile)
            async with s.post(
                base + "/login",
                data={"login": "sup-a", "password": "x" * 12, "csrf": "c" * 43},
                headers={"Origin": base},
                allow_redirects=False,
            ) as r:
                stale = (r.status, r.content_type, await r.text(), r.cookies.get("jc_login_csrf"))
            return throttled, stale

    throttled, stale = asyncio.run(go())
    assert throttled[:2] == (429, "text/html") and int(throttled[2]) > 0
    assert "登录失败次数过多" in throttled[3] and 'name="csrf" value="' in throttled[3]
    assert stale[:2] == (403, "text/html") and "登录页面已过期" in stale[2]
    token = stale[3].value
    assert f'name="csrf" value="{token}"' in stale[2]  # a fresh pair: the next try works
