"""The clerk's case pages (窗口受理): the window's open cases, registering a case from the catalog,
one case with the steps the rules allow next, and the printable receipts.

A clerk works on the cases of their own window (the session's window; never a form field).
Every change goes through the same store calls as the department API (AgentStore.register and
add_event), so the case rules and their Chinese refusals are the store's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime

import aiohttp_jinja2
from aiohttp import web

from agent.forms import FormErrors, applicant_from, clean, event_from
from agent.hall import ARMING_EVENTS
from agent.once_forms import content_key, submission_key
from agent.receipts import KINDS, PAPERS, cn_date, cn_time, receipt_context
from agent.steps import CASE_TYPE_ZH, LIGHT_ZH, STATUS_ZH, STEP_FIELDS, allowed_steps, step_label, zh
from agent.store import StoreError
from agent.web import CLERK_WEB, CURRENT, FAILED_STEP, base_ctx, page_error, wants_json
from protocol.caseclock import CLOSED
from protocol.caseclock_types import EVENT_ZH
from protocol.models import NewCase

CASE_NO_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _now(request: web.Request) -> datetime:
    from agent.api import NOW

    return request.app[NOW]()


def _clerk(request: web.Request):
    return request[CURRENT].clerk


def _labels() -> dict:
    return {"status_zh": STATUS_ZH, "light_zh": LIGHT_ZH, "case_type_zh": CASE_TYPE_ZH, "cn_date": cn_date}


async def home(request: web.Request) -> web.Response:
    """The window's screen: its open cases with light, next deadline and working days left, the
    most urgent first."""
    cw, clerk = request.app[CLERK_WEB], _clerk(request)
    cases = await asyncio.to_thread(cw.store.open_cases, clerk.window, _now(request), MAX_LISTED)
    for c in cases:
        c["next_deadline"] = _next_deadline(c)
    cases.sort(key=urgency)
    if wants_json(request):
        return _json({"window": clerk.window, "clerk": clerk.name, "cases": cases})
    ctx = base_ctx(request, cases=cases, capped=len(cases) >= MAX_LISTED, max_listed=MAX_LISTED, **_labels())
    return aiohttp_jinja2.render_template("home.html", request, ctx)


def _json(body: dict, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str))


MAX_LISTED = 1000  # open cases of one window evaluated for its screen (~0.4 ms each)
LIGHT_RANK = {"red": 0, "yellow": 1, "green": 2}


def urgency(view: dict) -> tuple:
    """Sort key of the window's screen: red first, then yellow, then green; within a light the
    fewest working days left first (none known last), then the newest."""
    left = view.get("remaining_days")
    return (LIGHT_RANK.get(view["light"], 3), left if left is not None else 10**6, -view["seq"])


def _next_deadline(view: dict) -> tuple[str, str | None]:
    """(what, date) of the deadline the clerk must meet next for an open case."""
    if view["status"] in ("received",):
        return "受理期限", view["acceptance_due"]
    if view["status"] == "approved":
        return "送达期限", view.get("delivery_due")
    if view["status"] == "supplement_requested":
        return "待补正材料", None
    return "承诺办结", view["due_date"]


async def register_page(request: web.Request) -> web.Response:
    """GET /register: search the catalog (?q=), then the form of one item (?item=)."""
    cw = request.app[CLERK_WEB]
    q = clean(request.query.get("q"), 64)
    code = clean(request.query.get("item"), 64)
    item = cw.store.item(code) if code else None
    results = await asyncio.to_thread(cw.store.search_catalog, q) if q and item is None else []
    ctx = base_ctx(request, q=q, results=results, item=item, errors={}, values={}, ticked=(), **_labels())
    if code and item is None:
        ctx["message"] = f"事项编码 {code} 不在本站事项目录中"
    return aiohttp_jinja2.render_template("register.html", request, ctx, status=404 if ctx.get("message") else 200)


async def register(request: web.Request) -> web.Response:
    """POST /register: 收件 with the session's window and clerk; then the case with its receipt."""
    form = await request.post()
    return await _once(request, form, lambda: _register(request, form))


async def _once(request: web.Request, form, change) -> web.Response:
    """Run a change at most once per submitted form (agent/once_forms.py), then show its page; a
    form sent again goes where the first went."""
    cw = request.app[CLERK_WEB]
    key = submission_key(request[CURRENT].id_hash, request.path, form)
    if (went := await cw.once.claim(key)) is not None:
        raise web.HTTPSeeOther(went)

    async def once():
        got = None
        try:
            got = await change()
            return got
        finally:
            cw.once.finish(key, got if isinstance(got, str) else None)

    # shielded: a second press makes the browser drop the first request, and aiohttp cancels its
    # handler; the change must still finish and tell the second request where it went
    got = await asyncio.shield(asyncio.ensure_future(once()))
    if isinstance(got, web.Response):  # refused: the page says what to correct
        return got
    _kick(request)
    raise web.HTTPSeeOther(got)


async def _register(request: web.Request, form) -> str | web.Response:
    """The case registered from `form` (its page's address), or the form again with what to correct."""
    cw, clerk = request.app[CLERK_WEB], _clerk(request)
    code = clean(form.get("item_code"), 64)
    item = cw.store.item(code)
    if item is None:
        return page_error(request, 422, "请先从事项目录中选择事项")
    again = content_key(request[CURRENT].id_hash, request.path, form)
    if not form.get("again") and (went := cw.once.recent(again, time.monotonic())) is not None:
        case_no = went.split("/")[2].split("?")[0]
        return _register_form(request, form, item, {"again": f"该申请人的此事项刚刚已登记（办件 {case_no}）。"}, went)
    try:
        applicant = applicant_from(form)
        view = await asyncio.to_thread(
            cw.store.register,
            NewCase(item_code=code, applicant=applicant, window=clerk.window, clerk=clerk.name),
            _now(request),
        )
    except (FormErrors, StoreError) as exc:
        errors = exc.errors if isinstance(exc, FormErrors) else {exc.field or "item_code": zh(str(exc))}
        return _register_form(request, form, item, errors)
    location = f"/cases/{view['case_no']}?done=registered"
    cw.once.remember(again, location, time.monotonic())
    return location


def _register_form(request: web.Request, form, item, errors: dict, registered: str | None = None) -> web.Response:
    """The registration form again with what was typed and what to correct (422), or asking to
    confirm a registration just made with the same content (409, `registered`: its page)."""
    values = {k: clean(form.get(k), 100) for k in ("name", "id_no", "phone")}
    ticked = {str(v)[:4] for v in form.getall("materials", [])[:200]}  # the materials ticked stay ticked
    ctx = base_ctx(request, q="", results=[], item=item, errors=errors, values=values, registered=registered)
    ctx["ticked"] = ticked
    ctx.update(_labels())
    return aiohttp_jinja2.render_template("register.html", request, ctx, status=409 if registered else 422)


def _case_no(request: web.Request) -> str:
    case_no = request.match_info["case_no"]
    if not CASE_NO_RE.fullmatch(case_no):
        raise web.HTTPNotFound()
    return case_no


def _own_case(request: web.Request, case_no: str) -> tuple[dict, dict]:
    """(view, detail) of a case of the clerk's window; 404 (as a page) for any other."""
    cw, clerk = request.app[CLERK_WEB], _clerk(request)
    try:
        view = cw.store.case_view(case_no, _now(request))
    except StoreError:
        view = None
    if view is None or view["window"] != clerk.window:
        raise _NotHere()
    return view, cw.store.case_detail(case_no)


class _NotHere(Exception):
    pass


async def case_page(request: web.Request, *, error: str | None = None, status: int = 200, errors=None, values=None):
    """GET /cases/{case_no}: the case, its timeline and the steps the rules allow next."""
    cw = request.app[CLERK_WEB]
    case_no = _case_no(request)
    try:
        view, detail = await asyncio.to_thread(_own_case, request, case_no)
    except _NotHere:
        return page_error(request, 404, f"本窗口没有办件 {case_no}")
    now = _now(request)
    steps = allowed_steps(detail["rule"], detail["received_at"], detail["events"], now, cw.store.calendar)
    done = clean(request.query.get("done"), 32)
    hall = cw.hall
    if wants_json(request) and error is None:
        evaluator = hall.evaluator(view["window"]) if hall is not None and hasattr(hall, "evaluator") else None
        return _json({**view, "next_steps": steps, "evaluator": evaluator})
    evaluator = hall.evaluator(view["window"]) if hall is not None and hasattr(hall, "evaluator") else None
    ctx = base_ctx(
        request,
        case=view,
        detail=detail,
        item=detail["item"],
        events=[(EVENT_ZH.get(e.type, e.type), cn_time(e.at), e) for e in detail["events"]],
        steps=[(t, step_label(t), STEP_FIELDS[t]) for t in steps],
        done=done,
        done_label=EVENT_ZH.get(done, "收件" if done == "registered" else ""),
        evaluator=evaluator,
        arming=ARMING_EVENTS,
        error=error,
        errors=errors or {},
        values=values or {},
        failed_step=request.get(FAILED_STEP),
        has_supplement=any(e.type == "request_supplement" for e in detail["events"]),
        received=cn_time(view["received_at"]),
        is_open=view["status"] not in CLOSED,
        **_labels(),
    )
    return aiohttp_jinja2.render_template("case.html", request, ctx, status=status)


async def take_step(request: web.Request) -> web.Response:
    """POST /cases/{case_no}/steps (form: type and what that step needs): the store checks the rules."""
    case_no = _case_no(request)
    form = await request.post()
    return await _once(request, form, lambda: _take_step(request, case_no, form))


async def _take_step(request: web.Request, case_no: str, form) -> str | web.Response:
    """The step recorded (the case page's address), or a page saying what to correct."""
    cw, clerk = request.app[CLERK_WEB], _clerk(request)
    event_type = clean(form.get("type"), 32)
    if event_type not in STEP_FIELDS:
        return page_error(request, 422, "未知的办理环节")
    request[FAILED_STEP] = event_type
    try:
        await asyncio.to_thread(_own_case, request, case_no)
    except _NotHere:
        return page_error(request, 404, f"本窗口没有办件 {case_no}")
    values = {k: clean(form.get(k), 2000) for k in ("reason", "approver", "step", "link", "procedure", "days")}
    try:
        req = event_from(event_type, form, clerk.name)
        await asyncio.to_thread(cw.store.add_event, case_no, req, _now(request))
    except FormErrors as exc:
        return await case_page(request, error="请更正以下内容", status=422, errors=exc.errors, values=values)
    except StoreError as exc:  # the case rules' refusal, in their words
        return await case_page(
            request, error=f"{step_label(event_type)}未能办理：{zh(str(exc))}", status=exc.status, values=values
        )
    return f"/cases/{case_no}?done={event_type}"


async def receipt(request: web.Request) -> web.Response:
    """GET /cases/{case_no}/receipt?kind=receipt|supplement&paper=a4|80mm: the printable receipt."""
    cw = request.app[CLERK_WEB]
    case_no = _case_no(request)
    kind = request.query.get("kind", "receipt")
    paper = request.query.get("paper", "a4")
    if kind not in KINDS or paper not in PAPERS:
        return page_error(request, 422, "回执种类或纸张无效")
    try:
        view, detail = await asyncio.to_thread(_own_case, request, case_no)
    except _NotHere:
        return page_error(request, 404, f"本窗口没有办件 {case_no}")
    if kind == "supplement" and not any(e.type == "request_supplement" for e in detail["events"]):
        return page_error(request, 409, "该办件没有补正告知，不能打印补正告知书")
    ctx = receipt_context(
        kind, view, detail, hall_name=cw.hall_name, phone=cw.phone, lookup_base=cw.lookup_url, now=_now(request)
    )
    ctx["window_label"] = base_ctx(request)["window_label"]
    return aiohttp_jinja2.render_template("receipt.html", request, {**ctx, "paper": paper})


def _kick(request: web.Request) -> None:
    from agent.api import SYNC

    sync = request.app.get(SYNC)
    if sync is not None:
        sync.kick()


def add_routes(app: web.Application) -> None:
    """The case pages (under the session middleware of agent/web.py)."""
    app.router.add_get("/register", register_page)
    app.router.add_post("/register", register)
    app.router.add_get("/cases/{case_no}", case_page)
    app.router.add_post("/cases/{case_no}/steps", take_step)
    app.router.add_get("/cases/{case_no}/receipt", receipt)
