"""The clerk's window page on the box (窗口受理, `GET /` on the agent): login with a PIN, sessions,
CSRF, and the wiring of the page routes (agent/web_cases.py holds the case pages).

Server-rendered with aiohttp-jinja2 (autoescaped), no JavaScript needed. Everything answers from
the agent's SQLite, so it works with the hub and the broker unreachable. The department
systems' bearer-token API (/api/, agent/api.py) is unchanged; the page routes are under /,
/login, /logout, /register, /cases/ and /static/. Decisions in docs/clerk.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from agent import clerk_sessions as sessions
from agent.clerks import authenticate, list_clerks
from agent.clerks import get as get_clerk
from agent.once_forms import OnceForms
from agent.store import AgentStore
from iobase.sqlite import is_disk_full

log = logging.getLogger("jiancha.agent.web")

HERE = Path(__file__).parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/", "/login"})  # the login form (at / when not logged in) and its POST
LOGIN_CSRF_RE = re.compile(r"[A-Za-z0-9_-]{43}")
UNKNOWN_CLERK = "*unknown*"  # the throttle's one key for every name that is no clerk's
# pages may use their own stylesheet, script and forms; nothing else, from nowhere else
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class ClerkWeb:
    """What the clerk's pages need: the store, the hall (keypads), receipt details, policies."""

    store: AgentStore
    hall_name: str
    phone: str | None = None
    lookup_url: str | None = None
    windows: list[str] = field(default_factory=list)  # windows of the box's board (labels by id)
    window_labels: dict[str, str] = field(default_factory=dict)
    hall: object | None = None  # agent.hall.Hall when devices run
    policy: sessions.SessionPolicy = field(default_factory=sessions.SessionPolicy)
    throttle: sessions.PinThrottle = field(default_factory=sessions.PinThrottle)
    once: OnceForms = field(default_factory=OnceForms)  # double submits of the change forms
    https: bool = False
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))


CLERK_WEB = web.AppKey("clerk_web", ClerkWeb)
_RequestKey = getattr(web, "RequestKey", None)
CURRENT = _RequestKey("clerk_session", sessions.Session) if _RequestKey else "clerk_session"
SID = _RequestKey("clerk_sid", str) if _RequestKey else "clerk_sid"
PICKED = _RequestKey("clerk_picked", str) if _RequestKey else "clerk_picked"  # the name typed, shown again
FAILED_STEP = _RequestKey("clerk_failed_step", str) if _RequestKey else "clerk_failed_step"


def address_key(remote: str | None) -> str:
    """The throttle's key for a client: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return remote or "?"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def is_page(path: str) -> bool:
    """Page routes (sessions, CSRF) as opposed to the bearer API and static files."""
    return not (path.startswith("/api/") or path.startswith("/static/"))


async def current_session(request: web.Request) -> sessions.Session | None:
    """The request's live clerk session (its idle clock restarted at most once a minute)."""
    cw = request.app[CLERK_WEB]
    sid = request.cookies.get(sessions.COOKIE, "")
    if not sid:
        return None
    now = cw.now_ms()
    s = await asyncio.to_thread(sessions.lookup, cw.store.reader, sid, now, cw.policy)
    if s is not None:
        request[SID] = sid
        if sessions.should_touch(s.seen_ms, now):
            await asyncio.to_thread(cw.store.local_write, lambda c: sessions.touch(c, s.id_hash, now))
    return s


@web.middleware
async def clerk_middleware(request: web.Request, handler):
    """Pages need a clerk's session (else the login page); a change needs the session's CSRF
    token in the form's csrf field (cross-site requests are refused earlier: agent.httpguard)."""
    if not is_page(request.path) or request.match_info.http_exception is not None:
        return await handler(request)
    session = await current_session(request)
    if session is None:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        if request.method in SAFE_METHODS:
            raise web.HTTPSeeOther("/")
        return page_error(request, 401, "登录已过期，请重新登录")
    request[CURRENT] = session
    try:
        return await _checked(request, handler)
    except Exception as exc:
        if is_disk_full(exc):  # the clerk reads a page, not the API's JSON
            log.error("log cannot be written: %s", exc)
            return page_error(request, 507, "存储空间已满，本次办理未能记录。请通知管理员清理本机存储。")
        raise


async def _checked(request: web.Request, handler):
    """The CSRF check of a change, then the handler."""
    if request.method not in SAFE_METHODS and request.path != "/login":
        try:
            form = await request.post()  # parsed once: the handler gets the same (cached) form
        except web.HTTPException:
            raise
        except Exception:  # a broken multipart boundary, a bad charset: not a form our pages send
            return page_error(request, 400, "表单无效，请返回刷新后重试")
        if not sessions.csrf_matches(request[SID], str(form.get("csrf", ""))):
            return page_error(request, 403, "页面已过期（缺少或错误的安全令牌），请返回刷新后重试")
    return await handler(request)


async def page_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: our HTML pages and static files get the page CSP and referrer policy
    (the API keeps the stricter defaults of agent.httpguard)."""
    if is_page(request.path) or request.path.startswith("/static/"):
        response.headers["Content-Security-Policy"] = PAGE_CSP
        # with no-referrer a browser sends `Origin: null` on our own form posts, which the
        # cross-site check (agent.httpguard) must refuse; same-origin still tells other sites nothing
        response.headers["Referrer-Policy"] = "same-origin"


def wants_json(request: web.Request) -> bool:
    """The JSON twin of a page: asked for with Accept: application/json (and not text/html)."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def page_error(request: web.Request, status: int, message: str) -> web.Response:
    """An error page in Chinese with a way back ({"error": ...} for the JSON twin)."""
    if wants_json(request):
        return web.json_response({"error": message}, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    return aiohttp_jinja2.render_template("error.html", request, base_ctx(request, message=message), status=status)


def base_ctx(request: web.Request, **extra) -> dict:
    """What every page template gets: the clerk, the CSRF token, the hall's name, HTTP warning."""
    cw = request.app[CLERK_WEB]
    session = request.get(CURRENT)
    ctx = {
        "hall_name": cw.hall_name,
        "clerk": session.clerk if session else None,
        "window_label": _window_label(cw, session.clerk.window) if session else "",
        "csrf": sessions.csrf_token(request[SID]) if session else "",
        "form_id": secrets.token_urlsafe(16),  # once-only token of this render's forms (agent/once_forms.py)
        "https": cw.https,
    }
    ctx.update(extra)
    return ctx


def _window_label(cw: ClerkWeb, window: str) -> str:
    return cw.window_labels.get(window) or f"{window}号窗口"


def _login_page(request: web.Request, status: int = 200, message: str | None = None) -> web.Response:
    """The login form with a CSRF token (also in a cookie: double submit), and the reason of a refusal."""
    cw = request.app[CLERK_WEB]
    token = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    if not LOGIN_CSRF_RE.fullmatch(token):
        token = secrets.token_urlsafe(32)
    clerks = list_clerks(cw.store.reader, enabled_only=True)
    ctx = base_ctx(
        request,
        login_csrf=token,
        clerks=[(c.name, _window_label(cw, c.window)) for c in clerks],
        message=message,
        picked=request.get(PICKED, ""),
    )
    resp = aiohttp_jinja2.render_template("login.html", request, ctx, status=status)
    resp.set_cookie(
        sessions.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=cw.https, path="/", max_age=3600
    )
    return resp


async def login(request: web.Request) -> web.Response:
    """POST /login (form: clerk, pin, csrf): a session and the window's screen, or the form again."""
    cw = request.app[CLERK_WEB]
    try:
        form = await request.post()
    except web.HTTPException:
        raise
    except Exception:
        return _login_page(request, 400, "登录表单无效，请重试")
    name = str(form.get("clerk", "")).strip()[:64]
    pin = str(form.get("pin", ""))[:16]
    request[PICKED] = name
    cookie = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(str(form.get("csrf", "")).encode(), cookie.encode()):
        return _login_page(request, 403, "登录页面已过期，请重试")
    if not name or not pin:
        return _login_page(request, 422, "请选择姓名并输入 PIN")
    address = address_key(request.remote)
    # guesses under names that are no clerk's share one count: made-up names cannot fill the
    # throttle's table and push the real clerks into the flooders' overflow slot
    known = await asyncio.to_thread(get_clerk, cw.store.reader, name) is not None
    wait = cw.throttle.attempt(name if known else UNKNOWN_CLERK, address, time.monotonic())
    if wait is not None:
        resp = _login_page(request, 429, f"PIN 错误次数过多，请 {math.ceil(wait / 60)} 分钟后再试")
        resp.headers["Retry-After"] = str(math.ceil(wait))
        return resp
    clerk = await asyncio.to_thread(authenticate, cw.store.reader, name, pin)
    if clerk is None:
        log.warning("clerk login failed for %r from %s", name, address)
        return _login_page(request, 401, "姓名或 PIN 不正确")
    cw.throttle.succeeded(name, address)
    now = cw.now_ms()
    sid = await asyncio.to_thread(
        cw.store.local_write, lambda c: sessions.create(c, clerk.name, now, request.remote, cw.policy)
    )
    log.info("clerk %s logged in at window %s", clerk.name, clerk.window)
    resp = web.HTTPSeeOther("/")
    resp.set_cookie(
        sessions.COOKIE,
        sid,
        httponly=True,
        samesite="Strict",
        secure=cw.https,
        path="/",
        max_age=cw.policy.absolute_ms // 1000,
    )
    resp.del_cookie(sessions.LOGIN_CSRF_COOKIE, path="/")
    raise resp


async def logout(request: web.Request) -> web.Response:
    """POST /logout: the session is deleted, the cookie too; then the login page."""
    cw, s = request.app[CLERK_WEB], request[CURRENT]
    await asyncio.to_thread(cw.store.local_write, lambda c: sessions.end(c, s.id_hash))
    resp = web.HTTPSeeOther("/")
    resp.del_cookie(sessions.COOKIE, path="/")
    raise resp


async def index(request: web.Request) -> web.Response:
    """GET /: the window's screen for a logged-in clerk, else the login form."""
    if request.get(CURRENT) is None:
        return _login_page(request)
    from agent.web_cases import home

    return await home(request)


# a material line may end in the name of its downloadable form, "申请书 [form.pdf]" (the hub's
# portal serves the file; docs/portal.md): at the window the clerk sees the material only
FORM_SUFFIX = re.compile(r"\s*[\[［][^\]］]+[\]］]\s*$")


def material_text(line: str) -> str:
    """A catalog material line without its form file name."""
    return FORM_SUFFIX.sub("", line).strip() or line.strip()


def setup(app: web.Application, cw: ClerkWeb) -> None:
    """Templates, static files and the page routes on the agent's app."""
    from agent import web_cases

    app[CLERK_WEB] = cw
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, default_helpers=False
    )
    env.globals["STATIC"] = "/static"
    env.filters["material"] = material_text
    app.on_response_prepare.insert(0, page_headers)
    app.router.add_get("/", index)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    web_cases.add_routes(app)
    app.router.add_get("/static/{name}", static_file)


STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
# the few files of agent/static/, read once: no path from a request ever reaches the file system
# (aiohttp's static handler answers 500 to a name longer than the file system allows)
STATIC_FILES = {
    p.name: (p.read_bytes(), STATIC_TYPES[p.suffix])
    for p in sorted((HERE / "static").iterdir())
    if p.is_file() and p.suffix in STATIC_TYPES
}


async def static_file(request: web.Request) -> web.Response:
    """GET /static/{name}: the page's stylesheet or script."""
    got = STATIC_FILES.get(request.match_info["name"])
    if got is None:
        raise web.HTTPNotFound()
    body, content_type = got
    return web.Response(body=body, content_type=content_type, charset="utf-8")
