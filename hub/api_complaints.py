"""投诉 routes (hub/complaints.py holds the rules): the citizen's pages and JSON twins under
/public/complaints and /api/public/complaints (no login: a number and a query code), and the
operators' page /complaints and API /api/complaints (roles and scope: hub/access.py).

Public forms carry a double-submit CSRF token (a cookie on /public and a hidden field); operator
forms the session's. Filing is rate-limited per client and globally (hub.api.Limiter: bounded
memory); following a complaint spends the same guessing budget as the case lookup.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import time
from urllib.parse import quote

from aiohttp import web

from hub import complaints as cp
from hub.access import ADMIN, DEPARTMENT, SUPERVISOR, Actor, scope_where
from hub.api import HUB, LIMITER, Limiter
from hub.httpjson import dumps, error, read_object
from hub.pages import _base, _form, actor_name, chinese_part, render
from hub.web_auth import actor_of
from hub.web_auth import same as _same

FILING = web.AppKey("complaint_filing", Limiter)
PCSRF = "jc_pcsrf"  # the public forms' CSRF cookie (double submit)
PCSRF_RE = re.compile(r"[A-Za-z0-9_-]{43}")
NO_RE = re.compile(r"TS\d{14}")
SHOWN = 100  # complaints on the operators' page and in the API list, newest first
OPS_ACTIONS = {"accept": (ADMIN, SUPERVISOR), "refuse": (ADMIN, SUPERVISOR), "assign": (ADMIN, SUPERVISOR),
               "reply": (ADMIN, DEPARTMENT)}  # fmt: skip
MESSAGES = {"accept": "已受理。", "refuse": "已作不予受理处理。", "assign": "已交办。", "reply": "答复已提交，已告知投诉人。",
            "confirm": "感谢您的确认，投诉已办结。", "reopen": "已提交异议，投诉退回承办部门重新答复。"}  # fmt: skip
NOT_FOUND = "未找到该投诉，请核对投诉编号和查询码 (no complaint with that number and query code)"


def add_routes(app: web.Application, hub) -> None:
    """The complaint routes, and the filing limiter from hub.yaml's complaints section."""
    cfg = hub.cfg.complaints
    app[FILING] = Limiter(cfg.per_client_per_hour, 3600.0, global_n=cfg.global_per_hour, max_clients=cfg.max_tracked)
    r = app.router
    r.add_get("/public/complaints", public_form)
    r.add_post("/public/complaints", public_file)
    r.add_get("/public/complaints/{no}", public_follow)
    r.add_post("/public/complaints/{no}/confirm", public_step)
    r.add_post("/public/complaints/{no}/reopen", public_step)
    r.add_post("/api/public/complaints", api_file)
    r.add_get("/api/public/complaints/{no}", api_follow)
    r.add_post("/api/public/complaints/{no}/confirm", api_public_step)
    r.add_post("/api/public/complaints/{no}/reopen", api_public_step)
    r.add_get("/complaints", ops_page)
    r.add_get("/api/complaints", api_list)
    r.add_get("/api/complaints/{no}", api_get)
    for action in OPS_ACTIONS:
        r.add_post(f"/complaints/{{no}}/{action}", ops_form)
        r.add_post(f"/api/complaints/{{no}}/{action}", api_step)


def _ctx(hub):
    return hub.cfg.complaints, hub.ingest.calendar, hub.ingest.now()


async def _do(hub, complaint_no, action, actor, text, department=None):
    """One step in the hub's write transaction: (row, '') or (None, message)."""
    cfg, cal, now = _ctx(hub)
    try:
        row = await asyncio.to_thread(
            hub.write,
            lambda c: cp.act(c, complaint_no, action, actor, text, cfg, cal, now, department=department,
                             notifier=hub.notifier),
        )  # fmt: skip
        return row, ""
    except cp.ComplaintError as exc:
        return None, str(exc)
    except LookupError:
        return None, NOT_FOUND


def _limited(request: web.Request, key) -> bool:
    limiter = request.app[key]
    return not limiter.allow(limiter.key(request.remote), time.monotonic())


async def _followed(request: web.Request, no: str, code: str) -> dict | None:
    """The public view of a complaint when the code matches (constant-time), else None."""
    hub = request.app[HUB]
    if not NO_RE.fullmatch(no) or not code or len(code) > 64:
        return None
    stored = await asyncio.to_thread(cp.code_of, hub.reader, no)
    if stored is None or not _same(stored, code.strip().upper()):
        return None
    return await asyncio.to_thread(cp.complaint_view, hub.reader, no, private=False, citizen=True)


def _public_json(c: dict) -> dict:
    keep = ("complaint_no", "about_kind", "about_kind_zh", "about", "department", "status", "status_zh", "step_due",
            "reopened", "events")  # fmt: skip
    return {k: c[k] for k in keep}


# -- the citizen's pages ----------------------------------------------------------------------------
def _pcsrf(request: web.Request) -> str:
    token = request.cookies.get(PCSRF, "")
    return token if PCSRF_RE.fullmatch(token) else secrets.token_urlsafe(32)


def _public(request, name, ctx, status=200):
    token = _pcsrf(request)
    resp = render(request, name, {"csrf": token, "error": "", "ok": "", "about_zh": cp.ABOUT_ZH, **ctx}, status)
    resp.set_cookie(PCSRF, token, httponly=True, samesite="Strict", secure=request.secure, path="/public")
    return resp


async def _public_post(request: web.Request) -> dict | None:
    """The form, or None when its CSRF field does not match the cookie."""
    form = await _form(request)
    cookie, field = request.cookies.get(PCSRF, ""), form.get("csrf", "")
    if not PCSRF_RE.fullmatch(cookie) or not hmac.compare_digest(cookie.encode(), field.encode()[:64]):
        return None
    return form


async def public_form(request: web.Request, *, values=None, errors=None, status=200) -> web.Response:
    """GET /public/complaints: file a complaint, or follow one (number + code)."""
    return _public(request, "complaint_public.html", {"values": values or {}, "errors": errors or {},
                                                      "title": "投诉"}, status)  # fmt: skip


async def public_file(request: web.Request) -> web.Response:
    """POST /public/complaints (form): file; the number and code are shown once."""
    form = await _public_post(request)
    if form is None:
        # 400, not 403: nobody is refused here, the form is stale (its token is not the cookie's)
        return await public_form(request, errors={"_": "页面已过期，请刷新后重新提交。"}, status=400)
    values, errors = cp.clean(form)
    if errors:
        return await public_form(request, values=values, errors=errors, status=422)
    if _limited(request, FILING):
        return await public_form(request, values=values, errors={"_": "提交过于频繁，请稍后再试。"}, status=429)
    hub = request.app[HUB]
    cfg, cal, now = _ctx(hub)
    no, code = await asyncio.to_thread(hub.write, lambda c: cp.file_complaint(c, values, cfg, cal, now))
    return _public(request, "complaint_filed.html", {"no": no, "code": code, "title": "投诉已提交"})


async def public_follow(request: web.Request, *, error_msg: str = "", status: int = 200, ok: str = ""):
    """GET /public/complaints/{no}?code=: status, steps and the reply; confirm or reopen."""
    no, code = request.match_info["no"], request.query.get("code", "")
    if no == "go":  # the follow form (GET no=&code=)
        no = request.query.get("no", "").strip().upper()[:20]
    if _limited(request, LIMITER):
        return _public(request, "complaint_public.html", {"values": {}, "errors": {"q": "查询过于频繁，请稍后再试。"},
                                                          "title": "投诉"}, 429)  # fmt: skip
    c = await _followed(request, no, code)
    if c is None:
        return _public(request, "complaint_public.html", {"values": {"q_no": no[:20]}, "errors": {"q": chinese_part(
            NOT_FOUND)}, "title": "投诉"}, 404)  # fmt: skip
    return _public(request, "complaint_follow.html",
                   {"c": c, "code": code, "title": f"投诉 {no}", "error": error_msg, "ok": ok}, status)  # fmt: skip


async def public_step(request: web.Request) -> web.Response:
    """POST /public/complaints/{no}/confirm|reopen (form: code, text, csrf)."""
    no, action = request.match_info["no"], request.path.rsplit("/", 1)[1]
    form = await _public_post(request)
    code = (form or {}).get("code", "")
    back = f"/public/complaints/{quote(no)}?code={quote(code)}"
    if form is None:
        raise web.HTTPSeeOther(back)
    if _limited(request, LIMITER) or await _followed(request, no, code) is None:
        return error(404, NOT_FOUND)
    _row, err = await _do(request.app[HUB], no, action, "citizen", form.get("text", "")[:8000])
    if err:
        request = request.clone(rel_url=back)
        return await public_follow(request, error_msg=chinese_part(err), status=409)
    raise web.HTTPSeeOther(back + f"&ok={action}")


# -- the citizen's JSON twins -----------------------------------------------------------------------
async def api_file(request: web.Request) -> web.Response:
    """POST /api/public/complaints {about_kind, about, text, contact_name, contact_phone|contact_email}."""
    body = await read_object(request)  # 400 for anything but a JSON object
    values, errors = cp.clean(body)
    if errors:
        field, msg = next(iter(errors.items()))
        return error(422, msg, field)
    if _limited(request, FILING):
        return error(429, "提交过于频繁，请稍后再试 (too many complaints filed, try again later)")
    hub = request.app[HUB]
    cfg, cal, now = _ctx(hub)
    no, code = await asyncio.to_thread(hub.write, lambda c: cp.file_complaint(c, values, cfg, cal, now))
    return web.json_response({"complaint_no": no, "query_code": code}, status=201, dumps=dumps)


async def api_follow(request: web.Request) -> web.Response:
    """GET /api/public/complaints/{no}?code=: status, steps and replies (no contact details)."""
    if _limited(request, LIMITER):
        return error(429, "查询过于频繁，请稍后再试 (too many lookups, try again later)")
    c = await _followed(request, request.match_info["no"], request.query.get("code", ""))
    return error(404, NOT_FOUND) if c is None else web.json_response(_public_json(c), dumps=dumps)


async def api_public_step(request: web.Request) -> web.Response:
    """POST /api/public/complaints/{no}/confirm|reopen {code, text}."""
    no, action = request.match_info["no"], request.path.rsplit("/", 1)[1]
    body = await read_object(request)  # 400 for anything but a JSON object
    if _limited(request, LIMITER) or await _followed(request, no, str(body.get("code", ""))) is None:
        return error(404, NOT_FOUND)
    _row, err = await _do(request.app[HUB], no, action, "citizen", str(body.get("text") or ""))
    if err:
        return error(404 if err == NOT_FOUND else 409, err)
    c = await asyncio.to_thread(cp.complaint_view, request.app[HUB].reader, no, private=False, citizen=True)
    return web.json_response(_public_json(c), dumps=dumps)


# -- operators --------------------------------------------------------------------------------------
def _rows(conn, actor: Actor, status: str | None) -> list[dict]:
    where, args = [], []
    if status:
        where.append("status = ?")
        args.append(status)
    scoped, scope_args = scope_where(actor)
    if scoped:
        where.append(scoped)
        args.extend(scope_args)
    if actor.department is not None:  # a department sees what was given to it, from assignment on
        where.append("status IN ('assigned', 'reopened', 'replied', 'closed')")
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    nos = [
        r[0] for r in conn.execute(f"SELECT complaint_no FROM complaints{cond} ORDER BY id DESC LIMIT {SHOWN}", args)
    ]
    private = actor.role in (ADMIN, SUPERVISOR)
    return [cp.complaint_view(conn, no, private=private) for no in nos]


async def ops_page(request: web.Request, *, error_msg: str = "", error_no: str = "", status: int = 200):
    """GET /complaints[?status=]: complaints in scope with their forms."""
    hub, actor = request.app[HUB], actor_of(request)
    want = request.query.get("status", "")
    want = want if want in cp.STATUS_ZH else ""
    rows = await asyncio.to_thread(_rows, hub.reader, actor, want or None)
    depts = [r[0] for r in await asyncio.to_thread(
        lambda: hub.reader.execute("SELECT DISTINCT department FROM catalog ORDER BY department").fetchall())]  # fmt: skip
    ctx = _base(request, "投诉")
    ctx["ok"] = MESSAGES.get(request.query.get("ok", ""), "")
    ctx.update(complaints=rows, status=want, filters=[("", "全部"), *cp.STATUS_ZH.items()], departments=depts,
               error=error_msg, error_no=error_no, can_handle=actor.role in (ADMIN, SUPERVISOR),
               light_zh={"green": "正常", "yellow": "即将到期", "red": "已超期"})  # fmt: skip
    return render(request, "complaints.html", ctx, status)


async def ops_form(request: web.Request) -> web.Response:
    """POST /complaints/{no}/accept|refuse|assign|reply (form: text, department, csrf)."""
    hub, actor = request.app[HUB], actor_of(request)
    no, action = request.match_info["no"], request.path.rsplit("/", 1)[1]
    form = await _form(request)
    who = await asyncio.to_thread(actor_name, hub.reader, actor)
    dept = form.get("department", "")[:200] if action == "assign" else None
    _row, err = await _do(hub, no, action, who, form.get("text", "")[:8000].replace("\r\n", "\n"), dept)
    if err:
        return await ops_page(request, error_msg=chinese_part(err), error_no=no, status=409)
    raise web.HTTPSeeOther(f"/complaints?ok={action}#c{no}")


async def api_list(request: web.Request) -> web.Response:
    """GET /api/complaints[?status=]: the newest complaints in scope."""
    want = request.query.get("status") or None
    if want is not None and want not in cp.STATUS_ZH:
        return error(400, f"status 应为 {', '.join(cp.STATUS_ZH)} 之一 (unknown status)", "status")
    hub = request.app[HUB]
    return web.json_response(await asyncio.to_thread(_rows, hub.reader, actor_of(request), want), dumps=dumps)


async def api_get(request: web.Request) -> web.Response:
    """GET /api/complaints/{no}: one complaint (contact details for admins and supervisors)."""
    hub, actor = request.app[HUB], actor_of(request)
    c = await asyncio.to_thread(
        cp.complaint_view, hub.reader, request.match_info["no"], private=actor.role in (ADMIN, SUPERVISOR)
    )
    return error(404, "不存在或不在您的管辖范围内 (not found)") if c is None else web.json_response(c, dumps=dumps)


async def api_step(request: web.Request) -> web.Response:
    """POST /api/complaints/{no}/accept|refuse|assign|reply {text, department}."""
    hub, actor = request.app[HUB], actor_of(request)
    no, action = request.match_info["no"], request.path.rsplit("/", 1)[1]
    body = await read_object(request)  # 400 for anything but a JSON object
    who = await asyncio.to_thread(actor_name, hub.reader, actor) if actor.session_id else actor.name
    dept = str(body.get("department") or "") if action == "assign" else None
    _row, err = await _do(hub, no, action, who, str(body.get("text") or ""), dept)
    if err:
        return error(404 if err == NOT_FOUND else 409, err)
    c = await asyncio.to_thread(cp.complaint_view, hub.reader, no, private=actor.role in (ADMIN, SUPERVISOR))
    return web.json_response(c, dumps=dumps)
