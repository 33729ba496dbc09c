"""Case projection at the hub: re-evaluate cases in batches and report light transitions.

A case row holds its rule (case type and limits as registered) in plain columns, so the sweep
never re-parses the registration; events are read for a whole chunk of cases in one query.
`evaluate` is the pure case clock shared with the agent. The SQL is the common dialect of SQLite
and PostgreSQL (hub/db.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.db import in_list
from protocol.calendar import CST, WorkCalendar
from protocol.caseclock import CLOSED, Event, ItemRule, evaluate

log = logging.getLogger("jiancha.hub.projection")
CHUNK = 500
_EVENT_FIELDS = ("actor", "reason", "days", "procedure", "step", "approver", "link")
_HAS_RECORDED = "recorded_at" in getattr(Event, "__dataclass_fields__", {})
_HAS_LINK = "link" in getattr(Event, "__dataclass_fields__", {})


@dataclass(frozen=True)
class Transition:
    """A case's light changed (a yellow or red card, or back to green after an event)."""

    case_no: str
    site: str
    department: str
    item_name: str
    old: str | None
    new: str
    due_date: str | None
    remaining_days: int | None
    violations: tuple[str, ...]


def event_from_row(seq: int, body_json: str, recorded_ms: int | None) -> Event:
    """A caseclock Event from a stored case.event body (validated at ingest)."""
    b = json.loads(body_json)
    kw = {k: b.get(k) for k in _EVENT_FIELDS if k in b and (k != "link" or _HAS_LINK)}
    if _HAS_RECORDED and recorded_ms:
        kw["recorded_at"] = datetime.fromtimestamp(recorded_ms / 1000, CST)
    return Event(type=b["type"], at=datetime.fromisoformat(b["at"]), seq=seq, **kw)


def project_cases(
    conn,
    case_nos: Iterable[str],
    now: datetime,
    cal: WorkCalendar,
    default_yellow: int,
    now_ms: int,
    *,
    backdate_tolerance: timedelta | None = None,
    known_light: dict[str, str] | None = None,
) -> list[Transition]:
    """Re-evaluate the given cases (in chunks) and update their rows; returns transitions."""
    out: list[Transition] = []
    ids = list(case_nos)
    for i in range(0, len(ids), CHUNK):
        out += _project_chunk(
            conn, ids[i : i + CHUNK], now, cal, default_yellow, now_ms, backdate_tolerance, known_light or {}
        )
    return out


def _project_chunk(conn, chunk, now, cal, default_yellow, now_ms, tolerance, known_light) -> list[Transition]:
    where, params = in_list(conn, "case_no", chunk)
    cases = conn.execute(
        f"SELECT case_no, site, department, item_name, light, case_type, legal_days, promised_days, "
        f"yellow_days, received_at, item_code FROM cases WHERE {where} "
        f"AND COALESCE(item_check, '') != 'unknown_item'",
        params,
    ).fetchall()  # no trusted rule: never judged
    events: dict[str, list[Event]] = {}
    for case_no, seq, body, rec_ms in conn.execute(
        f"SELECT case_no, seq, body_json, recorded_ms FROM case_events WHERE {where} ORDER BY case_no, seq",
        params,
    ):
        events.setdefault(case_no, []).append(event_from_row(seq, body, rec_ms))
    updates, out = [], []
    extra = {"backdate_tolerance": tolerance} if tolerance is not None and _HAS_RECORDED else {}
    for case_no, site, dept, item_name, light, ctype, legal, promised, yellow, received, code in cases:
        try:
            rule = ItemRule(code=code, case_type=ctype, legal_days=legal, promised_days=promised, yellow_days=yellow)
            v = evaluate(
                rule, datetime.fromisoformat(received), events.get(case_no, []), now, cal, default_yellow, **extra
            )
        except (ValueError, TypeError, OverflowError) as exc:  # one bad case never blocks the rest
            log.error("case %s cannot be evaluated: %s", case_no, exc)
            continue
        old = known_light.get(case_no, light)
        updates.append(
            (
                v.status,
                v.light,
                _d(v.due_date),
                int(v.due_provisional),
                _d(v.legal_due_date),
                _d(v.acceptance_due),
                json.dumps(list(v.violations)),
                int(v.status in CLOSED),
                v.next_change.isoformat() if v.next_change else None,
                now_ms,
                int(v.light == "yellow" and old != "yellow"),
                int(v.light == "red" and old != "red"),
                case_no,
            )
        )
        if v.light != old:
            out.append(
                Transition(
                    case_no, site, dept, item_name, old, v.light, _d(v.due_date), v.remaining_days, tuple(v.violations)
                )
            )
    conn.executemany(
        "UPDATE cases SET status=?, light=?, due_date=?, due_provisional=?, legal_due_date=?, "
        "acceptance_due=?, violations=?, closed=?, next_change=?, updated_ms=?, "
        "yellow_cards = yellow_cards + ?, red_cards = red_cards + ? WHERE case_no=?",
        updates,
    )
    return out


def due_for_sweep(conn, now: datetime) -> list[str]:
    """Open cases whose next light/state change is due (partial index on next_change)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT case_no FROM cases WHERE closed=0 AND next_change IS NOT NULL AND next_change <= ?",
            (now.isoformat(),),
        )
    ]


def _d(d) -> str | None:
    return d.isoformat() if d else None
