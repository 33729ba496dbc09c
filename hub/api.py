"""Hub HTTP API (DESIGN §4): operators (accounts and machine tokens, hub/web_auth.py and hub/access.py), the public lookup, /metrics, pages."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from hub import api_accounts, web_auth
from hub.access import scope_where, site_in_scope
from hub.devices import votes_of_case
from hub.httpjson import dumps, error
from hub.metrics import render_metrics
from hub.store import URGENCY, URGENCY_ONE_LIGHT
from hub.web_auth import AUTH, AuthState, access_middleware, actor_of
from protocol.caseclock_types import EVENT_ZH, VIOLATION_ZH

log = logging.getLogger("jiancha.hub.api")

STATIC = Path(__file__).parent / "static"
READER = web.AppKey("reader", object)
TOKEN = web.AppKey("token", str)
HUB = web.AppKey("hub", object)
LIMITER = web.AppKey("limiter", object)
BODY_TIMEOUT = web.AppKey("body_timeout", float)

STATUS_ZH = {
    "received": "已收件",
    "supplement_requested": "待补正",
    "accepted": "已受理",
    "suspended": "特别程序中",
    "approved": "已批准",
    "denied": "不予许可",
    "rejected": "不予受理",
    "completed": "已办结",
    "delivered": "已送达",
    "withdrawn": "已撤回",
    "transferred": "已转报",
}
PAGES = {
    "/calendar": "calendar.html",
}  # the HTML is public; its data comes from the API with the session cookie (/login: hub/web_auth.py)
# (the wall "/" and the site page "/site": hub/api_wall.py, which sends a visitor without a session to /login)
ALERT_ZH = {  # alert kinds written by hub/ingest.py
    "light_green": "转为绿灯",
    "light_yellow": "亮黄牌",
    "light_red": "亮红牌",
    "chain_break": "记录链断裂",
    "epoch_changed": "站点数据库被重置",
    "backlog_incomplete": "积压记录未补齐",
    "wrong_site": "试图操作其他站点的办件",
    "item_unknown_item": "事项不在中心目录中",
    "item_mismatch": "事项信息与中心目录不符",
    "identity_conflict": "站点身份冲突（两台设备或设备被重置）",
    "clock_untrusted": "站点时钟不可信",
    "clock_ahead": "站点时间超前",
    "config_missing": "盒子持有中心已无的配置",
}
LIGHT_ZH = {"green": "绿灯", "yellow": "黄牌", "red": "红牌"}
CLOCK_ZH = {"ntp": "NTP 同步", "hub": "按中心校时", "untrusted": "不可信", "unknown": "未知"}
# Every response: no framing, no sniffing, no referrer to other sites, and only our own scripts/styles (the
# pages under hub/static have no inline script, style or handler).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on form posts
}
MAX_OFFSET = 2**62  # SQLite's OFFSET is a 64-bit integer; any larger offset lists nothing anyway
STATIC_NAME_MAX = 255  # bytes of one path component (NAME_MAX); longer names exist nowhere
ORDERS = {  # fixed SQL fragments, never user text
    "recent": "received_at DESC",
    "urgency": URGENCY,  # the order of the index cases_open_urgency (hub/store.py), word for word
}


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """The outermost middleware: an answer for every request, never aiohttp's text/plain 500.

    HTTP answers (4xx, redirects) pass through. A static file name no file system can hold
    (a component over NAME_MAX bytes, a NUL) is a 404. Anything else a handler raises is a bug:
    logged here with its traceback, answered with a JSON 500 that carries no traceback."""
    if request.path.startswith("/static/") and not _plausible_static(request.match_info.get("filename", "")):
        return error(404, "文件不存在 (no such file)")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path[:200])
        return error(500, "服务器内部错误，已记录日志 (internal error; details are in the hub's log)")


def _plausible_static(name: str) -> bool:
    """Whether `name` could name a file under STATIC (aiohttp would otherwise stat it and fail)."""
    return "\0" not in name and all(
        len(part.encode("utf-8", "surrogateescape")) <= STATIC_NAME_MAX for part in name.split("/")
    )


@web.middleware
async def body_deadline(request: web.Request, handler):
    """Read a request body whole within the app's body timeout, else drop the connection.

    Half-sent headers are bounded by the server's keep-alive timeout (see hub.app.start_http);
    this bounds half-sent bodies: the body is read here, once, and the handler gets it cached."""
    if request.can_read_body:
        try:
            async with asyncio.timeout(request.app[BODY_TIMEOUT]):
                await request.read()
        except TimeoutError:
            log.warning(
                "dropped %s %s from %s: body not received within %.0f s",
                request.method,
                request.path,
                request.remote,
                request.app[BODY_TIMEOUT],
            )
            if request.transport is not None:
                request.transport.close()
            return error(408, "请求超时 (request body not received in time)")
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the same protective headers on every response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _rows(conn, sql, args=()) -> list[dict]:
    cur = conn.execute(sql, args)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _case_out(row: dict) -> dict:
    reg = json.loads(row.pop("reg_json"))
    row["due_provisional"] = bool(row["due_provisional"])
    row["violations"] = json.loads(row["violations"])
    row["closed"] = bool(row["closed"])
    row["status_zh"] = STATUS_ZH.get(row["status"], row["status"])
    row["applicant"] = reg.get("applicant")
    row["window"] = reg.get("window")
    row["clerk"] = reg.get("clerk")
    row["item"] = reg.get("item")
    row["violations_zh"] = [VIOLATION_ZH.get(v, v) for v in row["violations"]]
    row["light_zh"] = LIGHT_ZH.get(row["light"], row["light"])
    row.pop("query_code", None)
    return row


def _case_brief(row: dict) -> dict:
    """A case as the wall lists it: no applicant at all (the wall shows none; ID number and phone
    are for the single case view, GET /api/cases/{case_no})."""
    row = _case_out(row)
    row.pop("applicant", None)
    return row


def case_json(conn, case_no: str, actor, hub) -> dict | None:
    """A case with status, light, due dates, events, votes, alerts, and (hub/case_view.py) its
    timeline with the hash chain re-checked, deadlines, tickets and documents; personal data
    masked for roles that do not need it. None: no such case."""
    from hub import case_view

    rows = _rows(conn, "SELECT * FROM cases WHERE case_no=?", (case_no,))
    if not rows:
        return None
    row = dict(rows[0])
    case = _case_out(rows[0])
    evs = _rows(conn, "SELECT seq, type, at, body_json FROM case_events WHERE case_no=? ORDER BY seq", (case_no,))
    case["events"] = [
        {**json.loads(e["body_json"]), "seq": e["seq"], "type_zh": EVENT_ZH.get(e["type"], e["type"])} for e in evs
    ]
    case["votes"] = votes_of_case(conn, case_no)
    case["alerts"] = [
        {
            **a,
            "kind_zh": ALERT_ZH.get(a["kind"], a["kind"]),
            "at": _iso(a["at_ms"]),
            "detail_zh": _lights_zh(a["detail"]),
        }
        for a in _rows(conn, "SELECT at_ms, kind, light, detail FROM alerts WHERE case_no=? ORDER BY id", (case_no,))
    ]
    return case_view.enrich(
        case, row, conn, actor, hub.ingest.calendar, hub.ingest.now(), hub.cfg.supervision.yellow_days
    )


def _lights_zh(detail: str | None) -> str | None:
    """An alert's detail with light codes in Chinese (red → 红牌)."""
    if not detail:
        return detail
    return re.sub(r"\b(green|yellow|red)\b", lambda m: LIGHT_ZH[m.group(1)], detail)


async def get_case(request: web.Request) -> web.Response:
    """GET /api/cases/{case_no}: the case page's JSON twin (case_json)."""
    case_no = request.match_info["case_no"]
    case = await asyncio.to_thread(case_json, request.app[READER], case_no, actor_of(request), request.app[HUB])
    if case is None:
        return error(404, f"案件不存在 (no such case): {case_no}")
    return web.json_response(case, dumps=dumps)


async def list_cases(request: web.Request) -> web.Response:
    """Cases filtered by site, light, status, department; newest first."""
    q = request.query
    where, args = [], []
    for key in ("site", "light", "status", "department"):
        if q.get(key):
            where.append(f"{key} = ?")
            args.append(q[key])
    if q.get("open") in ("1", "true"):
        where.append("closed = 0")
    scoped, scope_args = scope_where(actor_of(request))
    if scoped:
        where.append(scoped)
        args.extend(scope_args)
    try:
        limit = min(max(int(q.get("limit", 200)), 1), 5000)
        offset = min(max(int(q.get("offset", 0)), 0), MAX_OFFSET)
    except ValueError:
        return error(400, "limit/offset must be integers")
    sql = "SELECT * FROM cases" + (" WHERE " + " AND ".join(where) if where else "")
    total = request.app[READER].execute(sql.replace("*", "count(*)", 1), args).fetchone()[0]
    order = ORDERS.get(q.get("order", "recent"))
    if order is None:
        return error(400, f"order must be one of {', '.join(ORDERS)}")
    if order == URGENCY and q.get("light"):
        order = URGENCY_ONE_LIGHT  # the same order when every case has one light: index cases_open_light
    rows = _rows(request.app[READER], f"{sql} ORDER BY {order} LIMIT ? OFFSET ?", (*args, limit, offset))
    return web.json_response({"total": total, "cases": [_case_brief(r) for r in rows]}, dumps=dumps)


def site_rows(conn, registry) -> list[dict]:
    """Sites with online state, last seen, acked seq, backlog and clock quality."""
    known = {r["code"]: r for r in _rows(conn, "SELECT * FROM sites")}
    open_counts: dict[str, dict[str, int]] = {}
    for site, light, n in conn.execute(  # one pass over the index cases_open_site_light
        "SELECT site, light, count(*) FROM cases WHERE closed=0 GROUP BY site, light"
    ).fetchall():
        open_counts.setdefault(site, {})[light] = int(n)
    out = []
    for code in sorted(set(known) | set(registry.active())):
        r = known.get(code, {"code": code, "online": 0, "acked_seq": 0, "max_seq": 0, "agent_last_seq": 0})
        head = max(r.get("agent_last_seq") or 0, r.get("max_seq") or 0)
        counts = open_counts.get(code, {})
        out.append(
            {
                "code": code,
                "name": registry.name(code) or r.get("name", ""),
                "online": bool(r.get("online")),
                "last_seen": _iso(r.get("last_seen_ms")),
                "acked_seq": r.get("acked_seq", 0),
                "backlog": max(0, head - (r.get("acked_seq") or 0)),
                "clock": r.get("clock") or "unknown",
                "clock_zh": CLOCK_ZH.get(r.get("clock") or "unknown", r.get("clock")),
                "software": r.get("software"),
                "chain_breaks": r.get("chain_breaks", 0),
                "revoked": registry.is_revoked(code),
                "open_cases": counts,
            }
        )
    return out


async def list_sites(request: web.Request) -> web.Response:
    """GET /api/sites."""
    hub, actor = request.app[HUB], actor_of(request)
    rows = [s for s in site_rows(request.app[READER], hub.sites) if site_in_scope(actor, s["code"])]
    return web.json_response(rows, dumps=dumps)


async def list_alerts(request: web.Request) -> web.Response:
    """Recent alerts (light changes, chain breaks), newest first."""
    scoped, args = scope_where(actor_of(request), "site", None)
    where = f" WHERE {scoped}" if scoped else ""
    rows = _rows(request.app[READER], f"SELECT * FROM alerts{where} ORDER BY id DESC LIMIT 500", args)
    for r in rows:
        r["at"] = _iso(r.pop("at_ms"))
        r["kind_zh"] = ALERT_ZH.get(r["kind"], r["kind"])
    return web.json_response(rows, dumps=dumps)


class Limiter:
    """Public lookups (guessing query codes): at most `n` per `window_s` per client, and at most
    `global_n` per `window_s` from everyone together.

    Memory is bounded: one float per client (GCRA: the time the client's allowance is next
    full), in a table of at most `max_clients` entries kept in least-recently-seen order. A
    client whose allowance is full again is forgotten first (nothing is lost); when the table is
    full of clients still being limited, newcomers share one overflow entry, so flooding the
    table with fresh addresses never resets a guessing client. IPv6 clients count per /64 (one
    subscriber's network), IPv4 per address."""

    OVERFLOW = "*overflow*"

    def __init__(self, n: int = 30, window_s: float = 60.0, *, global_n: int = 1200, max_clients: int = 10_000):
        self.n, self.window_s, self.max_clients = n, window_s, max_clients
        self.interval = window_s / n
        self.global_interval = window_s / global_n
        self.tat: OrderedDict[str, float] = OrderedDict()  # client → theoretical arrival time
        self.global_tat = 0.0

    def __len__(self) -> int:
        return len(self.tat)

    @staticmethod
    def key(remote: str | None) -> str:
        """The client a request counts against: its IPv4 address or its IPv6 /64."""
        try:
            ip = ipaddress.ip_address((remote or "").split("%")[0])
        except ValueError:
            return remote or "?"
        if ip.version == 6:
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"
        return str(ip)

    def allow(self, key: str, now: float) -> bool:
        """Record a lookup by `key` (see Limiter.key) at monotonic `now`; False when over a limit."""
        tat = self.tat.get(key)
        if tat is None:
            self._evict(now)
            if len(self.tat) >= self.max_clients - 1:  # the last slot is the overflow entry's
                key, tat = self.OVERFLOW, self.tat.get(self.OVERFLOW)
        tat = max(tat or now, now)
        if tat + self.interval - now > self.window_s + 1e-6:
            self.tat[key] = tat
            self.tat.move_to_end(key)
            return False
        gtat = max(self.global_tat, now)
        if gtat + self.global_interval - now > self.window_s + 1e-6:
            self.tat[key] = tat
            self.tat.move_to_end(key)
            return False
        self.global_tat = gtat + self.global_interval
        self.tat[key] = tat + self.interval
        self.tat.move_to_end(key)
        return True

    def _evict(self, now: float) -> None:
        """Forget clients seen least recently whose allowance is full again (a few per call)."""
        for _ in range(8):
            if not self.tat:
                return
            oldest, tat = next(iter(self.tat.items()))
            if tat > now:
                return
            del self.tat[oldest]


def lookup_allowed(request: web.Request) -> bool:
    """One public guess of a case number and query code, if the lookup limiter allows it (the
    lookup and the rating in hub/portal.py)."""
    limiter = request.app[LIMITER]
    return limiter.allow(limiter.key(request.remote), time.monotonic())


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    text = render_metrics(request.app[READER], request.app[HUB])
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def health(request: web.Request) -> web.Response:
    """Liveness."""
    hub = request.app[HUB]
    body = {"ok": True, "broker_connected": hub.link.connected.is_set(), "queue": hub.ingest.q.qsize()}
    forwarder = getattr(hub, "forwarder", None)
    if forwarder is not None:  # a child hub: its link to the parent (hub/forwarder.py)
        body["uplink"] = forwarder.status()
    feeds = getattr(hub, "feeds", None)
    if feeds is not None:  # third-party feeds (hub/feeds.py)
        body["feeds"] = feeds.status()
    return web.json_response(body)


async def page(request: web.Request) -> web.Response:
    """Static pages: dashboard (/), login, public lookup."""
    name = PAGES[request.path]
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})


def _iso(ms) -> str | None:
    if not ms:
        return None
    from datetime import datetime

    from protocol.calendar import CST

    return datetime.fromtimestamp(ms / 1000, CST).isoformat(timespec="seconds")


def auth_state(hub, reader, token: str, *, body_timeout_s: float = 30.0) -> AuthState:
    """The sessions, throttling and tokens of the app, from hub.yaml's api section."""
    from hub.sessions import SessionPolicy
    from hub.throttle import LoginThrottle

    api = hub.cfg.api
    s, t = api.sessions, api.login_throttle
    return AuthState(
        hub=hub,
        reader=reader,
        token=token,
        departments=api.department_tokens,  # the live dict: tests add tokens after create_app
        policy=SessionPolicy(
            idle_ms=int(s.idle_minutes * 60_000),
            absolute_ms=int(s.absolute_hours * 3_600_000),
            max_per_user=s.max_per_user,
        ),
        throttle=LoginThrottle(t.per_login, t.per_address, t.window_minutes * 60, t.max_tracked),
        body_timeout_s=body_timeout_s,
    )


def create_app(
    hub, reader, token: str, *, body_timeout_s: float = 30.0, limiter: Limiter | None = None
) -> web.Application:
    """The hub's aiohttp application. `body_timeout_s`: a request body must arrive whole within it."""
    app = web.Application(
        middlewares=[errors_middleware, access_middleware(), body_deadline],
        client_max_size=1024 * 1024,
    )
    app[HUB], app[READER], app[TOKEN], app[LIMITER] = hub, reader, token, limiter if limiter is not None else Limiter()
    app[AUTH] = auth_state(hub, reader, token, body_timeout_s=body_timeout_s)
    app[BODY_TIMEOUT] = float(body_timeout_s)
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/api/cases", list_cases)
    app.router.add_get("/api/cases/{case_no}", get_case)
    app.router.add_get("/api/sites", list_sites)
    app.router.add_get("/api/alerts", list_alerts)
    app.router.add_get("/api/health", health)
    app.router.add_get("/metrics", metrics)
    for p in PAGES:
        app.router.add_get(p, page)
    web_auth.add_routes(app)
    api_accounts.add_routes(app)
    app.router.add_static("/static/", STATIC)
    from hub import api_devices, api_followups, api_supervision, api_wall

    api_supervision.add_routes(app, hub)
    api_devices.add_routes(app, hub)
    from hub import pages

    pages.setup(app, hub)
    from hub import levels  # the parent's city/province walls (imports this module)

    levels.setup(app)
    from hub import portal

    portal.add_routes(app)  # the citizen portal and its /api/public/... twins
    api_wall.add_routes(app, hub)
    from hub import api_complaints  # 投诉 (imports this module: here, not at the top)

    api_complaints.add_routes(app, hub)
    api_followups.add_routes(app, hub)  # 差评 follow-ups (好差评), API and pages
    from hub import api_scores

    api_scores.add_routes(app, hub)  # 绩效评估: API, pages, the published ranking
    from hub import api_stats

    api_stats.add_routes(app, hub)  # 统计分析: API, exports, the stats page, the monthly bulletin
    return app
