"""Hub API for supervision: tickets (督办), replies, reviews, cards, calendar."""

from __future__ import annotations

import asyncio
from datetime import datetime
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.access import object_in_scope, scope_where
from hub.admin import store_calendar_year
from hub.httpjson import dumps, error, read_model, read_object
from hub.store import load_calendar
from hub.supervision import card_summary, ticket_view
from hub.tickets import TicketError
from hub.web_auth import actor_of
from protocol.calendar import CST, CalendarError, YearTable

HUB = web.AppKey("hub_sup", object)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReplyIn(_In):
    actor: str | None = Field(None, min_length=1, max_length=64)  # machine tokens only (ticket_actor)
    text: str = Field(min_length=1, max_length=8000)


class ReviewIn(_In):
    decision: str = Field(pattern="^(accept|reject)$")
    actor: str | None = Field(None, min_length=1, max_length=64)
    text: str = Field("", max_length=8000)


class OpenIn(_In):
    level: str = Field(min_length=1, max_length=32)
    actor: str | None = Field(None, min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=8000)


def _department(request: web.Request) -> str | None:
    """None for an operator; the department's name for a department officer or token."""
    return actor_of(request).department


def _admin_only(request: web.Request) -> None:
    """A second guard behind the route table (hub/access.py): never a department's action."""
    if _department(request) is not None:
        raise web.HTTPForbidden(
            text=dumps({"error": "需要监察人员账号或令牌 (operator account or token required)"}),
            content_type="application/json",
        )


async def ticket_actor(request: web.Request, named: str | None) -> str:
    """The name a ticket event records: a session's account (its display name and login), never
    a name from the body; a machine token may name its person in the body ("token:admin/张三"),
    else it is its token name ("token:admin")."""
    from hub.pages import actor_name

    actor = actor_of(request)
    if actor.session_id is not None:
        return await asyncio.to_thread(actor_name, request.app[HUB].reader, actor)
    return f"{actor.name}/{named}" if named else actor.name


async def _write(request, fn):
    hub = request.app[HUB]
    try:
        return await asyncio.to_thread(hub.write, fn)
    except TicketError as exc:
        raise web.HTTPConflict(text=dumps({"error": str(exc)}), content_type="application/json") from None
    except LookupError as exc:
        raise web.HTTPNotFound(text=dumps({"error": str(exc)}), content_type="application/json") from None


async def list_tickets(request: web.Request) -> web.Response:
    """Tickets, newest first; a department sees only its own."""
    q = request.query
    where, args = [], []
    dept = _department(request) or q.get("department")
    for key, value in (("department", dept), ("status", q.get("status")), ("case_no", q.get("case_no"))):
        if value:
            where.append(f"{key} = ?")
            args.append(value)
    scoped, scope_args = scope_where(actor_of(request))
    if scoped:
        where.append(scoped)
        args.extend(scope_args)
    sql = "SELECT id FROM tickets" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT 500"
    conn = request.app[HUB].reader
    return web.json_response([ticket_view(conn, r[0]) for r in conn.execute(sql, args)], dumps=dumps)


async def get_ticket(request: web.Request) -> web.Response:
    """One ticket with its events and documents."""
    t = ticket_view(request.app[HUB].reader, int(request.match_info["id"]))
    dept = _department(request)
    if t is None or (dept is not None and t["department"] != dept):
        return error(404, "督办件不存在 (no such ticket)")
    return web.json_response(t, dumps=dumps)


async def reply(request: web.Request) -> web.Response:
    """The department replies (说明理由)."""
    body = await read_model(request, ReplyIn)
    hub, tid, dept = request.app[HUB], int(request.match_info["id"]), _department(request)
    who = await ticket_actor(request, body.actor)
    t = await _write(request, lambda c: hub.supervisor.reply(c, tid, who, body.text, _now(), dept))
    return web.json_response(t, status=201, dumps=dumps)


async def review(request: web.Request) -> web.Response:
    """A supervisor accepts or rejects a reply (rejection escalates)."""
    _admin_only(request)
    body = await read_model(request, ReviewIn)
    hub, tid = request.app[HUB], int(request.match_info["id"])
    who = await ticket_actor(request, body.actor)
    t = await _write(request, lambda c: hub.supervisor.review(c, tid, body.decision, who, body.text, _now()))
    return web.json_response(t, status=201, dumps=dumps)


async def open_ticket(request: web.Request) -> web.Response:
    """A supervisor opens a ticket by hand (人工督办)."""
    _admin_only(request)
    body = await read_model(request, OpenIn)
    hub, case_no = request.app[HUB], request.match_info["case_no"]
    who = await ticket_actor(request, body.actor)

    def manual(c):
        if hub.supervisor.active_ticket(c, case_no):
            raise TicketError("该办件已有在办督办件 (the case already has an open ticket)")
        return hub.supervisor.open_ticket(c, case_no, body.level, who, _now(), reason=body.text)

    tid = await _write(request, manual)
    return web.json_response(ticket_view(hub.reader, tid), status=201, dumps=dumps)


async def cards(request: web.Request) -> web.Response:
    """Yellow/red cards per department, with red-equivalents (two yellows = one red, configurable)."""
    hub, actor = request.app[HUB], actor_of(request)
    dept = _department(request) or request.query.get("department")
    summary = card_summary(hub.reader, hub.cfg.supervision.yellow_per_red, dept, region=actor.region)
    return web.json_response(summary, dumps=dumps)


async def get_calendar(request: web.Request) -> web.Response:
    """Loaded years (seeded and imported) and the audit log of imports."""
    hub = request.app[HUB]
    cal = load_calendar(hub.reader)  # what is stored, even before the sweep picked it up
    log_rows = hub.reader.execute(
        "SELECT at_ms, version, actor, detail FROM config_log WHERE kind='calendar' ORDER BY id DESC"
    ).fetchall()
    return web.json_response(
        {
            "years": [
                {"year": t.year, "holidays": len(t.holidays), "workdays": len(t.workdays), "source": t.source}
                for t in cal.tables()
            ],
            "fingerprint": cal.fingerprint(),
            "imports": [dict(zip(("at_ms", "version", "actor", "detail"), r)) for r in log_rows],
        },
        dumps=dumps,
    )


async def post_calendar(request: web.Request) -> web.Response:
    """Load one year's holiday/调休 table (JSON: year, holidays, workdays, source)."""
    _admin_only(request)
    raw = await read_object(request)
    actor = str(raw.pop("actor", None) or "dashboard")[:64]
    try:
        table = YearTable.from_dict(raw)
    except (CalendarError, TypeError, ValueError) as exc:
        return error(422, f"日历数据无效 (invalid calendar): {exc}")
    version = await _write(request, lambda c: store_calendar_year(c, table, f"api:{actor}", "dashboard"))
    return web.json_response({"version": version, "year": table.year}, status=201, dumps=dumps)


async def get_document(request: web.Request) -> web.Response:
    """A stored document as PDF (hash verified on read)."""
    from hub.documents import DocumentIntegrityError, DocumentStore

    hub = request.app[HUB]
    try:
        got = await asyncio.to_thread(
            lambda: DocumentStore(hub.reader, ensure_schema=False).get(int(request.match_info["id"]))
        )
    except DocumentIntegrityError as exc:
        return error(500, f"文书校验失败 (stored document fails its hash check): {exc}")
    if got is None:
        return error(404, "文书不存在 (no such document)")
    meta, pdf = got
    dept = _department(request)
    if dept is not None and meta.get("facts", {}).get("department") != dept:
        return error(404, "文书不存在 (no such document)")
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": content_disposition(meta["number"], meta["id"]),
            "X-Document-Number": quote(meta["number"]),  # percent-encoded UTF-8
            "X-Content-SHA256": meta["sha256"],
        },
    )


def content_disposition(number: str, doc_id: int) -> str:
    """attachment; the number as the file name (RFC 6266/5987: filename*=UTF-8''晋中监察〔2026〕12号.pdf),
    and document-ID.pdf as the ASCII fallback for clients that do not read filename*."""
    name = number.replace("/", "_").replace("\\", "_") + ".pdf"
    return f"attachment; filename=\"document-{int(doc_id)}.pdf\"; filename*=UTF-8''{quote(name, safe='')}"


async def list_documents(request: web.Request) -> web.Response:
    """Documents of a case (metadata)."""
    from hub.documents import DocumentStore

    conn, actor = request.app[HUB].reader, actor_of(request)
    docs = DocumentStore(conn, ensure_schema=False).list(request.query.get("case_no"))
    if actor.is_scoped:  # a document belongs where its ticket does (or its case, without one)
        seen: dict[tuple, bool] = {}

        def visible(d) -> bool:
            if d["ticket_id"] is not None:
                key = ("ticket", str(d["ticket_id"]))
                return seen.setdefault(key, object_in_scope(conn, actor, "ticket", {"id": key[1]}))
            key = ("case", d["case_no"])
            return seen.setdefault(
                key,
                object_in_scope(conn, actor, "case", {"case_no": d["case_no"]})
                and conn.execute("SELECT 1 FROM cases WHERE case_no=?", (d["case_no"],)).fetchone() is not None,
            )

        docs = [d for d in docs if visible(d)]
    return web.json_response([{k: v for k, v in d.items() if k != "facts"} for d in docs], dumps=dumps)


def _now() -> datetime:
    return datetime.now(CST)


def add_routes(app: web.Application, hub) -> None:
    """Register the supervision routes."""
    app[HUB] = hub
    r = app.router
    r.add_get("/api/tickets", list_tickets)
    r.add_get("/api/tickets/{id:\\d{1,18}}", get_ticket)
    r.add_post("/api/tickets/{id:\\d{1,18}}/reply", reply)
    r.add_post("/api/tickets/{id:\\d{1,18}}/review", review)
    r.add_post("/api/cases/{case_no}/tickets", open_ticket)
    r.add_get("/api/cards", cards)
    r.add_get("/api/calendar", get_calendar)
    r.add_get("/api/documents", list_documents)
    r.add_get("/api/documents/{id:\\d{1,18}}.pdf", get_document)
    r.add_post("/api/calendar", post_calendar)
