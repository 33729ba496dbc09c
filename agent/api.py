"""Clerk and department-system HTTP API of the agent (LAN only, bearer token); the clerk's
window pages (agent/web.py) are served beside it by the same application.

POST /api/cases, POST /api/cases/{case_no}/events, GET /api/cases/{case_no}, GET /api/health.
Answers come from the local SQLite at once, with or without a network to the hub.
No cookies, no CORS; cross-site refusal, security headers and time/connection bounds are in
`agent.httpguard`.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent.httpguard import (
    HttpLimits,
    activity_middleware,
    body_deadline_middleware,
    origin_middleware,
    security_headers,
)
from agent.store import AgentStore, StoreError
from iobase.sqlite import is_disk_full
from protocol.calendar import CST
from protocol.models import NewCase, NewEvent

log = logging.getLogger("jiancha.agent.api")

STORE = web.AppKey("store", AgentStore)
SYNC = web.AppKey("sync", object)
NOW = web.AppKey("now", object)
HALL = web.AppKey("hall", object)


def json_error(status: int, message: str, field: str | None = None, **extra) -> web.Response:
    """A JSON error body: {"error": ..., "field": ...}."""
    body = {"error": message, **extra}
    if field:
        body["field"] = field
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """Map store errors and a full disk to clear HTTP answers."""
    try:
        return await handler(request)
    except StoreError as exc:
        return json_error(exc.status, str(exc), exc.field)
    except Exception as exc:
        if is_disk_full(exc):
            log.error("log cannot be written: %s", exc)
            return json_error(507, "存储空间已满，无法记录 (insufficient storage: the case log cannot be written)")
        raise


def bearer_middleware(token: str):
    """Require `Authorization: Bearer <token>` on /api/ except /api/health."""

    @web.middleware
    async def check(request: web.Request, handler):
        if request.path.startswith("/api/") and request.path != "/api/health":
            got = request.headers.get("Authorization", "")
            if not (
                got.startswith("Bearer ")
                and hmac.compare_digest(got[7:].strip().encode("utf-8", "surrogateescape"), token.encode())
            ):
                return json_error(401, "需要有效的令牌 (missing or invalid bearer token)")
        return await handler(request)

    return check


async def read_json(request: web.Request):
    """The body as JSON; 400 for anything that is not (bad syntax or charset, too deep, a number
    of more than 4300 digits); 413 (from aiohttp) beyond client_max_size."""
    try:
        return await request.json(loads=json.loads)
    except RecursionError:
        raise StoreError(400, "请求体嵌套过深 (malformed JSON: nested too deeply)") from None
    except LookupError as exc:  # an unknown charset in Content-Type
        raise StoreError(400, f"不支持的字符集 (unsupported charset): {str(exc)[:100]}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits
        raise StoreError(400, f"请求体不是有效的 JSON (malformed JSON): {str(exc)[:200]}") from None


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """Read JSON and validate it; 400 for malformed JSON, 422 naming the first bad field."""
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise StoreError(400, "请求体必须是 JSON 对象 (body must be a JSON object)")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise StoreError(422, f"字段无效 (invalid field) {field}: {err['msg']}", field) from None


def _now(request: web.Request) -> datetime:
    return request.app[NOW]()


async def create_case(request: web.Request) -> web.Response:
    """收件: register a case."""
    req = await parse_body(request, NewCase)
    view = request.app[STORE].register(req, _now(request))
    _kick(request)
    return web.json_response(view, status=201, dumps=_dumps)


async def add_event(request: web.Request) -> web.Response:
    """Append an event (受理, 办结, ...) to a case."""
    req = await parse_body(request, NewEvent)
    view = request.app[STORE].add_event(request.match_info["case_no"], req, _now(request))
    _kick(request)
    return web.json_response(view, status=201, dumps=_dumps)


async def get_case(request: web.Request) -> web.Response:
    """One case with its light and due dates."""
    view = request.app[STORE].case_view(request.match_info["case_no"], _now(request))
    return web.json_response(view, dumps=_dumps)


async def health(request: web.Request) -> web.Response:
    """Liveness and sync state (no token needed; no personal data)."""
    store = request.app[STORE]
    body = {"ok": True, "site": store.site, **store.counts()}
    sync = request.app.get(SYNC)
    if sync is not None:
        body.update(sync.status())
    hall = request.app.get(HALL)
    if hall is not None:
        body["devices"] = hall.device_states()
    return web.json_response(body, dumps=_dumps)


async def fake_press(request: web.Request) -> web.Response:
    """Simulated citizen at a FAKE keypad (devices.mode = fake only): {"key": "satisfied"}."""
    hall = request.app.get(HALL)
    if hall is None or not hall.fake:
        return json_error(404, "没有模拟评价器 (no simulated keypads on this box)")
    body = await read_json(request)
    if not isinstance(body, dict):
        return json_error(400, "body must be a JSON object with key")
    try:
        hall.press(request.match_info["window"], str(body.get("key", "")))
    except KeyError as exc:
        return json_error(422, str(exc.args[0]), "key")
    return web.json_response({"pressed": True}, status=201)


def _kick(request: web.Request) -> None:
    sync = request.app.get(SYNC)
    if sync is not None:
        sync.kick()


def create_app(
    store: AgentStore,
    token: str,
    sync=None,
    now=None,
    hall=None,
    limits: HttpLimits | None = None,
    clerk_web=None,
) -> web.Application:
    """The agent's aiohttp application (serve it with `agent.app.start_http` for the limits).
    With `clerk_web` (agent.web.ClerkWeb) also the clerk's window pages at / (agent/web.py)."""
    from agent import web as clerk_pages

    limits = limits or HttpLimits()
    app = web.Application(
        middlewares=[
            activity_middleware,
            errors_middleware,
            origin_middleware,
            bearer_middleware(token),
            body_deadline_middleware(limits),
            *([clerk_pages.clerk_middleware] if clerk_web is not None else []),
        ],
        client_max_size=256 * 1024,
    )
    app.on_response_prepare.append(security_headers)
    app[STORE] = store
    app[NOW] = now or (lambda: datetime.now(CST))
    if sync is not None:
        app[SYNC] = sync
    if hall is not None:
        app[HALL] = hall
    app.router.add_post("/api/cases", create_case)
    app.router.add_post("/api/cases/{case_no}/events", add_event)
    app.router.add_get("/api/cases/{case_no}", get_case)
    app.router.add_get("/api/health", health)
    app.router.add_post("/api/devices/keypads/{window}/press", fake_press)
    if clerk_web is not None:
        clerk_pages.setup(app, clerk_web)
    return app
