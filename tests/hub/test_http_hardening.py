"""The hub's HTTP side against a hostile browser page or client: cross-site writes with the
dashboard cookie, framing, half-sent requests, and a lookup flood from many addresses.

A real Hub (provisioned directory, SQLite) and its real aiohttp app on a free port."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import pytest

from hub.api import SECURITY_HEADERS, Limiter
from tests.hub.accounts_helpers import http_login, make_user, open_session
from tests.hub.hubapp import close, provisioned_hub, served

YEAR = {"year": 2031, "holidays": ["2031-01-01"], "workdays": [], "source": "test"}


@pytest.fixture
def hub(tmp_path):
    h = provisioned_hub(tmp_path / "hub")
    yield h
    close(h)


async def _post_calendar(url, headers, cookies=None):
    async with aiohttp.ClientSession(cookies=cookies) as s:
        async with s.post(url + "/api/calendar", data=json.dumps(YEAR).encode(), headers=headers) as r:
            return r.status, await r.text()


def test_cookie_writes_need_this_hubs_origin(hub):
    token = hub.cfg.api.admin_token
    make_user(hub, "admin1", "admin")
    sess = open_session(hub, "admin1")
    csrf = {"X-CSRF-Token": sess["csrf"]}

    async def go():
        async with served(hub) as (url, _app):
            cookie = {"jc_session": sess["sid"]}
            # the audit's request: a text/plain form-like POST from another site with the cookie
            st, body = await _post_calendar(
                url, {"Content-Type": "text/plain", "Origin": "https://evil.example", **csrf}, cookie
            )
            assert st == 403
            msg = json.loads(body)["error"]
            assert "拒绝跨站请求" in msg and "cross-site request refused" in msg and "evil.example" in msg
            # a modern browser's own label for it, even without Origin
            st, _ = await _post_calendar(url, {"Sec-Fetch-Site": "cross-site", **csrf}, cookie)
            assert st == 403
            st, _ = await _post_calendar(url, {"Sec-Fetch-Site": "same-site", "Origin": url, **csrf}, cookie)
            assert st == 403  # a sibling subdomain is another origin
            st, _ = await _post_calendar(url, {"Origin": "null", **csrf}, cookie)
            assert st == 403  # sandboxed frame / data: URL
            st, _ = await _post_calendar(url, {**csrf}, cookie)  # cookie, neither header: not a page of ours
            assert st == 403
            # our own pages: same origin, with the session's CSRF token
            st, body = await _post_calendar(
                url,
                {"Content-Type": "application/json", "Origin": url, "Sec-Fetch-Site": "same-origin", **csrf},
                cookie,
            )
            assert st == 201, body
            st, _ = await _post_calendar(url, {"Sec-Fetch-Site": "same-origin", **csrf}, cookie)
            assert st == 201
            # behind a reverse proxy that passes the public host name
            st, _ = await _post_calendar(
                url,
                {"Origin": "https://hub.example.gov.cn", "X-Forwarded-Host": "hub.example.gov.cn", **csrf},
                cookie,
            )
            assert st == 201
            # our origin but no (or another session's) CSRF token: refused
            st, body = await _post_calendar(url, {"Origin": url, "Sec-Fetch-Site": "same-origin"}, cookie)
            assert st == 403 and "CSRF" in json.loads(body)["error"]
            st, _ = await _post_calendar(url, {"Origin": url, "X-CSRF-Token": "0" * 64}, cookie)
            assert st == 403
            # scripts and tools with the bearer header: no Origin needed (a page cannot send it cross-site)
            st, _ = await _post_calendar(url, {"Authorization": f"Bearer {token}"})
            assert st == 201
            # reading with the cookie stays allowed from anywhere (it changes nothing; CORS keeps the answer)
            async with aiohttp.ClientSession(cookies=cookie) as s:
                async with s.get(url + "/api/calendar", headers={"Sec-Fetch-Site": "cross-site"}) as r:
                    assert r.status == 200
            # no credentials at all is still 401, not 403
            st, _ = await _post_calendar(url, {"Origin": url})
            assert st == 401
            # login from another site's form is refused too
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
                async with s.get(url + "/login") as r:
                    form_token = r.cookies["jc_login_csrf"].value
                async with s.post(
                    url + "/login",
                    data={"login": "admin1", "password": "x" * 12, "csrf": form_token},
                    allow_redirects=False,
                    headers={"Origin": "https://evil.example"},
                ) as r:
                    assert r.status == 403
                r = await http_login(s, url, "admin1")
                assert r.status == 302

    asyncio.run(go())


def test_every_response_carries_the_protective_headers(hub):
    token = hub.cfg.api.admin_token

    async def go():
        async with served(hub) as (url, _app), aiohttp.ClientSession() as s:
            for path, auth, want in (
                ("/", None, 200),
                ("/site", None, 200),
                ("/public", None, 200),
                ("/static/style.css", None, 200),
                ("/static/dashboard.js", None, 200),
                ("/api/cases", None, 401),
                ("/api/cases", token, 200),
                ("/api/cases/NOPE", token, 404),
                ("/api/nope", token, 404),
                ("/metrics", None, 200),
                ("/api/public/cases/X?code=1", None, 404),
            ):
                headers = {"Authorization": f"Bearer {auth}"} if auth else {}
                async with s.get(url + path, headers=headers) as r:
                    assert r.status == want, path
                    for name, value in SECURITY_HEADERS.items():
                        assert r.headers.get(name) == value, (path, name)
            assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]

    asyncio.run(go())


def test_pages_need_no_inline_script_or_style():
    """The CSP allows scripts and styles from files only: the pages must not need more."""
    import re

    from hub.api import STATIC

    for page in sorted(STATIC.glob("*.html")) + sorted(STATIC.glob("*.js")):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline <script> in {page.name}"
        assert "<style" not in text, f"inline <style> in {page.name}"
        assert not re.search(r"\sstyle=", text), f"style attribute in {page.name}"
        assert not re.search(r"\son[a-z]+=", text), f"inline event handler in {page.name}"
        assert "javascript:" not in text, page.name


async def _closed_within(reader, limit: float) -> float:
    """Seconds until the server closes the connection (EOF), failing after `limit`."""
    t0 = time.monotonic()
    while True:
        data = await asyncio.wait_for(reader.read(65536), timeout=limit)
        if not data:
            return time.monotonic() - t0


def test_half_sent_headers_are_dropped_in_bounded_time(hub):
    async def go():
        async with served(hub, header_timeout_s=1.0) as (url, _app):
            port = int(url.rsplit(":", 1)[1])
            # half the headers, then silence
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Half: ")
            await w.drain()
            assert await _closed_within(r, 4.0) < 3.0
            w.close()
            # a byte every 0.3 s does not keep it open: the deadline runs from the connection
            r, w = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            closed = False
            for ch in b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa":
                try:
                    w.write(bytes([ch]))
                    await w.drain()
                except ConnectionError:
                    closed = True
                    break
                if r.at_eof():
                    closed = True
                    break
                await asyncio.sleep(0.3)
                try:
                    data = await asyncio.wait_for(r.read(1), timeout=0.01)
                    if data == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
            assert closed and time.monotonic() - t0 < 3.0
            w.close()
            # a connection that never sends anything is dropped as well
            r, w = await asyncio.open_connection("127.0.0.1", port)
            assert await _closed_within(r, 4.0) < 3.0
            w.close()
            # and a complete request is answered as usual
            async with aiohttp.ClientSession() as s, s.get(url + "/api/health") as resp:
                assert resp.status == 200

    asyncio.run(go())


def test_half_sent_body_is_dropped_in_bounded_time(hub):
    token = hub.cfg.api.admin_token

    async def go():
        async with served(hub, header_timeout_s=30.0, body_timeout_s=1.0) as (url, _app):
            port = int(url.rsplit(":", 1)[1])
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(
                b"POST /api/calendar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + token.encode() + b'\r\nContent-Length: 1000\r\n\r\n{"year": '
            )
            await w.drain()
            t0 = time.monotonic()
            rest = b""
            while chunk := await asyncio.wait_for(r.read(65536), timeout=5.0):
                rest += chunk
            assert time.monotonic() - t0 < 3.0
            assert rest == b"" or b" 408 " in rest.split(b"\r\n", 1)[0]
            w.close()
            # a whole body is fine
            async with aiohttp.ClientSession() as s:
                async with s.post(
                    url + "/api/calendar", json=YEAR, headers={"Authorization": f"Bearer {token}"}
                ) as resp:
                    assert resp.status == 201

    asyncio.run(go())


def test_lookup_limiter_stays_bounded_and_still_limits_a_guesser():
    lim = Limiter(n=30, window_s=60.0, global_n=10**9, max_clients=10_000)
    guesser = lim.key("203.0.113.7")
    now = 1000.0
    assert all(lim.allow(guesser, now) for _ in range(30))
    assert not lim.allow(guesser, now)
    for i in range(100_000):  # 100,000 distinct /64s, one lookup each
        addr = f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::1"
        lim.allow(lim.key(addr), now + i * 0.0001)
    assert len(lim) <= 10_000
    held = sys.getsizeof(lim.tat) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in lim.tat.items())
    assert held < 3 * 1024 * 1024, held  # a few MB at most, whatever the number of clients
    t = now + 10.0  # 10 s later: 5 lookups' worth refilled, not 30
    assert sum(lim.allow(guesser, t) for _ in range(30)) == 5  # the flood did not make it forget the guesser
    # one subscriber's /64 is one client; an IPv4-mapped address is its IPv4 address
    assert lim.key("2001:db8:1:2::5") == lim.key("2001:db8:1:2:ffff::9") != lim.key("2001:db8:1:3::5")
    assert lim.key("::ffff:203.0.113.7") == guesser
    # once its allowance has refilled, a client is allowed again (and can be forgotten)
    assert lim.allow(guesser, now + 61.0)


def test_lookup_limiter_has_a_global_ceiling():
    lim = Limiter(n=30, window_s=60.0, global_n=100, max_clients=1000)
    allowed = sum(
        lim.allow(lim.key(f"198.51.100.{i % 250}" if i < 250 else f"192.0.2.{i % 250}"), 5.0) for i in range(500)
    )
    assert allowed == 100


def test_lookup_flood_through_http_gets_429(hub):
    async def go():
        async with served(hub, limiter=Limiter(n=3, window_s=60.0)) as (url, _app), aiohttp.ClientSession() as s:
            got = []
            for _ in range(5):
                async with s.get(url + "/api/public/cases/S01-20260101-0001?code=12345678") as r:
                    got.append(r.status)
            assert got == [404, 404, 404, 429, 429]

    asyncio.run(go())


class _Clock:
    """hub.api's view of the time module with a monotonic clock the test moves by hand (the
    event loop keeps the real one)."""

    def __init__(self, start: float = 5000.0):
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_public_lookup_as_the_hub_serves_it_limits_then_recovers(tmp_path, store_url, monkeypatch):
    """The app as `hub run` builds it (its own default limiter, 30 lookups a minute per client):
    the 31st guess in a burst gets 429 with a Chinese message; once the allowance refills
    (one lookup every 2 s, all 30 after the 60 s window), the client is served again."""
    clock = _Clock()
    monkeypatch.setattr("hub.api.time", clock)
    hub = provisioned_hub(tmp_path / "hub", store_url=store_url)
    path = "/api/public/cases/S01-20260101-0001?code=12345678"

    async def go():
        async with served(hub) as (url, _app), aiohttp.ClientSession() as s:

            async def lookups(n: int) -> list[int]:
                out = []
                for _ in range(n):
                    async with s.get(url + path) as r:
                        out.append(r.status)
                        if r.status == 429:
                            body = await r.json()
                            assert "查询过于频繁" in body["error"], body
                return out

            assert await lookups(31) == [404] * 30 + [429]
            clock.now += 1.0  # half an interval: still refused
            assert await lookups(1) == [429]
            clock.now += 1.0  # one lookup refilled
            assert await lookups(2) == [404, 429]
            clock.now += 60.0  # a whole window: the full allowance again
            assert await lookups(31) == [404] * 30 + [429]

    try:
        asyncio.run(go())
    finally:
        close(hub)
