"""Supervision engine (预警纠错): cards, reminders and the 督办 ladder, run in the hub's writer.

`on_transitions` is called inside the ingest/sweep transaction with the light changes the
projection found; `sweep` escalates tickets whose reply deadline passed. Replies and reviews
come from the HTTP API through `Hub.write` (its own connection, same rules). Notifications and
documents are only *queued* here (durable, idempotent by key); their workers deliver/render.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from hub import complaints
from hub import tickets as tk
from hub.config import Supervision
from hub.projection import Transition
from protocol.calendar import local_date
from protocol.caseclock import violation_zh

log = logging.getLogger("jiancha.hub.supervision")

MIGRATIONS = [
    (
        "0101_tickets",
        """
        CREATE TABLE tickets (id INTEGER PRIMARY KEY, case_no TEXT NOT NULL, site TEXT, department TEXT,
            level TEXT NOT NULL, status TEXT NOT NULL, opened_ms INTEGER NOT NULL, reply_due TEXT NOT NULL,
            parent_id INTEGER, reason TEXT, actor TEXT NOT NULL, closed_ms INTEGER);
        CREATE INDEX tickets_case ON tickets(case_no);
        CREATE INDEX tickets_open ON tickets(reply_due) WHERE status = 'open';
        CREATE INDEX tickets_department ON tickets(department, status);
        CREATE TABLE ticket_events (id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL, at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL, action TEXT NOT NULL, text TEXT);
        CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id);
        CREATE TABLE document_queue (id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL, kind TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending', document_id INTEGER, error TEXT,
            UNIQUE (ticket_id, kind));
    """,
    ),
]

# A ticket's subject (督办对象): a case (办件), a complaint (投诉) or a 差评 follow-up (回访件).
# `tickets.case_no` holds the subject's key: the case number, the complaint number (TS…), or
# the follow-up's id as text. Rows from before the column are cases (complaint tickets, whose
# key is a complaint number, are recognised by the migration).
SUBJECT_SQL = """
    ALTER TABLE tickets ADD COLUMN subject TEXT NOT NULL DEFAULT 'case';
    UPDATE tickets SET subject = 'complaint' WHERE case_no IN (SELECT complaint_no FROM complaints);
    CREATE INDEX tickets_subject ON tickets(subject, case_no);
"""
SUBJECT_MIGRATIONS = [("0102_ticket_subject", SUBJECT_SQL)]
PG_SUBJECT_MIGRATIONS = [("pg_0102_ticket_subject", SUBJECT_SQL)]

SYSTEM = "system"


class Supervisor:
    """Cards → reminders and tickets; tickets → replies, reviews, escalation."""

    def __init__(self, cfg: Supervision, calendar: Callable, notify: Callable | None = None):
        self.cfg = cfg
        self.calendar = calendar  # () -> WorkCalendar (the hub's current one)
        self.notify = notify  # (conn, department, roles, template, facts, dedupe_key) -> None
        self.uplink = None  # hub.uplink.Uplink: every ticket step also goes to the parent hub

    # -- cards ------------------------------------------------------------------------------------
    def on_transitions(self, conn, transitions: list[Transition], now: datetime) -> None:
        """React to light changes found by the projection (inside the caller's transaction)."""
        for t in transitions:
            facts = {
                "case_no": t.case_no,
                "item_name": t.item_name,
                "department": t.department,
                "due_date": t.due_date or "",
                "remaining": t.remaining_days if t.remaining_days is not None else "",
                "violations": "、".join(violation_zh(v) for v in t.violations),
            }
            if t.new == "yellow":
                self._notify(
                    conn, t.department, list(self.cfg.remind_roles), "yellow", facts, f"yellow:{t.case_no}:{t.due_date}"
                )
                yellows = conn.execute("SELECT yellow_cards FROM cases WHERE case_no=?", (t.case_no,)).fetchone()
                if yellows and yellows[0] >= self.cfg.yellow_per_red and not self.active_ticket(conn, t.case_no):
                    self.open_ticket(
                        conn,
                        t.case_no,
                        "duban",
                        SYSTEM,
                        now,
                        reason=f"同一办件第{yellows[0]}次黄牌 (yellow card no. {yellows[0]})",
                    )
            elif t.new == "red":
                self._notify(conn, t.department, ["handler", "head"], "red", facts, f"red:{t.case_no}")
                active = self.active_ticket(conn, t.case_no)
                level = active and self._ticket(conn, active)["level"]
                if active and level not in self.cfg.ladder:
                    # a 督办 from yellow cards is overtaken by the red card's ladder
                    self._close(
                        conn, self._ticket(conn, active), "escalated", SYSTEM, "red_card", "亮红牌，转入督办程序", now
                    )
                    active = None
                if not active:
                    why = (
                        "超过承诺时限未办结"
                        if not t.violations
                        else "程序违规：" + "、".join(violation_zh(v) for v in t.violations)
                    )
                    self.open_ticket(conn, t.case_no, self.cfg.ladder[0], SYSTEM, now, reason=why)

    def _notify(self, conn, department, roles, template, facts, key) -> None:
        if self.notify is not None and department:
            self.notify(conn, department, roles, template, facts, key)

    # -- tickets ----------------------------------------------------------------------------------
    def active_ticket(self, conn, case_no: str, subject: str = tk.CASE) -> int | None:
        """The open or replied ticket of a case (or of another subject, by its key), if any."""
        row = conn.execute(
            "SELECT id FROM tickets WHERE case_no=? AND subject=? AND status IN ('open', 'replied') "
            "ORDER BY id DESC LIMIT 1",
            (case_no, subject),
        ).fetchone()
        return row[0] if row else None

    def open_ticket(
        self,
        conn,
        case_no: str,
        level: str,
        actor: str,
        now: datetime,
        *,
        reason: str = "",
        parent_id: int | None = None,
        subject: str = tk.CASE,
    ) -> int:
        """Open a ticket at `level` with its reply deadline, queue its documents and notices.
        `subject`: what the ticket is about (tk.SUBJECTS); `case_no` is that subject's key."""
        case = subject_row(conn, subject, case_no)
        if case is None:
            raise tk.TicketError(f"{tk.SUBJECT_ZH.get(subject, '督办对象')}不存在 (no such {subject}): {case_no}")
        if level not in tk.LEVEL_TITLES:
            raise tk.TicketError(f"unknown ticket level {level!r}; one of {', '.join(tk.LEVEL_TITLES)}")
        now_ms = int(now.timestamp() * 1000)
        due = tk.reply_due(local_date(now), self.cfg.reply_days, self.calendar())
        cur = conn.execute(
            "INSERT INTO tickets (case_no, site, department, level, status, opened_ms, reply_due, parent_id, "
            "reason, actor, subject) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?) RETURNING id",
            (case_no, case[0], case[1], level, now_ms, due.isoformat(), parent_id, reason, actor, subject),
        )
        tid = cur.fetchone()[0]
        self._event(conn, tid, now_ms, actor, "open", f"{tk.LEVEL_TITLES[level]}：{reason}")
        conn.executemany(
            "INSERT INTO document_queue (ticket_id, kind) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(tid, kind) for kind in tk.LEVEL_DOCUMENTS[level]],
        )
        if subject == tk.CASE:
            facts = {"case_no": case_no, "item_name": case[2], "department": case[1]}
        else:  # a complaint or a follow-up: named as people read it (no case number to give)
            facts = {"subject": tk.subject_label(subject, case_no), "department": case[1]}
        facts |= {"title": tk.LEVEL_TITLES[level], "reply_due": due.isoformat()}
        self._notify(
            conn, case[1], ["head"], "ticket" if subject == tk.CASE else "ticket_subject", facts, f"ticket:{tid}"
        )
        log.info("ticket %d (%s) opened for %s %s: %s", tid, level, subject, case_no, reason)
        return tid

    def reply(self, conn, ticket_id: int, actor: str, text: str, now: datetime, department: str | None = None) -> dict:
        """A department's reply (说明理由/整改情况)."""
        t = self._ticket(conn, ticket_id, department)
        tk.check_reply(t["status"])
        if not text.strip():
            raise tk.TicketError("回复内容不能为空 (reply text is required)")
        now_ms = int(now.timestamp() * 1000)
        conn.execute("UPDATE tickets SET status='replied' WHERE id=?", (ticket_id,))
        self._event(conn, ticket_id, now_ms, actor, "reply", text)
        return self._ticket(conn, ticket_id)

    def review(self, conn, ticket_id: int, decision: str, actor: str, text: str, now: datetime) -> dict:
        """A supervisor accepts or rejects the reply; rejection escalates."""
        t = self._ticket(conn, ticket_id)
        tk.check_review(t["status"], decision)
        status, nxt = tk.after_review(decision, t["level"], self.cfg.ladder)
        self._close(conn, t, status, actor, decision, text, now)
        if nxt:
            self.open_ticket(
                conn,
                t["case_no"],
                nxt,
                actor,
                now,
                parent_id=ticket_id,
                reason=f"对{tk.LEVEL_TITLES[t['level']]}的回复不予采纳：{text}",
                subject=t["subject"],
            )
        return self._ticket(conn, ticket_id)

    def sweep(self, conn, now: datetime) -> int:
        """Escalate open tickets whose reply deadline has passed (no reply)."""
        today = local_date(now)
        rows = conn.execute(
            "SELECT id FROM tickets WHERE status='open' AND reply_due < ? ORDER BY id", (today.isoformat(),)
        ).fetchall()
        for (tid,) in rows:
            t = self._ticket(conn, tid)
            nxt = tk.next_level(self.cfg.ladder, t["level"])
            self._close(
                conn,
                t,
                "escalated" if nxt else "final",
                SYSTEM,
                "no_reply",
                f"逾期未回复（回复期限 {t['reply_due']}）",
                now,
            )
            if nxt:
                self.open_ticket(
                    conn,
                    t["case_no"],
                    nxt,
                    SYSTEM,
                    now,
                    parent_id=tid,
                    reason=f"{tk.LEVEL_TITLES[t['level']]}逾期未回复",
                    subject=t["subject"],
                )
        complaints.sweep_hook(conn, now, self)  # 投诉: lights, auto-close, 督办 (hub/complaints.py)
        return len(rows)

    def _close(self, conn, t: dict, status: str, actor: str, action: str, text: str, now: datetime) -> None:
        now_ms = int(now.timestamp() * 1000)
        conn.execute("UPDATE tickets SET status=?, closed_ms=? WHERE id=?", (status, now_ms, t["id"]))
        self._event(conn, t["id"], now_ms, actor, action, text)

    def _event(self, conn, tid: int, at_ms: int, actor: str, action: str, text: str) -> None:
        conn.execute(
            "INSERT INTO ticket_events (ticket_id, at_ms, actor, action, text) VALUES (?, ?, ?, ?, ?)",
            (tid, at_ms, actor, action, text),
        )
        if self.uplink is not None:  # in the step's transaction: forwarded exactly when it happened
            self.uplink.ticket_step(conn, tid, action, actor, at_ms)

    def _ticket(self, conn, ticket_id: int, department: str | None = None) -> dict:
        cur = conn.execute("SELECT * FROM tickets WHERE id=?", (ticket_id,))
        row = cur.fetchone()
        if row is None or (department is not None and row[3] != department):
            raise LookupError(f"督办件不存在 (no such ticket): {ticket_id}")
        return dict(zip([c[0] for c in cur.description], row))


def subject_row(conn, subject: str, key: str) -> tuple | None:
    """(site, department, title) of a ticket's subject, None when it does not exist. The title
    is what a notice names: the case's item, 群众投诉, or 差评回访（level）."""
    if subject == tk.CASE:
        return conn.execute("SELECT site, department, item_name FROM cases WHERE case_no=?", (key,)).fetchone()
    if subject == tk.COMPLAINT:
        row = conn.execute("SELECT site, department FROM complaints WHERE complaint_no=?", (key,)).fetchone()
        return row and (row[0], row[1], "群众投诉")
    if subject == tk.FOLLOWUP:
        if not key.isdigit() or len(key) > 18:
            return None
        row = conn.execute("SELECT site, department, level_name FROM followups WHERE id=?", (int(key),)).fetchone()
        return row and (row[0], row[1], f"差评回访（{row[2]}）")
    raise tk.TicketError(f"unknown ticket subject {subject!r}; one of {', '.join(tk.SUBJECTS)}")


def ticket_view(conn, ticket_id: int) -> dict | None:
    """A ticket with its events and documents, for the API."""
    cur = conn.execute("SELECT * FROM tickets WHERE id=?", (ticket_id,))
    row = cur.fetchone()
    if row is None:
        return None
    t = dict(zip([c[0] for c in cur.description], row))
    t["title"] = tk.LEVEL_TITLES.get(t["level"], t["level"])
    t["status_zh"] = tk.STATUS_ZH.get(t["status"], t["status"])
    t["subject_zh"] = tk.SUBJECT_ZH.get(t["subject"], t["subject"])
    t["subject_label"] = tk.subject_label(t["subject"], t["case_no"])
    t["events"] = [
        dict(zip(("at_ms", "actor", "action", "text"), r))
        for r in conn.execute(
            "SELECT at_ms, actor, action, text FROM ticket_events WHERE ticket_id=? ORDER BY id", (ticket_id,)
        )
    ]
    from hub.documents import KINDS

    t["documents"] = [
        {**dict(zip(("kind", "status", "document_id", "error"), r)), "title": KINDS.get(r[0], r[0])}
        for r in conn.execute(
            "SELECT kind, status, document_id, error FROM document_queue WHERE ticket_id=? ORDER BY id", (ticket_id,)
        )
    ]
    return t


def card_summary(conn, yellow_per_red: int, department: str | None = None, *, region: str | None = None) -> list[dict]:
    """Cards per department: yellow, red and red-equivalents (for scoring), by department name
    (the cases without a department first, then in code-point order, on either engine); only
    one department's, and only the cases of sites whose code starts with `region`, when given."""
    conds, args = [], []
    if department:
        conds.append("department = ?")
        args.append(department)
    if region:
        conds.append("substr(site, 1, ?) = ?")
        args.extend((len(region), region))
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    out = []
    rows = conn.execute(
        # CAST: integer division on both engines (PostgreSQL may type a bare parameter as numeric)
        f"SELECT department, sum(yellow_cards), sum(red_cards), "
        f"sum(red_cards + yellow_cards / CAST(? AS BIGINT)), count(*) FROM cases {where} GROUP BY department",
        (yellow_per_red, *args),
    ).fetchall()
    # sorted here, not by ORDER BY: SQLite puts NULL first and compares bytes, PostgreSQL puts
    # NULL last and compares by its collation
    for dept, yellow, red, equiv, cases in sorted(rows, key=lambda r: (r[0] is not None, r[0] or "")):
        out.append(
            {
                "department": dept,
                "yellow_cards": int(yellow or 0),  # sum() is a Decimal on PostgreSQL
                "red_cards": int(red or 0),
                "red_equivalents": int(equiv or 0),
                "cases": int(cases),
            }
        )
    return out
