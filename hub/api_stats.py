"""Statistics over HTTP (统计分析, docs/stats.md): GET /api/stats (JSON), GET /api/stats/export
(one table as CSV or XLSX), the operator page GET /stats (charts with their tables; the tables
are the page without JavaScript) and GET /stats/bulletin.pdf (the month's 月度通报).

Everything is computed within the actor's scope (hub/access.py); `region` and `department`
narrow it further, never widen it. Every parameter is checked; a bad one is a 400 naming it.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote, urlencode

from aiohttp import web

from hub.access import ADMIN, SUPERVISOR
from hub.httpjson import dumps, error
from hub.stats import TRENDS, Filter, StatsError, compute, parse_period
from hub.stats_tables import TABLE_NAMES, TREND_ZH, tables, to_csv, to_xlsx
from hub.ttlcache import TtlCache
from hub.web_auth import actor_of
from protocol.calendar import local_date

HUB = web.AppKey("hub_stats", object)
CACHE = web.AppKey("stats_cache", object)
CACHE_TTL_S = 60.0
CACHE_ENTRIES = 32
PARAMS = frozenset({"from", "to", "by", "region", "department", "table", "format", "month"})
REGION_RE = re.compile(r"^\d{1,12}$")
MONTH_RE = re.compile(r"^\d{4}-\d{2}$")
DEPARTMENT_MAX = 100


def query(request: web.Request) -> tuple[Filter, object, object, str]:
    """(filter, first, last, trend) from the query string; StatsError names a bad parameter."""
    q = request.query
    unknown = sorted(set(q) - PARAMS)
    if unknown:
        raise StatsError(f"未知参数 (unknown parameter): {unknown[0][:30]}")
    for k in q:
        if len(q.getall(k)) > 1:
            raise StatsError(f"参数只能给一次 (parameter given twice): {k}")
        if len(q[k]) > 200:
            raise StatsError(f"参数过长 (parameter too long): {k}")
    today = local_date(request.app[HUB].ingest.now())
    first, last = parse_period(q.get("from") or None, q.get("to") or None, today)
    trend = q.get("by") or "day"
    if trend not in TRENDS:
        raise StatsError(f"by 应为 {'、'.join(TRENDS)} 之一 (by must be one of {', '.join(TRENDS)})")
    region = q.get("region") or None
    if region is not None and not REGION_RE.match(region):
        raise StatsError("region 应为 1-12 位行政区划代码前缀 (region must be 1-12 digits)")
    dept = (q.get("department") or "").strip() or None
    if dept is not None and len(dept) > DEPARTMENT_MAX:
        raise StatsError(f"department 最长 {DEPARTMENT_MAX} 字 (department too long)")
    return Filter(actor_of(request), region, dept), first, last, trend


def _compute(request: web.Request, flt: Filter, first, last, trend: str) -> tuple[dict, list]:
    hub = request.app[HUB]
    now = hub.ingest.now()
    a = flt.actor
    key = (a.role, a.scope, flt.region, flt.department, first, last, trend, local_date(now))

    def fresh() -> tuple[dict, list]:
        stats = compute(hub.reader, flt, first, last, hub.ingest.calendar, now,
                        reply_days=hub.cfg.complaints.reply_days, trend=trend)  # fmt: skip
        names = {s: hub.sites.name(s) for s in stats["received"]["sites"]}
        return stats, tables(stats, names)

    return request.app[CACHE].get_or_compute(key, fresh)


async def stats_api(request: web.Request) -> web.Response:
    """GET /api/stats?from=&to=&by=day|week|month&region=&department=: the summary and every table."""
    try:
        flt, first, last, trend = query(request)
    except StatsError as exc:
        return error(400, str(exc))
    stats, tabs = await asyncio.to_thread(_compute, request, flt, first, last, trend)
    body = {"from": stats["from"], "to": stats["to"], "as_of": stats["as_of"], "by": trend,
            "summary": stats["summary"], "tables": [t.to_json() for t in tabs]}  # fmt: skip
    return web.json_response(body, dumps=dumps, headers={"Cache-Control": "no-store"})


async def export(request: web.Request) -> web.Response:
    """GET /api/stats/export?table=NAME&format=csv|xlsx&(the stats parameters): one table."""
    name, fmt = request.query.get("table", ""), request.query.get("format", "")
    if name not in TABLE_NAMES:
        return error(400, f"table 应为 {', '.join(TABLE_NAMES)} 之一 (unknown table)")
    if fmt not in ("csv", "xlsx"):
        return error(400, "format 应为 csv 或 xlsx (format must be csv or xlsx)")
    try:
        flt, first, last, trend = query(request)
    except StatsError as exc:
        return error(400, str(exc))
    _stats, tabs = await asyncio.to_thread(_compute, request, flt, first, last, trend)
    t = next(t for t in tabs if t.name == name)
    filename = f"统计-{t.title}-{first}-{last}.{fmt}"
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}", "Cache-Control": "no-store"}
    if fmt == "csv":
        return web.Response(body=to_csv(t), content_type="text/csv", charset="utf-8", headers=headers)
    body = await asyncio.to_thread(to_xlsx, t, f"统计期间 {first} 至 {last}")
    ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(body=body, content_type=ctype, headers=headers)


async def page(request: web.Request) -> web.Response:
    """GET /stats: the filter form, the summary, each chart with its table and export links."""
    from hub.pages import _base, render

    ctx = _base(request, "统计分析")
    try:
        flt, first, last, trend = query(request)
    except StatsError as exc:
        ctx.update(error=str(exc), tables=[], form={}, trends=TREND_ZH, exports="", month="", can_bulletin=False)
        return render(request, "stats.html", ctx, 400)
    _stats, tabs = await asyncio.to_thread(_compute, request, flt, first, last, trend)
    form = {"from": first.isoformat(), "to": last.isoformat(), "by": trend, "region": flt.region or "",
            "department": flt.department or ""}  # fmt: skip
    exports = urlencode({k: v for k, v in form.items() if v})
    ctx.update(tables=tabs, form=form, trends=TREND_ZH, exports=exports, month=first.strftime("%Y-%m"),
               can_bulletin=actor_of(request).role in (ADMIN, SUPERVISOR))  # fmt: skip
    return render(request, "stats.html", ctx)


async def bulletin_pdf(request: web.Request) -> web.Response:
    """GET /stats/bulletin.pdf?month=YYYY-MM: the month's 月度通报 of the actor's scope (issued
    and numbered on first request, the same stored PDF afterwards)."""
    from hub.pages import actor_name
    from hub.stats_bulletin import bulletin

    hub, actor = request.app[HUB], actor_of(request)
    month = request.query.get("month", "")
    if not MONTH_RE.match(month) or not 1 <= int(month[5:]) <= 12 or not 2000 <= int(month[:4]) <= 2100:
        return error(400, "month 应为 YYYY-MM，如 2026-11 (month must be YYYY-MM)")
    now = hub.ingest.now()
    if month >= now.strftime("%Y-%m"):
        return error(400, "只能生成已结束月份的通报 (only a finished month has a bulletin)")
    who = await asyncio.to_thread(actor_name, hub.reader, actor) if actor.session_id else actor.name
    names = {code: hub.sites.name(code) for code in hub.sites.active()}

    def issue(conn):
        return bulletin(conn, month, Filter(actor), hub.ingest.calendar, now, authority=hub.cfg.name,
                        prefix=hub.cfg.doc_prefix, files_dir=hub.data_dir / "documents", site_names=names,
                        actor=who, reply_days=hub.cfg.complaints.reply_days)  # fmt: skip

    meta, pdf = await asyncio.to_thread(hub.write, issue)
    filename = f"月度通报-{month}-{meta['number']}.pdf"
    return web.Response(body=pdf, content_type="application/pdf", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}", "Cache-Control": "no-store"})  # fmt: skip


def add_routes(app: web.Application, hub) -> None:
    """Register the statistics' API and pages (after hub.pages.setup)."""
    app[HUB] = hub
    app[CACHE] = TtlCache(CACHE_TTL_S, CACHE_ENTRIES)
    r = app.router
    r.add_get("/api/stats", stats_api)
    r.add_get("/api/stats/export", export)
    r.add_get("/stats", page)
    r.add_get("/stats/bulletin.pdf", bulletin_pdf)
