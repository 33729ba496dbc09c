"""The hub's SQLite database: records by (site, seq), case projections, sites, quarantine.

Records are stored idempotently by (site, seq). Case rows are a projection: each case is
re-evaluated from its registration and all its events (a pure function), so the order in which
records arrive (live before backlog) never changes the result.
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

from agent.db import connect, migrate
from protocol.calendar import WorkCalendar, YearTable, default_calendar
from protocol.caseclock import Event, evaluate
from protocol.models import CaseEventBody, CaseRegistered

MIGRATIONS = [
    ("0001_sites_records", """
        CREATE TABLE sites (code TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
            online INTEGER NOT NULL DEFAULT 0, last_seen_ms INTEGER, acked_seq INTEGER NOT NULL DEFAULT 0,
            acked_hash BLOB, max_seq INTEGER NOT NULL DEFAULT 0, agent_last_seq INTEGER NOT NULL DEFAULT 0,
            clock TEXT, boot_id TEXT, epoch TEXT, software TEXT, state_json TEXT,
            last_progress_ms INTEGER, chain_breaks INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE records (site TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
            prev BLOB NOT NULL, kind TEXT NOT NULL, wall_ms INTEGER NOT NULL, clock TEXT NOT NULL,
            received_ms INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (site, seq)) WITHOUT ROWID;
        CREATE TABLE quarantine (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, site TEXT,
            topic TEXT, reason TEXT NOT NULL, detail TEXT, data BLOB);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """),
    ("0002_cases", """
        CREATE TABLE cases (case_no TEXT PRIMARY KEY, site TEXT NOT NULL, item_code TEXT NOT NULL,
            item_name TEXT, department TEXT, query_code TEXT NOT NULL, received_at TEXT NOT NULL,
            reg_seq INTEGER NOT NULL, reg_json TEXT NOT NULL, status TEXT NOT NULL, light TEXT NOT NULL,
            due_date TEXT, due_provisional INTEGER NOT NULL DEFAULT 0, legal_due_date TEXT,
            acceptance_due TEXT, violations TEXT NOT NULL DEFAULT '[]', closed INTEGER NOT NULL DEFAULT 0,
            next_change TEXT, updated_ms INTEGER);
        CREATE INDEX cases_site ON cases(site);
        CREATE INDEX cases_light ON cases(light);
        CREATE INDEX cases_next ON cases(next_change) WHERE closed = 0;
        CREATE TABLE case_events (site TEXT NOT NULL, seq INTEGER NOT NULL, case_no TEXT NOT NULL,
            type TEXT NOT NULL, at TEXT NOT NULL, body_json TEXT NOT NULL, PRIMARY KEY (site, seq));
        CREATE INDEX case_events_case ON case_events(case_no);
        CREATE TABLE alerts (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, site TEXT, case_no TEXT,
            kind TEXT NOT NULL, light TEXT, detail TEXT);
        CREATE INDEX alerts_case ON alerts(case_no);
    """),
    ("0003_catalog_config", """
        CREATE TABLE catalog (code TEXT PRIMARY KEY, name TEXT NOT NULL, department TEXT NOT NULL,
            item_json TEXT NOT NULL);
        CREATE TABLE config (kind TEXT PRIMARY KEY, version INTEGER NOT NULL, payload_json TEXT NOT NULL,
            updated_ms INTEGER NOT NULL, actor TEXT);
        CREATE TABLE config_log (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
            version INTEGER NOT NULL, actor TEXT, detail TEXT);
    """),
]

OPEN_STATUSES_SQL = "closed = 0"


def open_db(path: Path) -> sqlite3.Connection:
    """Open (and migrate) the hub database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate(conn, MIGRATIONS)
    return conn


def load_calendar(conn: sqlite3.Connection) -> WorkCalendar:
    """Seeded years plus the year tables operators imported."""
    cal = default_calendar()
    row = conn.execute("SELECT payload_json FROM config WHERE kind='calendar'").fetchone()
    if row:
        for t in json.loads(row[0]).get("years", []):
            cal = cal.with_year(YearTable.from_dict(t))
    return cal


def bump(conn: sqlite3.Connection, name: str, n: int = 1) -> None:
    """Increment a persistent counter (inside the caller's transaction)."""
    conn.execute("INSERT INTO counters(name, value) VALUES (?, ?) "
                 "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))


def event_from_json(seq: int, body_json: str) -> Event:
    """A caseclock Event from a stored case.event body."""
    b = CaseEventBody.model_validate_json(body_json)
    return Event(type=b.type, at=b.at, seq=seq, actor=b.actor, reason=b.reason, days=b.days,
                 procedure=b.procedure, step=b.step, approver=b.approver)


def project_case(conn: sqlite3.Connection, case_no: str, now: datetime, cal: WorkCalendar,
                 default_yellow: int, now_ms: int, reg: CaseRegistered | None = None,
                 old_light: str | None = None) -> tuple[str | None, str] | None:
    """Re-evaluate one case from its records; returns (old_light, new_light) or None if the
    registration has not arrived yet. `reg`/`old_light` skip a read when the caller has them."""
    if reg is None:
        row = conn.execute("SELECT reg_json, light FROM cases WHERE case_no=?", (case_no,)).fetchone()
        if row is None:
            return None
        reg, old_light = CaseRegistered.model_validate_json(row[0]), row[1]
    rows = conn.execute("SELECT seq, body_json FROM case_events WHERE case_no=? ORDER BY seq",
                        (case_no,)).fetchall()
    events = [event_from_json(s, b) for s, b in rows]
    v = evaluate(reg.item.rule(), reg.received_at, events, now, cal, default_yellow)
    closed = v.status in ("completed", "delivered", "rejected", "denied", "withdrawn", "transferred")
    conn.execute(
        "UPDATE cases SET status=?, light=?, due_date=?, due_provisional=?, legal_due_date=?, "
        "acceptance_due=?, violations=?, closed=?, next_change=?, updated_ms=? WHERE case_no=?",
        (v.status, v.light, _d(v.due_date), int(v.due_provisional), _d(v.legal_due_date),
         _d(v.acceptance_due), json.dumps(list(v.violations)), int(closed),
         v.next_change.isoformat() if v.next_change else None, now_ms, case_no))
    return old_light, v.light


def insert_registration(conn: sqlite3.Connection, site: str, seq: int, reg: CaseRegistered) -> bool:
    """Create the case row for a registration; False if the case number already exists."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO cases (case_no, site, item_code, item_name, department, query_code, "
        "received_at, reg_seq, reg_json, status, light) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', 'green')",
        (reg.case_no, site, reg.item.code, reg.item.name, reg.item.department, reg.query_code,
         reg.received_at.isoformat(), seq, reg.model_dump_json()))
    return cur.rowcount == 1


def _d(d) -> str | None:
    return d.isoformat() if d else None
