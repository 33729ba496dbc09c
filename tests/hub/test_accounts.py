"""Operator accounts and web sessions (hub/accounts.py, hub/sessions.py, hub/web_auth.py) on
both store engines: the `jiancha user` commands, login and logout, expiry with the clock passed
in, disabled accounts and password resets, CSRF, throttling and the audit log."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp
import pytest
import yaml

from hub.accounts import AccountError, authenticate, check_role_scope, get_user
from hub.sessions import SessionPolicy, is_expired, lookup
from hub.throttle import LoginThrottle
from hub.web_auth import AUTH
from jiancha.cli import main
from tests.hub.accounts_helpers import PASSWORD, cookie_headers, http_login, make_user, open_session
from tests.hub.hubapp import close, provisioned_hub, served

T0 = 1_800_000_000_000  # a fixed "now" in ms (2027-01-15): no test depends on today's date
MIN = 60_000


def _jar():
    return aiohttp.CookieJar(unsafe=True)  # keep cookies of 127.0.0.1


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", store_url=store_url)
    yield h
    close(h)


@pytest.fixture
def hub_yaml(tmp_path, store_url):
    """A provisioned hub.yaml whose store is on the engine of this run."""
    from provisioning.setup import init_hub

    path = init_hub(tmp_path / "h", region="140700", name="测试市政务服务中心", broker_port=1, http_port=1)
    if store_url.startswith("postgresql"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["store"] = {"url": store_url}
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _cli(monkeypatch, capsys, argv, stdin: str | None = None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _store(hub_yaml):
    from hub.config import HubConfig
    from hub.store import open_db
    from iobase.config import load_config

    return open_db(load_config(hub_yaml, HubConfig).store_url())


# -- the command -----------------------------------------------------------------------------------


def test_user_add_list_disable_reset_from_the_cli(hub_yaml, monkeypatch, capsys):
    c = ["--config", str(hub_yaml)]
    code, out, err = _cli(
        monkeypatch, capsys, ["user", "add", *c, "--login", "zhang", "--role", "supervisor", "--scope", "140702",
                              "--password-stdin"], PASSWORD + "\n"
    )  # fmt: skip
    assert code == 0 and "zhang" in out and "140702" in out, err
    code, out, err = _cli(monkeypatch, capsys, ["user", "add", *c, "--login", "zhang", "--role", "viewer",
                                                "--password-stdin"], PASSWORD + "\n")  # fmt: skip
    assert code == 2 and "账号已存在" in err and "exists" in err
    code, out, _ = _cli(monkeypatch, capsys, ["user", "list", *c])
    assert code == 0 and out.split("\n")[0].split("\t")[:4] == ["zhang", "supervisor", "140702", "active"]
    conn = _store(hub_yaml)
    try:
        assert authenticate(conn, "zhang", PASSWORD).scope == "140702"
        assert authenticate(conn, "zhang", PASSWORD + "!") is None  # wrong password
        assert conn.execute("SELECT pw_hash FROM users").fetchone()[0].startswith("$argon2id$")
        code, out, err = _cli(monkeypatch, capsys, ["user", "disable", *c, "--login", "zhang"])
        assert code == 0 and "disabled" in out
        assert authenticate(conn, "zhang", PASSWORD) is None  # a disabled account cannot log in
        code, out, _ = _cli(monkeypatch, capsys, ["user", "list", *c])
        assert "\tdisabled\t" in out
        code, out, err = _cli(
            monkeypatch, capsys, ["user", "reset", *c, "--login", "zhang", "--password-stdin"], "another-long-pass\n"
        )
        assert code == 0 and "new password" in out
        assert authenticate(conn, "zhang", PASSWORD) is None
        assert authenticate(conn, "zhang", "another-long-pass") is not None  # reset re-enables it
        code, _, err = _cli(monkeypatch, capsys, ["user", "disable", *c, "--login", "nobody"])
        assert code == 2 and "账号不存在" in err and "no such account" in err
    finally:
        conn.close()


def test_the_cli_asks_twice_and_refuses_weak_or_differing_passwords(hub_yaml, monkeypatch, capsys):
    c = ["--config", str(hub_yaml), "--login", "li", "--role", "admin"]
    typed = iter(["short"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    code, _, err = _cli(monkeypatch, capsys, ["user", "add", *c])
    assert code == 2 and "至少 10" in err and "at least 10 characters" in err
    typed = iter(["long-enough-1", "long-enough-2"])
    code, _, err = _cli(monkeypatch, capsys, ["user", "add", *c])
    assert code == 2 and "不一致" in err and "differ" in err
    typed = iter(["long-enough-1", "long-enough-1"])
    code, out, err = _cli(monkeypatch, capsys, ["user", "add", *c])
    assert code == 0, err
    conn = _store(hub_yaml)
    try:
        assert authenticate(conn, "li", "long-enough-1").role == "admin"
    finally:
        conn.close()


@pytest.mark.parametrize(
    "args, says",
    [
        (["--role", "department"], "department role needs --scope"),
        (["--role", "department", "--scope", "140702"], "not a region code"),
        (["--role", "admin", "--scope", "140702"], "admin takes no scope"),
        (["--role", "supervisor", "--scope", "市场监督管理局"], "region code prefix of 2-12 digits"),
        (["--role", "viewer", "--scope", "14x"], "region code prefix"),
    ],
)
def test_role_and_scope_are_checked_before_the_password_is_asked(hub_yaml, monkeypatch, capsys, args, says):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("asked for a password"))
    code, _, err = _cli(monkeypatch, capsys, ["user", "add", "--config", str(hub_yaml), "--login", "wu", *args])
    assert code == 2 and says in err, err
    code, _, err = _cli(monkeypatch, capsys, ["user", "add", "--config", str(hub_yaml), "--login", "Bad Name",
                                              "--role", "admin"])  # fmt: skip
    assert code == 2 and "登录名" in err


def test_role_scope_rules():
    assert check_role_scope("supervisor", None) is None  # the whole hub
    assert check_role_scope("supervisor", " 140702 ") == "140702"
    assert check_role_scope("department", "市场监督管理局") == "市场监督管理局"
    with pytest.raises(AccountError, match="role must be one of"):
        check_role_scope("root", None)


# -- sessions in the store ----------------------------------------------------------------------------


def test_expiry_is_a_function_of_the_clock():
    p = SessionPolicy(idle_ms=30 * MIN, absolute_ms=12 * 60 * MIN)
    assert not is_expired(T0, T0, T0 + 29 * MIN, p)
    assert is_expired(T0, T0, T0 + 30 * MIN, p)  # idle
    assert not is_expired(T0, T0 + 700 * MIN, T0 + 719 * MIN, p)
    assert is_expired(T0, T0 + 719 * MIN, T0 + 720 * MIN, p)  # absolute, however active


def test_sessions_expire_end_and_are_capped(hub):
    make_user(hub, "zhang", "supervisor")
    p = SessionPolicy(idle_ms=30 * MIN, absolute_ms=12 * 60 * MIN, max_per_user=3)
    s = open_session(hub, "zhang", T0, p)
    assert hub.reader.execute("SELECT count(*) FROM sessions WHERE id_hash = ?", (s["sid"],)).fetchone()[0] == 0
    assert lookup(hub.reader, s["sid"], T0 + 29 * MIN, p).user.login == "zhang"
    assert lookup(hub.reader, s["sid"], T0 + 31 * MIN, p) is None
    # a cap per account: the oldest goes
    more = [open_session(hub, "zhang", T0 + i, p) for i in range(1, 4)]
    assert lookup(hub.reader, s["sid"], T0 + 10, p) is None
    assert all(lookup(hub.reader, m["sid"], T0 + 10, p) for m in more)
    assert hub.reader.execute("SELECT count(*) FROM sessions").fetchone()[0] == 3
    # expired sessions of everyone are removed when anyone logs in
    make_user(hub, "li", "viewer")
    open_session(hub, "li", T0 + 13 * 60 * MIN, p)
    assert hub.reader.execute("SELECT login FROM sessions").fetchall() == [("li",)]


# -- over HTTP ---------------------------------------------------------------------------------------


def test_login_sets_a_strict_httponly_session_and_logout_ends_it(hub):
    make_user(hub, "zhang", "supervisor", "140702")

    async def go():
        async with served(hub) as (base, app), aiohttp.ClientSession(cookie_jar=_jar()) as s:
            r = await http_login(s, base, "zhang")
            assert r.status == 302 and r.headers["Location"] == "/"
            cookie = r.cookies["jc_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]  # plain HTTP
            assert hub.reader.execute("SELECT id_hash FROM sessions").fetchone()[0] != cookie.value  # only a hash
            async with s.get(base + "/api/me") as r:
                me = await r.json()
            assert me["login"] == "zhang" and me["role"] == "supervisor" and me["scope"] == "140702"
            # logout needs the CSRF token too (form field here, as a form would send it)
            async with s.post(base + "/logout", headers={"Origin": base}, allow_redirects=False) as r:
                assert r.status == 403
            async with s.post(
                base + "/logout", data={"csrf": me["csrf"]}, headers={"Origin": base}, allow_redirects=False
            ) as r:
                assert r.status == 302 and r.headers["Location"] == "/login"
            assert hub.reader.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
            async with s.get(base + "/api/me", headers={"Cookie": f"jc_session={cookie.value}"}) as r:
                assert r.status == 401  # the old cookie is worth nothing
            r = await http_login(s, base, "zhang", "wrong-password!")
            assert r.status == 302 and r.headers["Location"] == "/login?bad=1"
            async with s.get(base + "/api/audit", headers={"Authorization": f"Bearer {hub.cfg.api.admin_token}"}) as r:
                return await r.json()

    log = asyncio.run(go())["entries"]
    assert [(e["actor"], e["action"], e["result"]) for e in log] == [
        ("zhang", "login", "failed"),
        ("zhang", "logout", "ok"),
        ("zhang", "POST /logout", "403"),  # the refused logout without its token
        ("zhang", "login", "ok"),
    ]
    assert all(e["address"] == "127.0.0.1" and e["at_ms"] > 0 for e in log)


def test_the_session_cookie_is_secure_over_https(hub):
    make_user(hub, "zhang", "supervisor")

    async def go():
        from hub.api import create_app
        from hub.app import start_http

        app = create_app(hub, hub.reader, hub.cfg.api.admin_token)

        @aiohttp.web.middleware
        async def as_if_https(request, handler):  # what a TLS listener would give
            return await handler(request.clone(scheme="https"))

        app.middlewares.insert(0, as_if_https)
        runner, port = await start_http(app, "127.0.0.1", 0)
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s:  # a Secure cookie is not sent back over http: by hand
                async with s.get(base + "/login") as r:
                    form_cookie = r.cookies["jc_login_csrf"]
                    assert form_cookie["secure"] and form_cookie["httponly"]
                form = {"login": "zhang", "password": PASSWORD, "csrf": form_cookie.value}
                headers = {"Cookie": f"jc_login_csrf={form_cookie.value}", "Origin": base}
                async with s.post(base + "/login", data=form, headers=headers, allow_redirects=False) as r:
                    return r.status, bool(r.cookies["jc_session"]["secure"])
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == (302, True)


def test_idle_and_absolute_expiry_over_http(hub):
    make_user(hub, "zhang", "supervisor")
    clock = [T0]

    async def go():
        async with served(hub) as (base, app), aiohttp.ClientSession() as s:
            app[AUTH].now_ms = lambda: clock[0]
            sess = open_session(hub, "zhang", T0)

            async def status(at):
                clock[0] = at
                async with s.get(base + "/api/me", headers=cookie_headers(sess)) as r:
                    return r.status

            # every 25 minutes a request: the idle clock restarts each time, until 12 h are up
            seen = [await status(T0 + k * 25 * MIN) for k in range(1, 29)]
            assert seen[:28] == [200] * 28  # 28 * 25 min = 11 h 40 min
            assert await status(T0 + 12 * 60 * MIN) == 401  # absolute
            other = open_session(hub, "zhang", T0 + 13 * 60 * MIN)
            sess.update(other)
            assert await status(T0 + 13 * 60 * MIN + 29 * MIN) == 200
            assert await status(T0 + 13 * 60 * MIN + 29 * MIN + 31 * MIN) == 401  # idle

    asyncio.run(go())


def test_a_disabled_account_and_a_reset_password_end_sessions_at_once(hub):
    make_user(hub, "zhang", "supervisor")
    make_user(hub, "admin1", "admin")

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            zhang, admin = open_session(hub, "zhang"), open_session(hub, "admin1")
            ha = cookie_headers(admin, base)

            async def me(sess):
                async with s.get(base + "/api/me", headers=cookie_headers(sess)) as r:
                    return r.status

            assert await me(zhang) == 200
            async with s.post(base + "/api/users/zhang/disable", headers=ha) as r:
                assert r.status == 200 and (await r.json())["disabled"] is True
            assert await me(zhang) == 401
            async with s.post(base + "/api/users/admin1/disable", headers=ha) as r:
                assert r.status == 409  # not oneself
            async with s.post(base + "/api/users/zhang/reset", json={"password": "short"}, headers=ha) as r:
                assert r.status == 422 and "at least 10" in (await r.json())["error"]
            async with s.post(
                base + "/api/users/zhang/reset", json={"password": "a-new-long-one", "enable": True}, headers=ha
            ) as r:
                assert r.status == 200 and (await r.json())["disabled"] is False
            again = open_session(hub, "zhang")
            assert await me(again) == 200
            hub.write(lambda c: c.execute("UPDATE users SET disabled=1 WHERE login='zhang'"))  # e.g. by the CLI
            assert await me(again) == 401  # the next request already fails
            hub.write(lambda c: c.execute("UPDATE users SET disabled=0 WHERE login='zhang'"))
            from hub.accounts import reset_password

            hub.write(lambda c: reset_password(c, "zhang", "yet-another-one", 1))
            assert await me(again) == 401
            # accounts through the web, audited
            body = {"login": "wang", "role": "department", "scope": "市场监督管理局", "password": PASSWORD}
            async with s.post(base + "/api/users", json=body, headers=ha) as r:
                assert r.status == 201 and (await r.json())["scope"] == "市场监督管理局"
            async with s.post(base + "/api/users", json=body, headers=ha) as r:
                assert r.status == 409
            async with s.post(base + "/api/users", json={**body, "login": "x1", "scope": None}, headers=ha) as r:
                assert r.status == 422 and "needs --scope" in (await r.json())["error"]
            async with s.get(base + "/api/users", headers=ha) as r:
                assert sorted(u["login"] for u in await r.json()) == ["admin1", "wang", "zhang"]
            async with s.get(base + "/api/audit?limit=3", headers=ha) as r:
                page1 = await r.json()
            async with s.get(base + f"/api/audit?limit=3&before={page1['next_before']}", headers=ha) as r:
                page2 = await r.json()
            return page1["entries"] + page2["entries"]

    rows = asyncio.run(go())
    assert [(r["action"], r["target"], r["result"]) for r in rows] == [
        ("user.add", "x1", "422"),
        ("user.add", "wang", "409"),
        ("user.add", "wang", "201"),
        ("user.reset", "zhang", "200"),
        ("user.reset", "zhang", "422"),
        ("user.disable", "admin1", "409"),
    ]
    assert rows[0]["id"] > rows[-1]["id"] and all(r["actor"] == "admin1" for r in rows)
    assert get_user(hub.reader, "wang").role == "department"
    assert "a-new-long-one" not in json.dumps(rows) and PASSWORD not in json.dumps(rows)


def test_operator_api_changes_are_audited_and_only_admins_read_the_log(hub):
    make_user(hub, "sup", "supervisor")
    year = {"year": 2031, "holidays": ["2031-01-01"], "workdays": [], "source": "test"}

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            h = {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
            async with s.post(base + "/api/calendar", json=year, headers=h) as r:
                assert r.status == 201
            sup = cookie_headers(open_session(hub, "sup"), base)
            async with s.post(base + "/api/calendar", json=year, headers=sup) as r:
                assert r.status == 403 and "无权访问" in (await r.json())["error"]
            async with s.get(base + "/api/audit", headers=sup) as r:
                assert r.status == 403
            async with s.get(base + "/api/audit?limit=x", headers=h) as r:
                assert r.status == 400
            async with s.get(base + "/api/audit", headers=h) as r:
                return (await r.json())["entries"]

    rows = asyncio.run(go())
    assert [(r["actor"], r["role"], r["action"], r["target"], r["result"]) for r in rows] == [
        ("sup", "supervisor", "POST /api/calendar", "/api/calendar", "403"),
        ("token:admin", "admin", "POST /api/calendar", "/api/calendar", "201"),
    ]


def test_failed_logins_are_throttled_per_login_and_per_address(hub):
    make_user(hub, "zhang", "supervisor")
    hub.cfg.api.login_throttle.per_login = 3
    hub.cfg.api.login_throttle.per_address = 5

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession(cookie_jar=_jar()) as s:
            statuses = [(await http_login(s, base, "zhang", f"wrong-{i}-password")).status for i in range(3)]
            assert statuses == [302, 302, 302]
            r = await http_login(s, base, "zhang")  # even the right password waits now
            assert r.status == 429 and 0 < int(r.headers["Retry-After"]) <= 900
            body = await r.json()
            assert "登录失败次数过多" in body["error"] and "分钟后再试" in body["error"]
            # another login from the same address: two more failures, then the address waits
            statuses = [(await http_login(s, base, "nobody", "whatever-long-1")).status for _ in range(3)]
            assert statuses == [302, 302, 429]
            n = hub.reader.execute("SELECT count(*) FROM audit_log WHERE result='failed'").fetchone()[0]
            return n

    assert asyncio.run(go()) == 5  # refused attempts (429) are not written: the log stays bounded


def test_the_throttle_forgets_and_stays_bounded():
    t = LoginThrottle(per_login=2, per_address=100, window_s=60, max_keys=10)
    for _ in range(2):
        t.failed("zhang", "10.0.0.1", 0)
    assert 58 < t.retry_after("zhang", "10.0.0.9", 1) <= 59
    assert t.retry_after("zhang", "10.0.0.9", 61) is None  # the window is over
    t.succeeded("zhang")
    for i in range(1000):  # a flood of fresh names and addresses
        t.failed(f"user{i}", f"10.1.{i // 250}.{i % 250}", 100)
    assert len(t) <= 10
    assert t.retry_after("fresh-name", "10.9.9.9", 101) is not None  # newcomers share the flooded overflow
