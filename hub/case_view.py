"""The whole of one case for the case page and its JSON twin (办件详情): timeline with the hash
chain re-checked, deadlines with working-day counts, suspensions, extensions, tickets and
documents; personal data masked for roles that do not need it (docs/accounts.md).

Everything here is computed from the store, the hub's calendar and `now` (passed in).
"""

from __future__ import annotations

import json
from datetime import date, datetime

from hub import followups
from hub import tickets as tk
from hub.access import ADMIN, DEPARTMENT, Actor
from hub.chain_check import BROKEN, OK, check_links
from hub.projection import event_from_row
from protocol.calendar import CST, WorkCalendar, local_date
from protocol.caseclock import CLOSED, ItemRule, evaluate
from protocol.caseclock_types import EVENT_ZH

RECORD_CLOCK_ZH = {"ntp": "NTP 同步（可信）", "hub": "按中心校时（可信）", "untrusted": "时钟不可信"}
KIND_ZH = {"case.registered": "收件登记", "case.event": "办件环节", "vote": "评价"}
CHAIN_MARK = {OK: "✓", BROKEN: "✗"}  # UNKNOWN: "?"
DEADLINE_ZH = {
    "acceptance": "受理期限（收件后 5 个工作日内受理、补正告知或不予受理）",
    "promised": "承诺时限",
    "legal": "法定时限",
    "delivery": "送达期限（批准后 10 个工作日内送达）",
    "review": "复核期限（上报件）",
}
TICKET_ACTION_ZH = {"open": "发起", "reply": "回复", "accept": "采纳", "reject": "退回（不予采纳）",
                    "no_reply": "逾期未回复", "red_card": "亮红牌，转入督办程序"}  # fmt: skip
SYSTEM_ZH = "系统自动"
DECIDING = ("approve", "deny", "complete", "withdraw", "transfer", "reject")
TIMELINE_MAX = 2000  # records shown on one page: a case has a few dozen; a flood of votes is cut


def sees_personal_data(actor: Actor) -> bool:
    """Applicant name, ID number and phone in full: admins and the case's department (its officers
    handle the applicant); supervisors see them masked; viewers cannot open a case at all."""
    return actor.role in (ADMIN, DEPARTMENT)


def mask_name(name: str | None) -> str | None:
    """张三 → 张*, 欧阳修 → 欧**."""
    return name[:1] + "*" * (len(name) - 1) if name else name


def mask_digits(value: str | None, head: int, tail: int) -> str | None:
    """Keep `head` and `tail` characters, star the rest: 13800000000 → 138****0000."""
    if not value:
        return value
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def mask_applicant(applicant: dict | None) -> dict | None:
    """The applicant as a supervisor sees it."""
    if not applicant:
        return applicant
    out = dict(applicant)
    out["name"] = mask_name(applicant.get("name"))
    out["id_no"] = mask_digits(applicant.get("id_no"), 3, 4)
    out["phone"] = mask_digits(applicant.get("phone"), 3, 4)
    return out


def working_count(cal: WorkCalendar, start: date | None, due: date | None, stop: date | None, today: date) -> dict:
    """Working-day counts of one clock: `elapsed` since `start` (to `stop` or today), and
    `remaining` to `due` or `overdue` past it (both 0 when not applicable)."""
    end = stop or today
    out = {"elapsed": None, "remaining": 0, "overdue": 0}
    if start is not None:
        out["elapsed"] = max(0, cal.working_days_between(start, end))
    if due is not None:
        if end > due:
            out["overdue"] = cal.working_days_between(due, end)
        elif stop is None:
            out["remaining"] = cal.working_days_between(end, due)
    return out


def _state_zh(c: dict, stop: date | None, due: date | None) -> str:
    if due is None:
        return "未起算"
    if stop is not None:
        return f"超期 {c['overdue']} 个工作日完成" if c["overdue"] else "按期完成"
    if c["overdue"]:
        return f"已超期 {c['overdue']} 个工作日"
    return f"剩余 {c['remaining']} 个工作日" if c["remaining"] else "今日到期"


def _first_on(events, types, after: date | None = None) -> date | None:
    days = [local_date(e.at) for e in events if e.type in types and (after is None or local_date(e.at) >= after)]
    return min(days) if days else None


def case_clock(row: dict, events: list, cal: WorkCalendar, now: datetime, default_yellow: int):
    """protocol.caseclock.evaluate on a stored case row (its rule as registered) and its events."""
    rule = ItemRule(
        code=row["item_code"],
        case_type=row["case_type"] or "promised",
        legal_days=row["legal_days"] if row["legal_days"] is not None else 20,
        promised_days=row["promised_days"] if row["promised_days"] is not None else 20,
        yellow_days=row["yellow_days"],
    )
    return evaluate(rule, datetime.fromisoformat(row["received_at"]), events, now, cal, default_yellow)


def clocks_of(v, events: list, received: date) -> list[tuple]:
    """(kind, start, due, provisional, stopped) of each clock of a case view `v`."""
    accepted = v.accepted_on
    decided = _first_on(events, DECIDING, accepted)
    approved = _first_on(events, ("approve",))
    acceptance_stop = accepted or _first_on(events, ("reject", "request_supplement", "withdraw", "transfer"))
    if v.deemed_accepted:  # nobody acted in time: accepted by law on the receipt day, a red card
        acceptance_stop = v.acceptance_due
    return [
        ("acceptance", received, v.acceptance_due, False, acceptance_stop),
        ("promised", accepted, v.due_date if accepted else None, v.due_provisional, decided),
        ("legal", accepted, v.legal_due_date, v.legal_provisional, decided),
        ("delivery", approved, v.delivery_due if approved else None, v.delivery_provisional,
         _first_on(events, ("deliver",), approved) if approved else None),
        ("review", accepted, v.review_due, v.review_provisional, decided),
    ]  # fmt: skip


def deadlines(row: dict, events: list, cal: WorkCalendar, now: datetime, default_yellow: int) -> dict:
    """The case clock at `now`: each deadline with its working-day counts, suspensions, extensions."""
    v = case_clock(row, events, cal, now, default_yellow)
    today, closed = local_date(now), v.status in CLOSED
    out = []
    for kind, start, due, provisional, stop in clocks_of(
        v, events, local_date(datetime.fromisoformat(row["received_at"]))
    ):
        if due is None and kind != "promised":
            continue
        if stop is None and closed:
            stop = v.completed_on or today
        c = working_count(cal, start, due, stop, today)
        deemed = kind == "acceptance" and v.deemed_accepted
        out.append(
            {"kind": kind, "label_zh": DEADLINE_ZH[kind], "start": _iso(start), "due": _iso(due),
             "provisional": bool(provisional), "stopped": _iso(stop), **c,
             "state_zh": "逾期未受理，依法视为自收件之日起受理（红牌）" if deemed else _state_zh(c, stop, due)}
        )  # fmt: skip
    extensions = [
        {"at": e.at.isoformat(), "days": e.days, "reason": e.reason, "approver": e.approver, "actor": e.actor}
        for e in events
        if e.type == "extend"
    ]
    return {"status": v.status, "light": v.light, "suspended": v.status == "suspended", "deadlines": out,
            "suspensions": suspensions(events, cal, today), "extensions": extensions,
            "ignored_events": list(v.ignored)}  # fmt: skip


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def suspensions(events: list, cal: WorkCalendar, today: date) -> list[dict]:
    """Suspensions (中止/特别程序), each with its procedure, reason and working days stopped."""
    out: list[dict] = []
    for e in sorted(events, key=lambda e: (e.at, e.seq)):
        if e.type == "suspend":
            out.append({"procedure": e.procedure, "reason": e.reason, "start": e.at.isoformat(), "end": None})
        elif e.type == "resume" and out and out[-1]["end"] is None:
            out[-1]["end"] = e.at.isoformat()
    for s in out:
        end = local_date(datetime.fromisoformat(s["end"])) if s["end"] else today
        s["working_days"] = max(0, cal.working_days_between(local_date(datetime.fromisoformat(s["start"])), end))
        s["ongoing"] = s["end"] is None
    return out


def timeline(conn, row: dict, events_rows: list[dict]) -> list[dict]:
    """Every record of the case in chain order (registration, events, votes), each with its
    clock quality and the chain verdict at it."""
    site = row["site"]
    entries = [
        {"seq": row["reg_seq"], "kind": "case.registered", "what_zh": "收件登记", "at": row["received_at"],
         "actor": (json.loads(row["reg_json"]) or {}).get("clerk"), "detail": ""},
    ]  # fmt: skip
    for e in events_rows:
        b = json.loads(e["body_json"])
        detail = "；".join(
            str(x)
            for x in (b.get("procedure"), b.get("reason"), f"{b['days']} 个工作日" if b.get("days") else None,
                      b.get("step"), f"批准人 {b['approver']}" if b.get("approver") else None)
            if x
        )  # fmt: skip
        entries.append(
            {
                "seq": e["seq"],
                "kind": "case.event",
                "type": e["type"],
                "what_zh": EVENT_ZH.get(e["type"], e["type"]),
                "at": b.get("at") or e["at"],
                "actor": b.get("actor"),
                "detail": detail,
            }
        )
    for seq, level_name, window, staff, pressed_ms in conn.execute(
        'SELECT seq, level_name, "window", staff, pressed_ms FROM votes WHERE site=? AND case_no=? ORDER BY seq',
        (site, row["case_no"]),
    ).fetchall():
        at = datetime.fromtimestamp(pressed_ms / 1000, CST).isoformat() if pressed_ms else None
        entries.append({"seq": seq, "kind": "vote", "what_zh": f"评价：{level_name}", "at": at,
                        "actor": f"{window} 窗口评价器" + (f"（{staff}）" if staff else ""), "detail": ""})  # fmt: skip
    entries.sort(key=lambda x: x["seq"])
    entries = entries[:TIMELINE_MAX]
    checks = check_links(conn, site, [x["seq"] for x in entries])
    for x in entries:
        c = checks[x["seq"]]
        x["clock"] = c.clock
        x["clock_zh"] = RECORD_CLOCK_ZH.get(c.clock or "", "未知")
        x["received_at"] = datetime.fromtimestamp(c.received_ms / 1000, CST).isoformat() if c.received_ms else None
        x["chain"] = c.state
        x["chain_mark"] = CHAIN_MARK.get(c.state, "?")
        x["chain_zh"] = c.why_zh
        x["hash"] = c.hash_hex[:16]
    return entries


def tickets_of(conn, case_no: str, cal: WorkCalendar, today: date) -> list[dict]:
    """The case's 督办 tickets with state, reply deadline and working days left."""
    cur = conn.execute(
        "SELECT id, level, status, opened_ms, reply_due, reason, actor FROM tickets WHERE case_no=? "
        "AND subject='case' ORDER BY id",
        (case_no,),
    )
    cols = [c[0] for c in cur.description]
    return [ticket_brief(dict(zip(cols, r)), cal, today) for r in cur.fetchall()]


def ticket_brief(t: dict, cal: WorkCalendar, today: date) -> dict:
    """A ticket row with its Chinese title and state, and days left to its reply deadline."""
    due = date.fromisoformat(t["reply_due"])
    t["title"] = tk.LEVEL_TITLES.get(t["level"], t["level"])
    t["status_zh"] = tk.STATUS_ZH.get(t["status"], t["status"])
    t["opened_at"] = datetime.fromtimestamp(t["opened_ms"] / 1000, CST).isoformat(timespec="minutes")
    t["actor_zh"] = SYSTEM_ZH if t["actor"] == "system" else t["actor"]
    for e in t.get("events", ()):
        e["actor_zh"] = SYSTEM_ZH if e["actor"] == "system" else e["actor"]
        e["action_zh"] = TICKET_ACTION_ZH.get(e["action"], e["action"])
    t["days_left"] = cal.working_days_between(today, due) if today <= due else None
    t["days_overdue"] = cal.working_days_between(due, today) if today > due else 0
    if t["status"] != tk.OPEN:
        t["due_zh"] = ""
    elif t["days_overdue"]:
        t["due_zh"] = f"已逾期 {t['days_overdue']} 个工作日"
    else:
        t["due_zh"] = f"剩余 {t['days_left']} 个工作日" if t["days_left"] else "今日到期"
    return t


def documents_of(conn, case_no: str) -> list[dict]:
    """The case's documents (number, title, link); none before the document tables exist."""
    from hub.documents import DocumentStore

    return [
        {"id": d["id"], "number": d["number"], "title": d["title"], "ticket_id": d["ticket_id"],
         "created_at": datetime.fromtimestamp(d["created_ms"] / 1000, CST).isoformat(timespec="minutes"),
         "url": f"/api/documents/{d['id']}.pdf"}
        for d in DocumentStore(conn, ensure_schema=False).list(case_no)
    ]  # fmt: skip


def enrich(
    case: dict, row: dict, conn, actor: Actor, cal: WorkCalendar, now: datetime, default_yellow: int = 1
) -> dict:
    """Add the timeline, deadlines, tickets and documents to `case` (the API's case JSON), and mask
    its applicant for actors who do not need personal data."""
    evs = [
        e
        for e in _rows(
            conn, "SELECT seq, type, at, body_json, recorded_ms FROM case_events WHERE case_no=? ORDER BY seq",
            (row["case_no"],),
        )
    ]  # fmt: skip
    events = [event_from_row(e["seq"], e["body_json"], e["recorded_ms"]) for e in evs]
    case["personal_data"] = "full" if sees_personal_data(actor) else "masked"
    if not sees_personal_data(actor):
        case["applicant"] = mask_applicant(case.get("applicant"))
    case["timeline"] = timeline(conn, row, evs)
    case["chain_ok"] = all(x["chain"] != BROKEN for x in case["timeline"])
    try:
        case["clock"] = deadlines(row, events, cal, now, default_yellow)
    except (ValueError, TypeError, OverflowError) as exc:  # one bad stored case shows, never 500s
        case["clock"] = {"error": f"时限无法计算：{exc}", "deadlines": [], "suspensions": [], "extensions": []}
    case["tickets"] = tickets_of(conn, row["case_no"], cal, local_date(now))
    case["documents"] = documents_of(conn, row["case_no"])
    case["followups"] = followups.of_case(conn, row["case_no"])  # 差评回访 (docs/ratings.md)
    return case


def _rows(conn, sql, args=()) -> list[dict]:
    cur = conn.execute(sql, args)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
