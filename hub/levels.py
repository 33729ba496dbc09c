"""The walls of a parent hub (市级/省级监察大屏, issue 14, docs/rollup.md): what its child hubs
sent, server-rendered (hub/pages.py's Jinja environment, base.html).

    GET /levels                           a city: its counties; a province: its cities → counties;
                                          per row the cards (黄牌/红牌) and the month's roll-up totals
    GET /levels/{child}[?origin=hub-…]    the cards of one child (or of one county under a city)
    GET /levels/{child}/cards/{seq}       one card: the case summary, and what the child sent about
                                          that case (cards, 督办 steps)
    GET /api/levels?from=&to=             the same rows as JSON for a period of China days (≤ 366),
                                          with the scope's total: the statistics of what the
                                          children sent (every figure of hub/rollups.py finish)

Nothing personal exists at a parent (protocol/uplink.py), so every logged-in role may look,
within its scope: a region prefix sees the children (and counties) whose region code starts with
it; a department officer sees its department's cards and roll-ups. A child or card outside the
scope answers the same 404 as one that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date

from aiohttp import web

from hub import rollups
from hub import tickets as tk
from hub.access import Actor
from hub.api import LIGHT_ZH, STATUS_ZH
from hub.case_view import TICKET_ACTION_ZH
from hub.httpjson import dumps, error
from hub.pages import HUB, _base, error_page, render
from hub.stats import StatsError, month_period, parse_period
from hub.web_auth import actor_of
from protocol.calendar import local_date
from protocol.caseclock import violation_zh

CHILD_RE = re.compile(r"^hub-[0-9A-Za-z]{1,12}$")
CARDS_SHOWN = 200
LEVEL_ZH = {"county": "县级", "city": "市级", "province": "省级"}
CARD_ZH = {"yellow": "黄牌", "red": "红牌"}


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/levels", wall_page)
    r.add_get("/api/levels", levels_api)
    r.add_get("/levels/{child}", cards_page)
    r.add_get("/levels/{child}/cards/{seq:\\d{1,18}}", card_page)


def region_of(sender: str | None) -> str:
    """hub-140721 → 140721."""
    return (sender or "")[4:]


def in_scope(actor: Actor, child: str, origin: str | None) -> bool:
    """Whether a child (or a county under it) is within a region-scoped actor's scope."""
    if actor.region is None:
        return True
    return region_of(origin or child).startswith(actor.region)


def _dept(actor: Actor) -> tuple[str, list]:
    return (" AND department = ?", [actor.department]) if actor.department is not None else ("", [])


def wall_rows(conn, hub, actor: Actor, first: date, last: date) -> list[dict]:
    """One row per (child, origin): cards and the period's roll-up totals, children first."""
    cond, args = _dept(actor)
    cards: dict[tuple, dict] = {}
    for child, origin, kind, n in conn.execute(
        f"SELECT child, origin, kind, count(*) FROM child_cards WHERE 1 = 1{cond} GROUP BY child, origin, kind", args
    ).fetchall():
        cards.setdefault((child, origin), {"yellow": 0, "red": 0})[kind] = int(n)

    figs = rollups.totals(conn, first, last, department=actor.department)
    whole = rollups.totals(conn, first, last, department=actor.department, key=lambda child, origin, region: child)
    child_cards: dict[str, dict] = {}
    for (child, _origin), n in cards.items():
        acc = child_cards.setdefault(child, {"yellow": 0, "red": 0})
        for k in acc:
            acc[k] += n[k]
    hubs = {r[0]: r[1:] for r in conn.execute("SELECT code, name, online, last_seen_ms FROM child_hubs").fetchall()}
    keys = set(cards) | set(figs) | {(c, None) for c in hubs}
    rows = []
    for child, origin in sorted(keys, key=lambda k: (k[0], k[1] or "")):
        if not in_scope(actor, child, origin):
            continue
        h = hubs.get(child, ("", 0, None))
        # a child's row is the whole child (its own sites and the counties it relays); a
        # county's row under it, that county alone
        f = (figs.get((child, origin)) if origin else whole.get(child)) or rollups.finish(None)
        c = cards.get((child, origin)) if origin else child_cards.get(child)
        rows.append({
            "child": child, "origin": origin, "region": region_of(origin or child),
            "name": (hub.sites.name(child) or h[0] or child) if origin is None else f"区县 {region_of(origin)}",
            "online": bool(h[1]) if origin is None else None, "last_seen_ms": h[2] if origin is None else None,
            "cards": c or {"yellow": 0, "red": 0}, "f": f,
        })  # fmt: skip
    return rows


async def wall_page(request: web.Request) -> web.Response:
    hub, actor = request.app[HUB], actor_of(request)
    today = local_date(hub.ingest.now())
    month = request.query.get("month", "") or today.strftime("%Y-%m")
    try:
        if len(month) > 7:
            raise StatsError("月份格式应为 YYYY-MM (month must be YYYY-MM)")
        first, last = month_period(month)
    except StatsError as exc:
        return error_page(request, 400, str(exc))
    rows = await asyncio.to_thread(wall_rows, hub.reader, hub, actor, first, last)
    top = [r for r in rows if r["origin"] is None]
    total = {"yellow": sum(r["cards"]["yellow"] for r in top), "red": sum(r["cards"]["red"] for r in top)}
    level = getattr(hub.cfg, "level", "city")
    ctx = _base(request, "省级监察大屏" if level == "province" else "市级监察大屏")
    ctx.update(rows=rows, month=month, total=total, level_zh=LEVEL_ZH.get(level, level), province=level == "province")
    return render(request, "levels.html", ctx)


def _child_arg(request: web.Request) -> tuple[str, str | None] | None:
    child, origin = request.match_info["child"], request.query.get("origin") or None
    if not CHILD_RE.match(child) or (origin is not None and not CHILD_RE.match(origin)):
        return None
    if not in_scope(actor_of(request), child, origin):
        return None
    return child, origin


def card_rows(conn, actor: Actor, child: str, origin: str | None) -> list[dict]:
    cond, args = _dept(actor)
    if origin is not None:
        cond, args = cond + " AND origin = ?", args + [origin]
    rows = conn.execute(
        f"SELECT case_no, kind, first_seq, first_ms, department, site, origin FROM child_cards WHERE child = ?{cond} "
        f"ORDER BY first_ms DESC, first_seq DESC LIMIT {CARDS_SHOWN}",
        [child, *args],
    ).fetchall()
    out = []
    for case_no, kind, seq, ms, dept, site, org in rows:
        body = conn.execute("SELECT body_json FROM child_records WHERE child=? AND seq=?", (child, seq)).fetchone()
        b = json.loads(body[0]) if body else {}
        case = b.get("case", {})
        out.append({"case_no": case_no, "card": kind, "card_zh": CARD_ZH.get(kind, kind), "seq": seq,
                    "at_ms": b.get("at_ms", ms),  # when the child's supervision showed it
                    "department": dept, "site": site, "origin": org, "item_name": case.get("item_name", ""),
                    "status_zh": STATUS_ZH.get(case.get("status"), case.get("status", ""))})  # fmt: skip
    return out


async def cards_page(request: web.Request) -> web.Response:
    hub, actor = request.app[HUB], actor_of(request)
    arg = _child_arg(request)
    if arg is None:
        return error_page(request, 404, "下级中心不存在，或不在您的管辖范围内。")
    child, origin = arg
    cards = await asyncio.to_thread(card_rows, hub.reader, actor, child, origin)
    name = hub.sites.name(child) or child
    ctx = _base(request, f"{name} 亮牌")
    ctx.update(child=child, origin=origin, name=name, cards=cards, shown=CARDS_SHOWN,
               origin_zh=f"区县 {region_of(origin)}" if origin else "")  # fmt: skip
    return render(request, "level_cards.html", ctx)


def card_view(conn, actor: Actor, child: str, seq: int) -> dict | None:
    row = conn.execute(
        "SELECT kind, origin, department, body_json, wall_ms FROM child_records WHERE child=? AND seq=?", (child, seq)
    ).fetchone()
    if row is None or row[0] != "card" or not in_scope(actor, child, row[1]):
        return None
    if actor.department is not None and row[2] != actor.department:
        return None
    body = json.loads(row[3])
    case = body["case"]
    case["status_zh"] = STATUS_ZH.get(case["status"], case["status"])
    case["light_zh"] = LIGHT_ZH.get(case["light"], case["light"])
    case["violations_zh"] = [violation_zh(v) for v in case.get("violations", [])]
    steps = []
    for kind, body_json, at_ms in conn.execute(
        "SELECT kind, body_json, wall_ms FROM child_records WHERE child=? AND case_no=? ORDER BY seq",
        (child, case["case_no"]),
    ).fetchall():
        b = json.loads(body_json)
        if kind == "card":
            what = f"亮{CARD_ZH.get(b['card'], b['card'])}（{LIGHT_ZH.get(b.get('previous') or '', '—')} → {CARD_ZH.get(b['card'])}）"
        else:
            what = (f"{tk.LEVEL_TITLES.get(b['level'], b['level'])} #{b['ticket']}："
                    f"{TICKET_ACTION_ZH.get(b['action'], b['action'])}，{tk.STATUS_ZH.get(b['status'], b['status'])}"
                    f"{'（系统自动）' if b.get('by_system') else ''}，回复期限 {b['reply_due']}")  # fmt: skip
        steps.append({"at_ms": b.get("at_ms", at_ms), "what": what})
    return {"card": body["card"], "card_zh": CARD_ZH.get(body["card"]), "at_ms": body["at_ms"], "origin": row[1],
            "case": case, "steps": steps}  # fmt: skip


async def card_page(request: web.Request) -> web.Response:
    hub, actor = request.app[HUB], actor_of(request)
    child = request.match_info["child"]
    view = None
    if CHILD_RE.match(child):
        view = await asyncio.to_thread(card_view, hub.reader, actor, child, int(request.match_info["seq"]))
    if view is None:
        return error_page(request, 404, "亮牌记录不存在，或不在您的管辖范围内。")
    name = hub.sites.name(child) or child
    ctx = _base(request, f"{view['case']['case_no']} {view['card_zh']}")
    ctx.update(child=child, name=name, v=view, origin_zh=f"区县 {region_of(view['origin'])}" if view["origin"] else "")
    return render(request, "level_card.html", ctx)


async def levels_api(request: web.Request) -> web.Response:
    """GET /api/levels?from=YYYY-MM-DD&to=YYYY-MM-DD (default: this month to today)."""
    hub, actor = request.app[HUB], actor_of(request)
    q = request.query
    try:
        unknown = sorted(set(q) - {"from", "to"})
        if unknown:
            raise StatsError(f"未知参数 (unknown parameter): {unknown[0][:30]}")
        for k in q:
            if len(q.getall(k)) > 1 or len(q[k]) > 20:
                raise StatsError(f"参数只能给一次且不超过 20 字 (parameter given twice or too long): {k}")
        first, last = parse_period(q.get("from") or None, q.get("to") or None, local_date(hub.ingest.now()))
    except StatsError as exc:
        return error(400, str(exc))

    def read(conn):
        rows = wall_rows(conn, hub, actor, first, last)
        total = rollups.totals(conn, first, last, region=actor.region, department=actor.department,
                               key=lambda *_: "all").get("all") or rollups.finish(None)  # fmt: skip
        return rows, total

    rows, total = await asyncio.to_thread(read, hub.reader)
    body = {"from": first.isoformat(), "to": last.isoformat(), "total": total,
            "children": [{k: r[k] for k in ("child", "origin", "region", "name", "online", "cards")} | {"figures": r["f"]}
                         for r in rows]}  # fmt: skip
    return web.json_response(body, dumps=dumps, headers={"Cache-Control": "no-store"})
