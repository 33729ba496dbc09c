"""Hub API for admins: accounts (the web twin of `jiancha user ...`) and the audit log."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub import audit
from hub.accounts import AccountError, LastAdminError, User, add_user, disable_user, list_users, reset_password
from hub.httpjson import dumps, error, read_model
from hub.web_auth import AUDIT_ACTION, AUDIT_TARGET, AUTH, actor_of

LOGIN_PATH = "{login:[a-z0-9][a-z0-9._-]{1,31}}"


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    login: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=32)
    scope: str | None = Field(None, max_length=128)
    password: str = Field(min_length=1, max_length=512)
    display_name: str | None = Field(None, max_length=128)


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=512)
    enable: bool = False


def user_out(u: User) -> dict:
    """An account as the API shows it (never its hash)."""
    return {
        "login": u.login,
        "display_name": u.display_name,
        "role": u.role,
        "scope": u.scope,
        "disabled": u.disabled,
        "created_ms": u.created_ms,
        "changed_ms": u.changed_ms,
    }


async def _change(request: web.Request, action: str, target: str, fn, status: int = 200) -> web.Response:
    st = request.app[AUTH]
    request[AUDIT_ACTION], request[AUDIT_TARGET] = action, target
    now = st.now_ms()
    try:
        user = await asyncio.to_thread(st.hub.write, lambda c: fn(c, now))
    except AccountError as exc:
        return error(409 if isinstance(exc, LastAdminError) or "exists" in str(exc) else 422, str(exc))
    except LookupError as exc:
        return error(404, str(exc))
    return web.json_response(user_out(user), status=status, dumps=dumps)


async def get_users(request: web.Request) -> web.Response:
    """GET /api/users: every account."""
    return web.json_response([user_out(u) for u in list_users(request.app[AUTH].reader)], dumps=dumps)


async def post_user(request: web.Request) -> web.Response:
    """POST /api/users: create an account (login, role, scope, password, display_name)."""
    body = await read_model(request, UserIn)
    return await _change(
        request,
        "user.add",
        body.login,
        lambda c, now: add_user(c, body.login, body.role, body.scope, body.password, now, body.display_name),
        201,
    )


async def disable(request: web.Request) -> web.Response:
    """POST /api/users/{login}/disable: the account can no longer log in; its sessions end."""
    login = request.match_info["login"]
    request[AUDIT_ACTION], request[AUDIT_TARGET] = "user.disable", login
    if login == actor_of(request).name:
        return error(409, "不能停用自己的账号 (you cannot disable your own account)")
    return await _change(request, "user.disable", login, lambda c, now: disable_user(c, login, now, keep_an_admin=True))


async def reset(request: web.Request) -> web.Response:
    """POST /api/users/{login}/reset: a new password (optionally enabling the account); its sessions end."""
    login = request.match_info["login"]
    body = await read_model(request, ResetIn)
    return await _change(
        request, "user.reset", login, lambda c, now: reset_password(c, login, body.password, now, enable=body.enable)
    )


async def get_audit(request: web.Request) -> web.Response:
    """GET /api/audit?limit=&before=: audit rows newest first; `next_before` fetches the next page."""
    q = request.query
    try:
        limit = int(q.get("limit", 100))
        before = int(q["before"]) if q.get("before") else None
    except ValueError:
        return error(400, "limit/before 须为整数 (limit and before must be integers)")
    if before is not None and not 0 < before < 2**62:
        return error(400, "before 超出范围 (before out of range)", "before")
    rows = audit.page(request.app[AUTH].reader, limit, before)
    return web.json_response(
        {"entries": rows, "next_before": rows[-1]["id"] if len(rows) == min(max(limit, 1), audit.MAX_PAGE) else None},
        dumps=dumps,
    )


def add_routes(app: web.Application) -> None:
    """Register the account and audit routes (admin only: hub/access.py)."""
    r = app.router
    r.add_get("/api/users", get_users)
    r.add_post("/api/users", post_user)
    r.add_post(f"/api/users/{LOGIN_PATH}/disable", disable)
    r.add_post(f"/api/users/{LOGIN_PATH}/reset", reset)
    r.add_get("/api/audit", get_audit)
