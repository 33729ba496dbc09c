"""差评 follow-ups (好差评) over HTTP: the JSON API and the operator pages (docs/ratings.md).

API: GET /api/followups[?status=open|closed|all], GET /api/followups/{id}, POST
/api/followups/{id}/{action} with {"text": ...}; action verify|rectify|callback|appeal (the
department, or an admin) or misuse|malicious|reject (a supervisor, on a pending appeal).
Pages: GET /followups (the list with the forms), POST /followups/{id}/{action} (form: text, csrf).
The actor is always the session's account (or the machine token), never a name in the body.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub import followups as fu
from hub.access import ADMIN, DEPARTMENT, SUPERVISOR, row_in_scope, scope_where
from hub.httpjson import dumps, error, read_model
from hub.web_auth import actor_of

HUB = web.AppKey("hub_followups", object)
ACTIONS = fu.DEPARTMENT_ACTIONS + fu.SUPERVISOR_ACTIONS
ACTION_RE = "|".join(ACTIONS)
STATUS_FILTERS = (("open", "未办结"), ("closed", "已办结"), ("all", "全部"))
MESSAGES = {
    "verify": "核实情况已记录，请继续整改。",
    "rectify": "整改情况已记录，请回访评价人。",
    "callback": "回访结果已记录，回访件办结。",
    "appeal": "申诉已提交，等待监察人员复核。",
    "misuse": "已认定为误评：该评价不计入满意率和绩效，记录保留。",
    "malicious": "已认定为恶意差评：该评价不计入满意率和绩效，记录保留。",
    "reject": "已驳回申诉：该差评照常计入，部门继续办理。",
    "assign": "已分派承办部门，并通知该部门。",
}


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    department: str = Field(min_length=1, max_length=fu.DEPARTMENT_MAX)
    text: str = Field("", max_length=fu.TEXT_MAX)


class ActIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: str = Field(min_length=1, max_length=fu.TEXT_MAX)


def _now(hub) -> datetime:
    """The hub's clock (hub.ingest.now), as the complaint steps and the sweep use: a test or a
    replay that sets the hub's time gets step times on the same clock."""
    return hub.ingest.now()


def _allowed(role: str, action: str) -> bool:
    """Department steps: the department (or an admin); decisions on an appeal: supervisors."""
    if action in fu.DEPARTMENT_ACTIONS:
        return role in (ADMIN, DEPARTMENT)
    return role in (ADMIN, SUPERVISOR)


def _in_scope(request, f: dict | None) -> bool:
    return f is not None and row_in_scope(actor_of(request), f["site"], f["department"])


def _listing(request) -> tuple[list[dict], int, str]:
    status = request.query.get("status", "open")
    if status not in ("open", "closed", "all"):
        status = "open"
    where, args = scope_where(actor_of(request))
    rows, total = fu.listing(request.app[HUB].reader, where, tuple(args), status)
    return rows, total, status


async def _act(request, fid: int, action: str, text: str) -> dict:
    """Run the step in the hub's write transaction (errors: FollowupError, LookupError)."""
    from hub.pages import actor_name

    hub, actor = request.app[HUB], actor_of(request)
    who = await asyncio.to_thread(actor_name, hub.reader, actor) if actor.session_id else actor.name
    dept = actor.department
    region = actor.region

    def step(conn):
        f = fu.get(conn, fid)
        if f is None or (region is not None and not (f["site"] or "").startswith(region)):
            raise LookupError(f"回访件不存在 (no such follow-up): {fid}")
        return fu.act(conn, fid, action, who, text, _now(hub), department=dept)

    return await asyncio.to_thread(hub.write, step)


async def _assign(request, fid: int, department: str, text: str) -> dict:
    """A supervisor (or admin) in scope gives a follow-up without a department to one; the actor
    is the session's account; audited by the access middleware (hub/web_auth.py)."""
    from hub.pages import actor_name
    from hub.web_auth import AUDIT_ACTION, AUDIT_TARGET

    hub, actor = request.app[HUB], actor_of(request)
    request[AUDIT_ACTION], request[AUDIT_TARGET] = "followup.assign", f"followup {fid} -> {department}"
    who = await asyncio.to_thread(actor_name, hub.reader, actor) if actor.session_id else actor.name
    region = actor.region
    notify = hub.supervisor.notify

    def step(conn):
        f = fu.get(conn, fid)
        if f is None or (region is not None and not (f["site"] or "").startswith(region)):
            raise LookupError(f"回访件不存在 (no such follow-up): {fid}")
        return fu.assign(conn, fid, department, who, text, _now(hub), notify=notify)

    return await asyncio.to_thread(hub.write, step)


# -- JSON ---------------------------------------------------------------------------------------------
async def list_api(request: web.Request) -> web.Response:
    rows, total, status = await asyncio.to_thread(_listing, request)
    return web.json_response({"status": status, "total": total, "followups": rows}, dumps=dumps)


async def get_api(request: web.Request) -> web.Response:
    f = await asyncio.to_thread(fu.view, request.app[HUB].reader, int(request.match_info["id"]))
    if not _in_scope(request, f):
        return error(404, "回访件不存在 (no such follow-up)")
    return web.json_response(f, dumps=dumps)


async def act_api(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if not _allowed(actor_of(request).role, action):
        return error(403, "无权执行此操作 (this role may not do that)")
    body = await read_model(request, ActIn)
    try:
        f = await _act(request, int(request.match_info["id"]), action, body.text)
    except fu.FollowupError as exc:
        return error(409, str(exc))
    except LookupError:
        return error(404, "回访件不存在 (no such follow-up)")
    return web.json_response(f, status=201, dumps=dumps)


async def assign_api(request: web.Request) -> web.Response:
    """POST /api/followups/{id}/assign {"department": ..., "text"?: ...}: supervisors and admins."""
    body = await read_model(request, AssignIn)
    try:
        f = await _assign(request, int(request.match_info["id"]), body.department, body.text)
    except fu.FollowupError as exc:
        return error(409, str(exc))
    except LookupError:
        return error(404, "回访件不存在 (no such follow-up)")
    return web.json_response(f, status=201, dumps=dumps)


# -- pages --------------------------------------------------------------------------------------------
async def page(request: web.Request, *, error: str = "", status: int = 200, error_id: int = 0, typed: str = ""):
    """GET /followups[?status=]: the follow-ups in scope, each with its steps and the forms."""
    from hub.pages import _base, render

    rows, total, want = await asyncio.to_thread(_listing, request)
    ctx = _base(request, "差评回访")
    ctx["ok"] = MESSAGES.get(request.query.get("ok", ""), "")
    role = actor_of(request).role
    ctx.update(
        followups=rows,
        site_names={f["site"]: request.app[HUB].sites.name(f["site"]) for f in rows if f["site"]},
        total=total,
        status=want,
        filters=STATUS_FILTERS,
        error=error,
        error_id=error_id,
        typed=typed,
        can_step=role in (ADMIN, DEPARTMENT),
        can_decide=role in (ADMIN, SUPERVISOR),
        step_labels={"verify": "核实情况", "rectify": "整改措施", "callback": "回访结果"},
        can_assign=role in (ADMIN, SUPERVISOR),
        departments=await asyncio.to_thread(_departments, request.app[HUB].reader),
    )
    return render(request, "followups.html", ctx, status)


async def act_form(request: web.Request) -> web.Response:
    """POST /followups/{id}/{action} (form: text, csrf)."""
    from hub.pages import _form, _text, chinese_part

    fid, action = int(request.match_info["id"]), request.match_info["action"]
    if not _allowed(actor_of(request).role, action):
        from hub.pages import error_page

        return error_page(request, 403, "您的角色不能执行此操作。")
    form = await _form(request)
    text, err = _text(form, "text", "内容")
    if err:
        return await page(request, error=err, status=422, error_id=fid, typed=form.get("text", ""))
    try:
        await _act(request, fid, action, text)
    except fu.FollowupError as exc:
        return await page(request, error=chinese_part(str(exc)), status=409, error_id=fid, typed=text)
    except LookupError:
        from hub.pages import error_page

        return error_page(request, 404, "回访件不存在，或不在您的管辖范围内。")
    raise web.HTTPSeeOther(f"/followups?status=all&ok={action}#f{fid}")  # still shown once closed


def _departments(conn) -> list[str]:
    """Department names offered when assigning: the catalog's and the notification directory's."""
    rows = conn.execute("SELECT department FROM catalog UNION SELECT department FROM directory").fetchall()
    return sorted({r[0] for r in rows if r[0]})


async def assign_form(request: web.Request) -> web.Response:
    """POST /followups/{id}/assign (form: department, text, csrf): supervisors and admins."""
    from hub.pages import _form, chinese_part, error_page

    fid = int(request.match_info["id"])
    form = await _form(request)
    department = " ".join(form.get("department", "").split())
    text = form.get("text", "").strip()
    if not department or len(department) > fu.DEPARTMENT_MAX:
        err = f"请填写承办部门（最多 {fu.DEPARTMENT_MAX} 个字）。"
        return await page(request, error=err, status=422, error_id=fid, typed=text[: fu.TEXT_MAX])
    if len(text) > fu.TEXT_MAX:
        return await page(request, error=f"分派意见最多 {fu.TEXT_MAX} 个字。", status=422, error_id=fid)
    try:
        await _assign(request, fid, department, text)
    except fu.FollowupError as exc:
        return await page(request, error=chinese_part(str(exc)), status=409, error_id=fid, typed=text)
    except LookupError:
        return error_page(request, 404, "回访件不存在，或不在您的管辖范围内。")
    raise web.HTTPSeeOther(f"/followups?status=all&ok=assign#f{fid}")


def add_routes(app: web.Application, hub) -> None:
    """Register the follow-up API and pages (after hub.pages.setup)."""
    app[HUB] = hub
    r = app.router
    r.add_get("/api/followups", list_api)
    r.add_get("/api/followups/{id:\\d{1,18}}", get_api)
    r.add_post(f"/api/followups/{{id:\\d{{1,18}}}}/{{action:{ACTION_RE}}}", act_api)
    r.add_post("/api/followups/{id:\\d{1,18}}/assign", assign_api)
    r.add_get("/followups", page)
    r.add_post("/followups/{id:\\d{1,18}}/assign", assign_form)
    r.add_post(f"/followups/{{id:\\d{{1,18}}}}/{{action:{ACTION_RE}}}", act_form)
