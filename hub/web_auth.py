"""The hub's web authentication: the access middleware (actor, CSRF, role, scope, audit) and the
login, logout and "who am I" routes. Rules per route: hub/access.py; docs/accounts.md."""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web

from hub import audit
from hub.access import ADMIN, DEPARTMENT, Actor, object_in_scope, rule_for
from hub.accounts import ROLE_ZH, authenticate, get_user
from hub.httpjson import dumps, error
from hub.sessions import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    SessionPolicy,
    create,
    csrf_matches,
    csrf_token,
    lookup,
    should_touch,
    touch,
)
from hub.sessions import end as end_session
from hub.throttle import LoginThrottle

log = logging.getLogger("jiancha.hub.auth")

STATIC = Path(__file__).parent / "static"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
LOGIN_CSRF_RE = re.compile(r"[A-Za-z0-9_-]{43}")
UNKNOWN_LOGIN = "*unknown*"  # the login throttle's one key for every name that is no account's


@dataclass
class AuthState:
    """What the middleware and the login routes share (one per app)."""

    hub: object  # hub.app.Hub: reader for lookups, write() for sessions and the audit log
    reader: object
    token: str
    departments: dict[str, str]
    policy: SessionPolicy = field(default_factory=SessionPolicy)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    body_timeout_s: float = 30.0
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))  # tests pass their clock
    on_session_end: list[Callable[[str], object]] = field(default_factory=list)  # called with the hash at logout


AUTH = web.AppKey("auth", AuthState)
_RequestKey = getattr(web, "RequestKey", None)  # aiohttp >= 3.13; plain strings before


def _key(name: str, kind):
    return _RequestKey(name, kind) if _RequestKey is not None else name


ACTOR = _key("actor", Actor)
AUDIT_ACTION = _key("audit_action", str)  # a handler's own name for its action (default: METHOD route)
AUDIT_TARGET = _key("audit_target", str)  # and for its target (default: the path)
AUDIT_DONE = _key("audit_done", bool)  # the handler wrote its own audit row


def actor_of(request: web.Request) -> Actor:
    """The actor the middleware resolved (routes that are not public always have one)."""
    return request[ACTOR]


def cross_site(request: web.Request, *, require_origin: bool) -> str | None:
    """Why a state-changing request does not come from this hub's own pages, or None.

    Sec-Fetch-Site (sent by current browsers) must be same-origin (or none: typed by the user);
    Origin, when sent, must name this host (the Host header, or X-Forwarded-Host set by a
    reverse proxy: a page on another site cannot set either without a CORS preflight, which the
    hub never grants). With `require_origin`, a request carrying neither header is refused too.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = request.headers.get("Origin")
    if origin is None:
        return "no Origin header" if require_origin and fetch_site is None else None
    hosts = {
        h.strip().lower()
        for h in (request.headers.get("Host", ""), *request.headers.get("X-Forwarded-Host", "").split(","))
        if h.strip()
    }
    try:
        parts = urlsplit(origin)
        netloc = parts.netloc.lower() if parts.scheme in ("http", "https") else ""
    except ValueError:
        netloc = ""
    if not netloc or netloc not in hosts:
        return f"Origin {origin[:100]} is not this hub"
    return None


def same(a: str, b: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (compare_digest on str does not)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


async def resolve_actor(request: web.Request, st: AuthState) -> Actor | None:
    """The actor of a request: a bearer token (admin or a department's), else a live session."""
    got = request.headers.get("Authorization", "")
    if got.startswith("Bearer "):
        supplied = got[7:].strip()
        if supplied and same(supplied, st.token):
            return Actor("token:admin", ADMIN)
        for name, dtoken in st.departments.items():
            if supplied and same(supplied, dtoken):
                return Actor(f"token:{name}", DEPARTMENT, name)
        return None
    sid = request.cookies.get(COOKIE, "")
    if not sid:
        return None
    now = st.now_ms()
    session = lookup(st.reader, sid, now, st.policy)
    if session is None:
        return None
    if should_touch(session.seen_ms, now):
        await asyncio.to_thread(st.hub.write, lambda c: touch(c, session.id_hash, now))
    u = session.user
    return Actor(u.login, u.role, u.scope, sid, session.id_hash)


async def _supplied_csrf(request: web.Request, st: AuthState) -> str | None:
    """The CSRF token of a request: the X-CSRF-Token header, or a form's csrf field."""
    if (got := request.headers.get(CSRF_HEADER)) is not None:
        return got
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            async with asyncio.timeout(st.body_timeout_s):
                return str((await request.post()).get("csrf", ""))
        except web.HTTPException:
            raise
        except Exception:
            return None
    return None


def access_middleware():
    """Deny by default: the route's rule (hub/access.py) names the roles and the scope."""

    @web.middleware
    async def check(request: web.Request, handler):
        st = request.app[AUTH]
        info = request.match_info
        if info.http_exception is not None:  # no such path or method: 404/405, but say 401 first to strangers
            if request.path.startswith("/api/") and await resolve_actor(request, st) is None:
                return error(401, "请先登录，或使用有效的令牌 (login required, or a valid bearer token)")
            return await handler(request)
        resource = info.route.resource
        canonical = resource.canonical if resource is not None else ""
        rule = rule_for(request.method, canonical)
        if rule is None:
            log.error("refused %s %s: the route has no access rule (hub/access.py ROUTES)", request.method, canonical)
            return error(403, "此功能未配置访问规则，已拒绝 (no access rule for this route: refused)")
        unsafe = request.method not in SAFE_METHODS
        if rule.is_public:
            if unsafe and (why := cross_site(request, require_origin=False)):
                return error(403, f"拒绝跨站请求 (cross-site request refused: {why})")
            return await handler(request)
        actor = await resolve_actor(request, st)
        if actor is None:
            if rule.page:  # a person's browser: to the login page, and back here afterwards
                raise web.HTTPSeeOther("/login?next=" + quote(request.raw_path if not unsafe else "/", safe="/"))
            return error(401, "请先登录，或使用有效的令牌 (login required, or a valid bearer token)")
        request[ACTOR] = actor
        if unsafe and actor.session_id is not None:
            # a browser sends the cookie with any site's form or fetch: only our own pages, with the token
            if why := cross_site(request, require_origin=True):
                log.warning("refused cross-site %s %s: %s", request.method, request.path, why)
                if rule.page:
                    return _page_refusal(request, 403, "拒绝跨站提交：请从本平台页面操作。")
                return error(
                    403,
                    "拒绝跨站请求：请从本平台页面操作，或使用 Authorization: Bearer 令牌 "
                    f"(cross-site request refused: {why})",
                )
            if not csrf_matches(actor.session_id, await _supplied_csrf(request, st)):
                refusal = (
                    _page_refusal(request, 403, "页面已过期或缺少安全令牌（CSRF），请刷新页面后重试。")
                    if rule.page
                    else error(
                        403, "缺少或错误的 CSRF 令牌，请刷新页面后重试 (CSRF token missing or wrong: reload the page)"
                    )
                )
                return await _audited(request, st, actor, canonical, refusal)
        if actor.role not in rule.roles:
            resp = (
                _page_refusal(request, 403, f"无权访问：{ROLE_ZH.get(actor.role, actor.role)}不能使用此页面。")
                if rule.page
                else error(
                    403,
                    f"无权访问：{ROLE_ZH.get(actor.role, actor.role)}不能使用此功能 (forbidden for role {actor.role})",
                )
            )
        elif rule.scope not in (None, "list") and not object_in_scope(st.reader, actor, rule.scope, dict(info)):
            resp = (
                _page_refusal(request, 404, "")
                if rule.page
                else error(404, "不存在或不在您的管辖范围内 (not found, or outside your scope)")
            )
        else:
            if not unsafe:
                return await handler(request)
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                await _audited(request, st, actor, canonical, exc)
                raise
        return await _audited(request, st, actor, canonical, resp) if unsafe else resp

    return check


def _page_refusal(request: web.Request, status: int, message: str) -> web.Response:
    """A refusal on an HTML page route, as a page (404: the same page as for an unknown object)."""
    from hub import pages

    return pages.not_found(request) if status == 404 else pages.error_page(request, status, message)


def safe_next(value: str | None) -> str:
    """Where to go after login: a path on this hub (never another site), else the wall."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")) and len(value) <= 2000:
        if all(0x20 < ord(ch) < 0x7F for ch in value):
            return value
    return "/"


async def _audited(request: web.Request, st: AuthState, actor: Actor, canonical: str, resp):
    """Write the audit row of a state-changing call (unless its handler wrote its own); returns resp."""
    if request.get(AUDIT_DONE):
        return resp
    action = request.get(AUDIT_ACTION) or f"{request.method} {canonical}"
    target = request.get(AUDIT_TARGET) or request.path
    await write_audit(st, actor.name, actor.role, action, target, request.remote, str(resp.status))
    return resp


async def write_audit(st: AuthState, who: str, role, action: str, target, address, result: str) -> None:
    """One audit row, written on the hub's write connection (a failure is logged, not raised:
    the action itself already happened)."""
    now = st.now_ms()
    try:
        await asyncio.to_thread(
            st.hub.write, lambda c: audit.record(c, now, who, role, action, target, address, result)
        )
    except Exception:
        log.exception("could not write the audit row for %s %s by %s", action, target, who)


def login_page_html(csrf: str) -> str:
    """The login page with the form's CSRF token in place."""
    return (STATIC / "login.html").read_text(encoding="utf-8").replace("__CSRF__", csrf)


async def login_page(request: web.Request) -> web.Response:
    """GET /login: the form, with a fresh CSRF token (also in a cookie: double submit)."""
    return _login_form(request)


def _login_form(request: web.Request, status: int = 200, message: str | None = None) -> web.Response:
    """The login form (its CSRF token also in a cookie), with `message` shown above the button."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not LOGIN_CSRF_RE.fullmatch(token):
        token = secrets.token_urlsafe(32)
    page = login_page_html(token)
    nxt = safe_next(request.query.get("next"))
    if nxt != "/":
        field = f'<input type="hidden" name="next" value="{html.escape(nxt)}">'
        page = page.replace('<input type="hidden" name="csrf"', field + '\n  <input type="hidden" name="csrf"', 1)
    if message:
        page = page.replace('<p id="bad"', f'<p class="bad">{html.escape(message)}</p>\n  <p id="bad"', 1)
    resp = web.Response(text=page, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})
    resp.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/login", max_age=3600
    )
    return resp


def _login_refused(request: web.Request, status: int, message: str) -> web.Response:
    """A refused login: the form again with the reason for a browser (it posted the form), JSON
    for anything else."""
    if "text/html" in request.headers.get("Accept", ""):
        return _login_form(request, status, message)
    return error(status, message)


async def login(request: web.Request) -> web.Response:
    """POST /login (form: login, password, csrf): a session cookie and the wall, or the form again.

    Any body that is not a form (invalid UTF-8, an unknown charset, a multipart body without or
    with a broken boundary) is a 400."""
    from hub.api import Limiter  # the client key: IPv4 address or IPv6 /64

    st = request.app[AUTH]
    try:
        form = await request.post()
    except web.HTTPException:  # 413 beyond client_max_size
        raise
    except Exception as exc:
        return error(400, f"登录表单无效 (malformed login form): {type(exc).__name__}: {str(exc)[:200]}")
    name = str(form.get("login", "")).strip().lower()[:64]
    password = str(form.get("password", ""))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not same(str(form.get("csrf", "")), cookie):
        return _login_refused(
            request, 403, "登录页面已过期，请重试 (login form CSRF token missing or wrong: reload the login page)"
        )
    address = Limiter.key(request.remote)
    # names that are no account's share one count: made-up names cannot fill the throttle's table
    # and push real accounts into the flooders' overflow slot
    known = bool(name) and await asyncio.to_thread(get_user, st.reader, name) is not None
    throttle_name = name if known else UNKNOWN_LOGIN
    # counted as a failure before the password is checked: a burst sent at once cannot outrun the count
    wait = st.throttle.attempt(throttle_name, address, time.monotonic())
    if wait is not None:
        seconds = math.ceil(wait)
        resp = _login_refused(
            request,
            429,
            f"登录失败次数过多，请 {math.ceil(seconds / 60)} 分钟后再试 (too many failed logins: retry in {seconds} s)",
        )
        resp.headers["Retry-After"] = str(seconds)
        return resp
    user = await asyncio.to_thread(authenticate, st.reader, name, password) if name and password else None
    if user is None:
        # the name typed only when it is an account's: what was typed may be a password
        await write_audit(st, name if known else "?", None, "login", None, request.remote, "failed")
        nxt = safe_next(str(form.get("next", "")))
        raise web.HTTPFound("/login?bad=1" + (f"&next={quote(nxt, safe='/')}" if nxt != "/" else ""))
    st.throttle.succeeded(name, address)
    now = st.now_ms()

    def start(c):
        sid = create(c, user, now, request.remote, st.policy)
        audit.record(c, now, user.login, user.role, "login", None, request.remote, "ok")
        return sid

    sid = await asyncio.to_thread(st.hub.write, start)
    resp = web.HTTPFound(safe_next(str(form.get("next", ""))))
    resp.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
        max_age=st.policy.absolute_ms // 1000,
    )
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise resp


async def logout(request: web.Request) -> web.Response:
    """POST /logout: the session is deleted (the cookie too); then the login page."""
    st, actor = request.app[AUTH], actor_of(request)
    if actor.session_hash is None:
        return error(400, "令牌调用没有会话，无需退出 (a bearer token has no session to end)")
    now = st.now_ms()

    def finish(c):
        end_session(c, actor.session_hash)
        audit.record(c, now, actor.name, actor.role, "logout", None, request.remote, "ok")

    await asyncio.to_thread(st.hub.write, finish)
    for hook in st.on_session_end:  # e.g. the session's live walls (hub/wall_events.py)
        hook(actor.session_hash)
    request[AUDIT_DONE] = True
    resp = web.HTTPFound("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


async def me(request: web.Request) -> web.Response:
    """GET /api/me: who is logged in, with the CSRF token our pages send on every change."""
    actor = actor_of(request)
    return web.json_response(
        {
            "login": actor.name,
            "role": actor.role,
            "role_zh": ROLE_ZH.get(actor.role, actor.role),
            "scope": actor.scope,
            "csrf": csrf_token(actor.session_id) if actor.session_id else None,
            "session": actor.session_id is not None,
        },
        dumps=dumps,
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application) -> None:
    """Register login, logout and /api/me."""
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/me", me)
