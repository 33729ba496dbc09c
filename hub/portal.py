"""The citizen portal (公众门户, DESIGN §10): no login, zh-CN, phone-sized pages rendered on the
server, each with a JSON twin under /api/public/... computed by the same function
(hub/portal_data.py). 办事指南 (guides and forms), 办件查询 (case number + query code; guessing
is rate-limited by hub.api's Limiter), 评价 (rate a finished case once: hub/ratings.py) and the
published on-time rates (结果公示). The OpenAPI document: hub/portal_openapi.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import date, datetime
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from hub import followups
from hub import portal_data as pd
from hub.httpjson import dumps, error, read_object
from hub.portal_guide import FORM_NAME
from hub.ratings import CHANNEL_ZH, MAX_COMMENT, RatingRefused, record_portal_rating
from protocol.calendar import CST
from protocol.models import LEVEL_NAMES

NOT_FOUND = "未找到该办件，请核对办件编号和查询码 (no case with that number and query code)"
TOO_MANY = "查询过于频繁，请稍后再试 (too many lookups, try again later)"
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
RESULTS_CACHE = web.AppKey("portal_results_cache", dict)
RESULTS_TTL_S = 300.0  # the rates change slowly; anyone may ask, so one aggregate per period is shared
RESULTS_CACHED = 64  # (until, months) pairs kept
SEARCH_CACHE = web.AppKey("portal_search_cache", dict)  # the normalized catalog, per signed version


def add_routes(app: web.Application) -> None:
    """The portal's pages and JSON routes (rules: hub/access.py, all public)."""
    app[RESULTS_CACHE], app[SEARCH_CACHE] = {}, {}
    r = app.router
    r.add_get("/public", home_page)
    r.add_get("/public/items/{code}", item_page)
    r.add_post("/public/rating", rating_form)
    r.add_get("/public/results", results_page)
    r.add_get("/public/forms/{name}", form_file)
    r.add_get("/api/public/items", items_json)
    r.add_get("/api/public/items/{code}", item_json)
    r.add_get("/api/public/cases/{case_no}", case_json)
    r.add_post("/api/public/cases/{case_no}/rating", rating_json)
    r.add_get("/api/public/results", results_json)
    r.add_get("/api/public/openapi.json", openapi_json)


def _app_parts(request: web.Request):
    from hub import api

    return api, request.app[api.READER]


async def _read(request: web.Request, fn, *args):
    _api, reader = _app_parts(request)
    return await asyncio.to_thread(fn, reader, *args)


def _allowed(request: web.Request) -> bool:
    """One guess of a case number and query code, as the lookup limiter allows."""
    api, _ = _app_parts(request)
    return api.lookup_allowed(request)


def _same(a: str, b: str) -> bool:
    from hub.web_auth import same

    return same(a, b)


def _render(request: web.Request, name: str, ctx: dict, status: int = 200) -> web.Response:
    from hub.pages import JINJA

    ctx = {"LEVEL_NAMES": LEVEL_NAMES, "CHANNEL_ZH": CHANNEL_ZH, "MAX_COMMENT": MAX_COMMENT, **ctx}
    resp = aiohttp_jinja2.render_template(f"portal/{name}", request, ctx, app_key=JINJA, status=status)
    resp.headers["Cache-Control"] = "no-store"  # a lookup shows a case: never kept by a shared cache
    return resp


def _json(body, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


async def _lookup(request: web.Request, case_no: str, code: str) -> tuple[int, dict | str]:
    """(200, progress) or (404/429, Chinese message)."""
    if not _allowed(request):
        return 429, TOO_MANY
    got = await _read(request, pd.case_progress, case_no.strip(), code.strip(), _same)
    return (200, got) if got else (404, NOT_FOUND)


# ---- 办事指南 and 办件查询 ----
async def home_page(request: web.Request) -> web.Response:
    """/public: guide search (?q=) and case lookup (?case_no=&code=, the receipt's QR code)."""
    q = request.query.get("q", "")[: pd.MAX_QUERY]
    case_no, code = request.query.get("case_no", "")[:64], request.query.get("code", "")[:32]
    ctx: dict = {"title": "公众服务", "q": q, "case_no": case_no, "code": code, "items": None}
    if "q" in request.query:
        ctx["items"] = await _read(request, pd.search_items, q, request.app[SEARCH_CACHE])
    status = 200
    if case_no or code:
        status, got = await _lookup(request, case_no, code)
        ctx["case" if status == 200 else "lookup_error"] = got
        status = 200 if status == 404 else status  # the page exists; a wrong code is a message on it (JSON: 404)
        ctx["ok"] = "感谢您的评价！" if request.query.get("ok") == "rated" and status == 200 else None
    return _render(request, "home.html", ctx, status)


async def items_json(request: web.Request) -> web.Response:
    """JSON twin of the guide search."""
    q = request.query.get("q", "")[: pd.MAX_QUERY]
    return _json({"items": await _read(request, pd.search_items, q, request.app[SEARCH_CACHE])})


async def item_page(request: web.Request) -> web.Response:
    """/public/items/{code}: one item's guide."""
    item = await _read(request, pd.item_detail, request.match_info["code"])
    if item is None:
        return _render(request, "missing.html", {"title": "未找到事项"}, 404)
    return _render(request, "item.html", {"title": item["name"], "item": item})


async def item_json(request: web.Request) -> web.Response:
    """JSON twin of the item page."""
    item = await _read(request, pd.item_detail, request.match_info["code"])
    return _json(item) if item else error(404, "未找到该事项 (no such item)")


async def case_json(request: web.Request) -> web.Response:
    """Case progress with case number + query code; no personal data."""
    status, got = await _lookup(request, request.match_info["case_no"], request.query.get("code", ""))
    return _json(got) if status == 200 else error(status, got)


async def form_file(request: web.Request) -> web.Response:
    """A downloadable form named by the catalog (stored at import; names checked, no paths)."""
    name = request.match_info["name"]
    row = None
    if FORM_NAME.match(name):
        row = await _read(
            request,
            lambda c, n: c.execute("SELECT media_type, content FROM portal_forms WHERE name=?", (n,)).fetchone(),
            name,
        )
    if row is None:
        return _render(request, "missing.html", {"title": "未找到表格"}, 404)
    return web.Response(
        body=bytes(row[1]),
        headers={
            "Content-Type": row[0],
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "public, max-age=3600",
        },
    )


# ---- 评价 ----
async def _rate(request: web.Request, case_no: str, code: str, level, comment) -> tuple[int, dict | str]:
    """Check number and code (rate-limited like a lookup), then store the rating."""
    if not _allowed(request):
        return 429, TOO_MANY
    if not pd.CASE_NO.match(case_no) or not pd.QUERY_CODE.match(code or ""):
        return 404, NOT_FOUND
    api, _ = _app_parts(request)
    hub = request.app[api.HUB]
    now_ms = int(time.time() * 1000)

    def write(conn):
        cur = conn.execute(
            "SELECT case_no, site, department, query_code, status, reg_json FROM cases WHERE case_no=?", (case_no,)
        )
        row = cur.fetchone()
        if row is None or not _same(row[3], code):
            return None
        stored = record_portal_rating(conn, dict(zip([d[0] for d in cur.description], row)), level, comment, now_ms)
        # a 差评 online opens its follow-up in the same transaction, as a keypad one does (docs/ratings.md)
        followups.open_followup_for_rating(
            conn,
            channel="portal",
            rating_ref=f"{stored['site']}:{stored['seq']}",
            level=stored["level"],
            level_name=stored["level_name"],
            rated_ms=now_ms,
            now=datetime.fromtimestamp(now_ms / 1000, CST),
            calendar=hub.ingest.calendar,
            ratings=hub.cfg.ratings,
            site=stored["site"],
            seq=stored["seq"],
            case_no=stored["case_no"],
            window=stored["window"] or None,
            staff=stored["staff"],
            department=stored["department"],
            notify=hub.supervisor.notify,  # the department hears of it through the outbox
        )
        return stored

    try:
        row = await asyncio.shield(asyncio.to_thread(hub.write, write))  # once written, finish even if the client goes
    except RatingRefused as exc:
        return exc.status, str(exc)
    if row is None:
        return 404, NOT_FOUND
    return 201, {"case_no": case_no, "level": row["level"], "level_name": row["level_name"], "channel": "portal"}


async def rating_form(request: web.Request) -> web.Response:
    """The rating form on the lookup page (works without JavaScript)."""
    try:
        form = await request.post()
    except web.HTTPException:
        raise
    except Exception:
        return _render(request, "missing.html", {"title": "表单无效"}, 400)
    case_no, code = str(form.get("case_no", ""))[:64], str(form.get("code", ""))[:32]
    status, got = await _rate(request, case_no, code, form.get("level"), str(form.get("comment", "")))
    if status == 201:
        raise web.HTTPSeeOther("/public?" + urlencode({"case_no": case_no, "code": code, "ok": "rated"}))
    ctx: dict = {"title": "公众服务", "q": "", "case_no": case_no, "code": code, "items": None, "error": got}
    if status in (400, 409):
        ctx["case"] = await _read(request, pd.case_progress, case_no, code, _same)
    return _render(request, "home.html", ctx, status)


async def rating_json(request: web.Request) -> web.Response:
    """JSON twin of the rating form: {"code", "level": 1..5, "comment"?}."""
    body = await read_object(request)  # 400 for what is not a JSON object (hub/httpjson.py)
    if not isinstance(body.get("code"), str):
        return error(400, "缺少查询码 (code is required)", "code")
    level = body.get("level")
    if isinstance(level, bool) or not isinstance(level, int):
        return error(400, "评价等级须为 1 至 5 的整数 (level must be an integer 1..5)", "level")
    status, got = await _rate(request, request.match_info["case_no"], body["code"], level, body.get("comment"))
    return _json(got, 201) if status == 201 else error(status, got)


# ---- 结果公示 ----
def _results_args(request: web.Request) -> tuple[date, int] | str:
    """(until, months) from ?until=YYYY-MM&months=N, or a Chinese complaint."""
    until_s, months_s = request.query.get("until", ""), request.query.get("months", "6")
    if until_s:
        m = MONTH.match(until_s)
        if not m or not 2000 <= int(m[1]) <= 2100:
            return "月份格式应为 YYYY-MM，例如 2026-11。"
        until = date(int(m[1]), int(m[2]), 1)
    else:
        until = datetime.now(CST).date()
    if not months_s.isdigit() or not 1 <= int(months_s) <= pd.MAX_MONTHS:
        return f"月数应为 1 至 {pd.MAX_MONTHS}。"
    return until, int(months_s)


async def _results(request: web.Request, until: date, months: int) -> dict:
    """The on-time rates, computed at most once per RESULTS_TTL_S for the same period."""
    cache, key, now = request.app[RESULTS_CACHE], (until.isoformat()[:7], months), time.monotonic()
    hit = cache.get(key)
    if hit and now - hit[0] < RESULTS_TTL_S:
        return hit[1]
    results = await _read(request, pd.on_time_rates, until, months)
    if len(cache) >= RESULTS_CACHED:
        cache.pop(min(cache, key=lambda k: cache[k][0]))
    cache[key] = (now, results)
    return results


async def results_page(request: web.Request) -> web.Response:
    """/public/results: monthly on-time rates per department."""
    args = _results_args(request)
    if isinstance(args, str):
        return _render(request, "results.html", {"title": "结果公示", "error": args, "results": None}, 400)
    results = await _results(request, *args)
    return _render(request, "results.html", {"title": "结果公示", "results": results})


async def results_json(request: web.Request) -> web.Response:
    """JSON twin of the results page."""
    args = _results_args(request)
    if isinstance(args, str):
        return error(400, args)
    return _json(await _results(request, *args))


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of the public API."""
    from hub.portal_openapi import DOCUMENT

    return _json(DOCUMENT)
