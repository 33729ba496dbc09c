"""Server-rendered pages (Jinja2, autoescaped; DESIGN §10): the case page (办件详情) and the 督办
page, with forms that work without JavaScript (POST with the session's `csrf` field, then a
redirect back with a Chinese message; a rule's refusal is shown on the page in Chinese).

Self-contained: its own Jinja environment under its own app key (templates in hub/templates/),
its own routes and stylesheet (static/pages.css). Rules per route: hub/access.py (page=True:
not logged in → /login?next=…, refusals as HTML pages).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from hub import tickets as tk
from hub.access import ADMIN, DEPARTMENT, SUPERVISOR, Actor, scope_where
from hub.accounts import ROLE_ZH, get_user
from hub.case_view import ticket_brief
from hub.sessions import csrf_token
from hub.web_auth import actor_of
from protocol.calendar import CST, local_date

TEMPLATES = Path(__file__).parent / "templates"
JINJA = web.AppKey("pages_jinja", jinja2.Environment)
HUB = web.AppKey("pages_hub", object)
REASON_MAX = 2000  # characters of a reason, reply or review text (the API allows 8000; a form needs less)
TICKETS_SHOWN = 100  # newest first; the status filter narrows the rest
MESSAGES = {  # ?ok= after a successful form: fixed texts, never text from the request
    "opened": "已发起督办。",
    "replied": "回复已提交，等待监察人员审核。",
    "accepted": "已采纳回复，督办件办结。",
    "rejected": "已退回：回复不予采纳，已按督办程序转下一级督办。",
}
MANUAL_LEVELS = ("duban", "order_explain", "inquiry", "rectify")  # what a supervisor opens by hand
STATUS_FILTERS = ("open", "replied", "accepted", "escalated", "final")


def _china_time(value: str | int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An ISO time or ms since 1970 as China time (Asia/Shanghai), e.g. 2026-11-20 09:00."""
    if value in (None, ""):
        return "—"
    if isinstance(value, int):
        dt = datetime.fromtimestamp(value / 1000, CST)
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        if dt.tzinfo is None:
            return dt.strftime(fmt)
    return dt.astimezone(CST).strftime(fmt)


def setup(app: web.Application, hub) -> None:
    """The pages' Jinja environment and routes."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        app_key=JINJA,
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        filters={"cn_time": _china_time},
    )
    env.globals["ROLE_ZH"] = ROLE_ZH
    app[HUB] = hub
    r = app.router
    r.add_get("/cases/{case_no}", case_page)
    r.add_post("/cases/{case_no}/tickets", open_ticket_form)
    r.add_get("/tickets", tickets_page)
    r.add_post("/tickets/{id:\\d{1,18}}/reply", reply_form)
    r.add_post("/tickets/{id:\\d{1,18}}/review", review_form)


def _base(request: web.Request, title: str) -> dict:
    actor = actor_of(request)
    return {
        "title": title,
        "actor": actor,
        "role_zh": ROLE_ZH.get(actor.role, actor.role),
        "csrf": csrf_token(actor.session_id) if actor.session_id else "",
        "ok": MESSAGES.get(request.query.get("ok", ""), ""),
        "error": "",
        "can_review": actor.role in (ADMIN, SUPERVISOR),
        "can_reply": actor.role in (ADMIN, DEPARTMENT),
    }


def render(request: web.Request, name: str, ctx: dict, status: int = 200) -> web.Response:
    """A template as a no-store HTML response."""
    resp = aiohttp_jinja2.render_template(name, request, ctx, app_key=JINJA, status=status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """A refusal as a page (404 not found or out of scope, 403 role or CSRF)."""
    try:
        actor = actor_of(request)
    except KeyError:
        actor = None
    ctx = {"title": {404: "未找到", 403: "无权访问"}.get(status, "出错了"), "actor": actor, "status": status,
           "message": message, "csrf": csrf_token(actor.session_id) if actor and actor.session_id else "",
           "role_zh": ROLE_ZH.get(actor.role, "") if actor else "", "ok": "", "error": ""}  # fmt: skip
    return render(request, "error.html", ctx, status)


def not_found(request: web.Request) -> web.Response:
    """The one 404 page for an unknown case and a case outside the actor's scope."""
    return error_page(request, 404, "办件不存在，或不在您的管辖范围内。")


# -- the case page ----------------------------------------------------------------------------------
async def case_page(request: web.Request, *, error: str = "", status: int = 200, values=None) -> web.Response:
    """GET /cases/{case_no}: the whole case (hub/case_view.py), and the form to open a 督办."""
    from hub.api import READER, case_json

    case_no = request.match_info["case_no"]
    case = await asyncio.to_thread(case_json, request.app[READER], case_no, actor_of(request), request.app[HUB])
    if case is None:
        return not_found(request)
    ctx = _base(request, f"办件 {case_no}")
    ctx.update(case=case, error=error, levels=[(k, tk.LEVEL_TITLES[k]) for k in MANUAL_LEVELS], values=values or {})
    ctx["site_name"] = request.app[HUB].sites.name(case["site"])
    ctx["has_active_ticket"] = any(t["status"] in (tk.OPEN, tk.REPLIED) for t in case["tickets"])
    return render(request, "case.html", ctx, status)


async def _form(request: web.Request) -> dict:
    try:
        form = await request.post()
    except web.HTTPException:
        raise
    except Exception:
        raise web.HTTPBadRequest(text="表单无效 (malformed form)") from None
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def _text(form: dict, key: str, label: str, *, required: bool = True) -> tuple[str, str]:
    """(value, error in Chinese or ''). Line breaks count as one character, as the browser's
    maxlength counts them (it sends each as CR LF)."""
    value = form.get(key, "").replace("\r\n", "\n").strip()
    if required and not value:
        return "", f"请填写{label}。"
    if len(value) > REASON_MAX:
        return "", f"{label}过长：最多 {REASON_MAX} 个字（现 {len(value)} 个）。"
    return value, ""


def chinese_part(message: str) -> str:
    """The Chinese of a bilingual rule message "中文 (English)": what a person reads on a page
    (the API's JSON keeps both)."""
    cut = message.find(" (")
    if cut > 0 and message.endswith(")") and message[cut + 2 : -1].isascii():
        return message[:cut]
    return message


def actor_name(reader, actor: Actor) -> str:
    """The name written on a ticket for a session actor: the account's display name and login."""
    user = get_user(reader, actor.name)
    named = user is not None and user.display_name and user.display_name != actor.name
    return f"{user.display_name}（{actor.name}）" if named else actor.name


async def _write(request: web.Request, fn):
    """Run fn(conn) in the hub's write transaction: (result, '') or (None, the rule's message)."""
    hub = request.app[HUB]
    try:
        return await asyncio.to_thread(hub.write, fn), ""
    except tk.TicketError as exc:
        return None, chinese_part(str(exc))
    except LookupError:
        return None, "督办件不存在，或不在您的管辖范围内。"


async def open_ticket_form(request: web.Request) -> web.Response:
    """POST /cases/{case_no}/tickets (form: level, reason, csrf): a supervisor opens a 督办 by hand."""
    hub, case_no = request.app[HUB], request.match_info["case_no"]
    form = await _form(request)
    reason, err = _text(form, "reason", "督办事由")
    level = form.get("level", "duban")
    if not err and level not in MANUAL_LEVELS:
        err = "请选择督办类别。"
    typed = {"reason": form.get("reason", "")[:8000], "level": level}  # shown again on a refusal
    if err:
        return await case_page(request, error=err, status=422, values=typed)
    who = await asyncio.to_thread(actor_name, hub.reader, actor_of(request))
    now = hub.ingest.now()

    def manual(c):
        if hub.supervisor.active_ticket(c, case_no):
            raise tk.TicketError("该办件已有在办督办件，请在督办页处理。")
        return hub.supervisor.open_ticket(c, case_no, level, who, now, reason=reason)

    _tid, err = await _write(request, manual)
    if err:
        return await case_page(request, error=err, status=409, values=typed)
    raise web.HTTPSeeOther(f"/cases/{quote(case_no)}?ok=opened#tickets")


# -- the 督办 page ----------------------------------------------------------------------------------
def ticket_rows(conn, actor: Actor, status: str | None, cal, today) -> tuple[list[dict], int]:
    """The newest TICKETS_SHOWN tickets within the actor's scope, each with its events and
    documents (three queries whatever the count), and how many match in all."""
    from hub.db import in_list
    from hub.documents import KINDS

    where, args = [], []
    if status:
        where.append("status = ?")
        args.append(status)
    scoped, scope_args = scope_where(actor)
    if scoped:
        where.append(scoped)
        args.extend(scope_args)
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    total = conn.execute(f"SELECT count(*) FROM tickets{cond}", args).fetchone()[0]
    cur = conn.execute(f"SELECT * FROM tickets{cond} ORDER BY id DESC LIMIT {TICKETS_SHOWN}", args)
    cols = [c[0] for c in cur.description]
    tickets = [dict(zip(cols, r)) for r in cur.fetchall()]
    if not tickets:
        return [], total
    by_id = {t["id"]: {**t, "events": [], "documents": []} for t in tickets}
    ids, ids_args = in_list(conn, "ticket_id", list(by_id))
    for tid, at_ms, who, action, text in conn.execute(
        f"SELECT ticket_id, at_ms, actor, action, text FROM ticket_events WHERE {ids} ORDER BY id", ids_args
    ):
        by_id[tid]["events"].append({"at_ms": at_ms, "actor": who, "action": action, "text": text})
    for tid, kind, st, doc_id in conn.execute(
        f"SELECT ticket_id, kind, status, document_id FROM document_queue WHERE {ids} ORDER BY id", ids_args
    ):
        by_id[tid]["documents"].append(
            {"kind": kind, "status": st, "document_id": doc_id, "title": KINDS.get(kind, kind)}
        )
    return [ticket_brief(by_id[t["id"]], cal, today) for t in tickets], total


async def tickets_page(request: web.Request, *, error: str = "", status: int = 200, error_id: int = 0, typed: str = ""):
    """GET /tickets[?status=open]: the tickets in scope; reply and review forms where allowed."""
    hub, actor = request.app[HUB], actor_of(request)
    want = request.query.get("status", "")
    if want and want not in STATUS_FILTERS:
        want = ""
    today = local_date(hub.ingest.now())
    rows, total = await asyncio.to_thread(ticket_rows, hub.reader, actor, want or None, hub.ingest.calendar, today)
    ctx = _base(request, "督办")
    filters = [("", "全部")] + [(s, tk.STATUS_ZH[s]) for s in STATUS_FILTERS]
    ctx.update(tickets=rows, total=total, status=want, filters=filters, error=error, error_id=error_id, typed=typed)
    return render(request, "tickets.html", ctx, status)


async def reply_form(request: web.Request) -> web.Response:
    """POST /tickets/{id}/reply (form: text, csrf): the department replies."""
    hub, tid, actor = request.app[HUB], int(request.match_info["id"]), actor_of(request)
    form = await _form(request)
    text, err = _text(form, "text", "回复内容")
    typed = form.get("text", "")[:8000]  # shown again on a refusal
    if err:
        return await tickets_page(request, error=err, status=422, error_id=tid, typed=typed)
    who = await asyncio.to_thread(actor_name, hub.reader, actor)
    now = hub.ingest.now()
    _t, err = await _write(request, lambda c: hub.supervisor.reply(c, tid, who, text, now, actor.department))
    if err:
        return await tickets_page(request, error=err, status=409, error_id=tid, typed=typed)
    raise web.HTTPSeeOther(f"/tickets?ok=replied#t{tid}")


async def review_form(request: web.Request) -> web.Response:
    """POST /tickets/{id}/review (form: decision accept|reject, text, csrf): a supervisor reviews."""
    hub, tid, actor = request.app[HUB], int(request.match_info["id"]), actor_of(request)
    form = await _form(request)
    decision = form.get("decision", "")
    text, err = _text(form, "text", "审核意见", required=decision == "reject")
    typed = form.get("text", "")[:8000]  # shown again on a refusal
    if not err and decision not in ("accept", "reject"):
        err = "请选择采纳或退回。"
    if err:
        return await tickets_page(request, error=err, status=422, error_id=tid, typed=typed)
    who = await asyncio.to_thread(actor_name, hub.reader, actor)
    now = hub.ingest.now()
    _t, err = await _write(request, lambda c: hub.supervisor.review(c, tid, decision, who, text, now))
    if err:
        return await tickets_page(request, error=err, status=409, error_id=tid, typed=typed)
    raise web.HTTPSeeOther(f"/tickets?ok={'accepted' if decision == 'accept' else 'rejected'}#t{tid}")
