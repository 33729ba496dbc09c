"""Scores over HTTP (绩效评估, docs/scores.md): GET /api/scores, the operator page /scores with
the drill-down to every point, the manual-item and closing forms, and the published ranking on
the portal (/public/scores and /api/public/scores: closed periods, departments only).

Who sees what (decided here, docs/scores.md "Who sees what"): admins and unscoped supervisors
everything; a region-scoped supervisor every ranking, with the lines and windows/staff of its
region's sites only; a department officer its own department, windows and staff with their
lines; a viewer the department ranking without lines.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta

from aiohttp import web

from hub import scores
from hub.access import ADMIN, SUPERVISOR, VIEWER, Actor
from hub.httpjson import dumps, error
from hub.scores_rules import KINDS, MANUAL_CATEGORIES, RuleSet, load_rules, rules_path
from hub.ttlcache import TtlCache
from hub.web_auth import actor_of
from protocol.calendar import local_date

HUB = web.AppKey("hub_scores", object)
RULES = web.AppKey("scores_rules", RuleSet)
CACHE = web.AppKey("scores_cache", TtlCache)
CACHE_TTL_S = 60.0  # a month of a million cases takes seconds to score: pages reuse a result this long
MESSAGES = {"manual": "人工计分项已录入，已记入操作日志。", "closed": "该期间已封存：以后新增的记录不再改变其结果。"}


def _now(request) -> datetime:
    """The hub's clock (tests set hub.ingest.now)."""
    return request.app[HUB].ingest.now()


def default_period(today: date) -> str:
    """The last finished month (what a page opens on)."""
    first = today.replace(day=1) - timedelta(days=1)
    return f"{first.year}-{first.month:02d}"


def _compute(request, period: scores.Period, check: bool = True) -> dict:
    """The period's result, reused for CACHE_TTL_S within this process (a manual item or a closing
    made here clears it; another worker's page may lag by up to that long: docs/scores.md)."""
    hub = request.app[HUB]
    as_of = local_date(_now(request))

    def fresh():
        res = scores.period_result(hub.reader, request.app[RULES], period, hub.ingest.calendar, as_of,
                                   hub.cfg.complaints.reply_days, check=check)  # fmt: skip
        return res, None

    return request.app[CACHE].get_or_compute((period.text, as_of, check), fresh)[0]


def visible(result: dict, level: str, actor: Actor) -> list[dict]:
    """The entries of one level this actor may see (see the module docstring)."""
    entries = result["by"][level]
    if actor.department is not None:
        return [e for e in entries if e.get("department") == actor.department]
    if actor.role == VIEWER:
        return [{k: v for k, v in e.items() if k != "lines"} for e in entries] if level == "department" else []
    if actor.region is not None:
        keep = []
        for e in entries:
            if level != "department" and not (e.get("site") or "").startswith(actor.region):
                continue
            lines = [ln for ln in e["lines"] if ln.get("site") is None or ln["site"].startswith(actor.region)]
            keep.append({**e, "lines": lines, "lines_hidden": len(e["lines"]) - len(lines)})
        return keep
    return entries


def _args(request) -> tuple[scores.Period, str] | str:
    try:
        period = scores.parse_period(request.query.get("period") or default_period(local_date(_now(request))))
    except scores.ScoresError as exc:
        return str(exc)
    by = request.query.get("by", "department")
    if by not in (*scores.LEVELS, "all"):
        return "by 应为 department、window、staff 或 all (by must be department, window, staff or all)"
    return period, by


async def scores_api(request: web.Request) -> web.Response:
    """GET /api/scores?period=2026-11&by=department|window|staff|all."""
    args = _args(request)
    if isinstance(args, str):
        return error(400, args)
    period, by = args
    actor = actor_of(request)
    res = await asyncio.to_thread(_compute, request, period)
    meta = {"closed": res["closed"] is not None, "inputs_changed": res["inputs_changed"]}
    if by == "all":  # the whole result: a closed period's frozen bytes as stored
        if actor.is_scoped or actor.role not in (ADMIN, SUPERVISOR):
            return error(403, "仅管理员和不限范围的监察人员可取全部结果 (by=all: admins and unscoped supervisors)")
        resp = web.Response(body=res["json"], content_type="application/json")
        resp.headers["X-Scores-Closed"] = "1" if meta["closed"] else "0"
        resp.headers["X-Scores-Inputs-Changed"] = {True: "1", False: "0", None: ""}[meta["inputs_changed"]]
        return resp
    result = json.loads(res["json"])
    body = {k: result[k] for k in ("period", "period_kind", "from", "to", "base", "inputs_sha256")}
    body.update(meta, by=by, entries=visible(result, by, actor))
    return web.json_response(body, dumps=dumps)


async def scores_page(request: web.Request, *, error_text: str = "", status: int = 200, typed=None):
    """GET /scores: the ranking per level, and one target's lines (?key=)."""
    from hub.pages import _base, render

    ctx = _base(request, "绩效评估")
    ctx["ok"] = MESSAGES.get(request.query.get("ok", ""), "")
    args = _args(request)
    if isinstance(args, str) or args[1] == "all":
        args = (scores.parse_period(default_period(local_date(_now(request)))), "department")
        ctx["error"] = "期间或层级无效，已显示上月部门排名。"
    period, by = args
    actor = actor_of(request)
    res = await asyncio.to_thread(_compute, request, period)
    result = json.loads(res["json"])
    entries = visible(result, by, actor)
    key = request.query.get("key")
    chosen = next((e for e in entries if e["key"] == key), None) if key else None
    hub = request.app[HUB]
    closed = await asyncio.to_thread(_closed_periods, hub.reader)
    ctx.update(
        period=period, by=by, result=result, entries=entries, chosen=chosen, key=key, res=res,
        levels=[(lv, scores.LEVEL_ZH[lv]) for lv in scores.LEVELS if actor.role != VIEWER or lv == "department"],
        level_zh=scores.LEVEL_ZH, period_zh=scores.PERIOD_ZH, kinds_zh={k: v[0] for k, v in KINDS.items()},
        categories=MANUAL_CATEGORIES, closed_periods=closed, can_manage=actor.role in (ADMIN, SUPERVISOR),
        site_names=_site_names(hub, entries, chosen), typed=typed or {}, today=local_date(_now(request)).isoformat(),
    )  # fmt: skip
    if error_text:
        ctx["error"] = error_text
    return render(request, "scores.html", ctx, status)


def _site_names(hub, entries, chosen) -> dict:
    sites = {e.get("site") for e in entries if e.get("site")} | {
        ln.get("site") for ln in (chosen or {}).get("lines", []) if ln.get("site")
    }
    return {s: hub.sites.name(s) for s in sites}


def _closed_periods(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT period FROM score_periods ORDER BY period DESC LIMIT 60")]


async def manual_form(request: web.Request) -> web.Response:
    """POST /scores/manual (supervisor, admin): a manual item with reason and attachment name."""
    from hub.pages import _form, actor_name, error_page

    actor = actor_of(request)
    if actor.role not in (ADMIN, SUPERVISOR):
        return error_page(request, 403, "仅监察人员和管理员可录入人工计分项。")
    form = await _form(request)
    values, errors = scores.clean_manual(form)
    if not errors and (scope_error := scores.manual_scope_error(values, actor.region)):
        errors["site"] = scope_error
    if errors:
        return await scores_page(request, error_text=" ".join(errors.values()), status=422, typed=form)
    hub = request.app[HUB]
    who = await asyncio.to_thread(actor_name, hub.reader, actor) if actor.session_id else actor.name
    await asyncio.to_thread(hub.write, lambda c: scores.add_manual(c, values, who, _now(request), actor.role))
    request.app[CACHE].clear()
    raise web.HTTPSeeOther(f"/scores?period={values['day'][:7]}&ok=manual")


async def close_form(request: web.Request) -> web.Response:
    """POST /scores/close (supervisor, admin): freeze a finished period."""
    from hub.pages import _form, actor_name, chinese_part, error_page

    actor = actor_of(request)
    if actor.role not in (ADMIN, SUPERVISOR) or actor.is_scoped:
        return error_page(request, 403, "仅管理员和不限范围的监察人员可封存期间。")
    form = await _form(request)
    hub = request.app[HUB]
    try:
        period = scores.parse_period(form.get("period", ""))
        who = await asyncio.to_thread(actor_name, hub.reader, actor) if actor.session_id else actor.name
        rules, cal, days = request.app[RULES], hub.ingest.calendar, hub.cfg.complaints.reply_days
        await asyncio.to_thread(
            hub.write, lambda c: scores.close_period(c, rules, period, cal, _now(request), who, days)
        )
        request.app[CACHE].clear()
    except scores.ScoresError as exc:
        return await scores_page(request, error_text=chinese_part(str(exc)), status=409)
    raise web.HTTPSeeOther(f"/scores?period={period.text}&ok=closed")


# ---- the portal: closed periods, departments, no names ----
def public_scores(conn, period_text: str | None) -> dict | str:
    """The published ranking of a closed period (default: the latest closed), or a Chinese message."""
    closed = _closed_periods(conn)
    if not closed:
        return {"periods": [], "period": None, "from": None, "to": None, "base": None, "departments": []}
    if period_text:
        try:
            period_text = scores.parse_period(period_text).text
        except scores.ScoresError as exc:
            return str(exc)
        if period_text not in closed:
            return f"期间 {period_text} 尚未公布（只公布已封存的期间）。"
    p = period_text or closed[0]
    row = conn.execute("SELECT result_json FROM score_periods WHERE period = ?", (p,)).fetchone()
    result = json.loads(row[0])
    out = []
    for e in result["by"]["department"]:
        per: dict[str, dict] = {}
        for ln in e["lines"]:
            label = result["rules"].get(ln["rule"], {}).get("label", ln["rule"])
            r = per.setdefault(ln["rule"], {"rule": ln["rule"], "label": label, "count": 0, "points": 0})
            r["count"] += 1
            r["points"] = scores._num(r["points"] + ln["points"])
        out.append({"rank": e["rank"], "department": e["key"], "score": e["score"], "deductions": e["deductions"],
                    "bonuses": e["bonuses"], "disqualified": [d["label"] for d in e["disqualified"]],
                    "rules": sorted(per.values(), key=lambda r: r["rule"])})  # fmt: skip
    return {"periods": closed, "period": p, "from": result["from"], "to": result["to"], "base": result["base"],
            "departments": out}  # fmt: skip


async def public_page(request: web.Request) -> web.Response:
    """/public/scores: the published department ranking."""
    from hub.portal import _render

    got = await asyncio.to_thread(public_scores, request.app[HUB].reader, request.query.get("period"))
    if isinstance(got, str):
        return _render(request, "scores.html", {"title": "绩效评估公示", "error": got, "scores": None}, 400)
    return _render(request, "scores.html", {"title": "绩效评估公示", "scores": got})


async def public_json(request: web.Request) -> web.Response:
    """JSON twin of /public/scores."""
    got = await asyncio.to_thread(public_scores, request.app[HUB].reader, request.query.get("period"))
    if isinstance(got, str):
        return error(400, got)
    return web.json_response(got, dumps=dumps)


def add_routes(app: web.Application, hub) -> None:
    """Register the scores API, pages and public routes (after hub.pages.setup); the rules file
    is read once here (a bad file stops the hub with the file, rule and key named)."""
    app[HUB] = hub
    app[RULES] = load_rules(rules_path(hub.cfg, None))
    app[CACHE] = TtlCache(CACHE_TTL_S, 16)
    r = app.router
    r.add_get("/api/scores", scores_api)
    r.add_get("/scores", scores_page)
    r.add_post("/scores/manual", manual_form)
    r.add_post("/scores/close", close_form)
    r.add_get("/public/scores", public_page)
    r.add_get("/api/public/scores", public_json)
