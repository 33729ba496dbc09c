"""Accounts for the hub's web tests: create one, open a session directly or log in over HTTP."""

from __future__ import annotations

import re
import time

from argon2 import PasswordHasher

from hub.accounts import add_user
from hub.sessions import SessionPolicy, create, csrf_token

PASSWORD = "正确的马电池订书钉-42"
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)  # argon2id, fast for tests


def make_user(hub, login: str, role: str, scope: str | None = None, password: str = PASSWORD):
    """Create an account in the hub's store."""
    return hub.write(lambda c: add_user(c, login, role, scope, password, int(time.time() * 1000)))


def open_session(hub, login: str, now_ms: int | None = None, policy: SessionPolicy | None = None) -> dict:
    """A session for an existing account, made in the store (no HTTP login): cookie + headers for
    a state-changing call (its CSRF token and this hub's Origin are added by `headers_for`)."""
    from hub.accounts import get_user

    user = get_user(hub.reader, login)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    sid = hub.write(lambda c: create(c, user, now, "127.0.0.1", policy or SessionPolicy()))
    return {"sid": sid, "csrf": csrf_token(sid)}


def cookie_headers(sess: dict, base: str | None = None, csrf: bool = True) -> dict:
    """Headers that carry a session like our pages do (cookie, Origin, CSRF token)."""
    h = {"Cookie": f"jc_session={sess['sid']}"}
    if base:
        h["Origin"] = base
    if csrf:
        h["X-CSRF-Token"] = sess["csrf"]
    return h


async def http_login(s, base: str, login: str, password: str = PASSWORD, origin: bool = True):
    """Log in through the login page like a browser (aiohttp session `s` keeps the cookies);
    returns the response of POST /login (not followed)."""
    async with s.get(base + "/login") as r:
        assert r.status == 200
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)
    headers = {"Origin": base} if origin else {}
    return await s.post(
        base + "/login",
        data={"login": login, "password": password, "csrf": token},
        headers=headers,
        allow_redirects=False,
    )
