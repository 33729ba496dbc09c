"""The wall (监察大屏): counts by light, per site and per department, and the late cases first.

Pure decisions (days overdue, the reasons people read) are functions over values; the queries
take a connection and the actor's scope (hub/access.py `scope_where`), so a county supervisor or
viewer sees only their sites and a department officer only its department. Chinese labels only:
people never see codes (docs/wall.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime

from hub.access import Actor, scope_where
from hub.store import URGENCY
from protocol.calendar import CST, WorkCalendar
from protocol.caseclock_types import VIOLATION_ZH

URGENCY_LIGHT = URGENCY.split(",")[0]  # the index's first expression: 0 red, 1 yellow, 2 green

# the wall's counts per department, and (for a department officer) per site, read one small
# partial index alone (bench/wall.py: without it SQLite reads every case of the department or
# looks up each open case's site); the same on PostgreSQL (hub/schema_pg.py)
WALL_INDEX_SQL = "CREATE INDEX cases_open_department ON cases(department, light, site) WHERE closed = 0;"
MIGRATIONS = [("wall_0001_open_cases_by_department", WALL_INDEX_SQL)]
WALL_COUNTER = "wall_changes"  # bumped by ingest whenever cases or a site's state changed (hub/ingest.py)
LIGHTS = ("green", "yellow", "red")
LIGHT_ZH = {"green": "绿灯", "yellow": "黄牌", "red": "红牌"}
LATE_LIMIT_MAX = 1000
# why a case is late, besides the procedural violations of protocol.caseclock_types.VIOLATION_ZH
OVERDUE_ZH = "逾期未办结"
LEGAL_OVERDUE_ZH = "超过法定时限"
ACCEPTANCE_STAGE = ("received", "supplement_requested")


def days_overdue(due: date | None, today: date, cal: WorkCalendar) -> int:
    """Working days past `due` (the due day itself not counted): 0 when not past due or no due."""
    if due is None or today <= due:
        return 0
    return cal.working_days_between(due, today)


def remaining_days(due: date | None, today: date, cal: WorkCalendar) -> int | None:
    """Working days left until `due` (0 on the due day), None when past due or no due date."""
    if due is None or today > due:
        return None
    return cal.working_days_between(today, due)


def late_reasons(
    status: str, light: str, violations: list[str], due: date | None, legal_due: date | None, today: date
) -> list[str]:
    """The reasons, in Chinese, an open case is on the late list: past its promised (or
    acceptance) date, past its legal date, and each procedural violation (红牌事由)."""
    out: list[str] = []
    if due is not None and today > due and status not in ACCEPTANCE_STAGE:
        out.append(OVERDUE_ZH)
    if legal_due is not None and today > legal_due:
        out.append(LEGAL_OVERDUE_ZH)
    out += [VIOLATION_ZH.get(v, "其他程序违规") for v in violations]
    if due is not None and today > due and status in ACCEPTANCE_STAGE and "acceptance_timeout" not in violations:
        out.append(VIOLATION_ZH["acceptance_timeout"])
    if not out and light == "yellow":
        out.append("临近办理期限")
    return out


def _d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _scoped(actor: Actor) -> tuple[str, tuple]:
    """' AND <scope>' (or '') and its arguments."""
    cond, args = scope_where(actor)
    return (f" AND {cond}", tuple(args)) if cond else ("", ())


def _counts(conn, column: str, scope: str, args: tuple) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, light, n in conn.execute(
        f"SELECT {column}, light, count(*) FROM cases WHERE closed = 0{scope} GROUP BY {column}, light", args
    ):
        out.setdefault(key or "", {})[light] = int(n)
    return out


def department_heads(conn) -> dict[str, str]:
    """Department → the name of its head (负责人), from the notification directory (通讯录,
    docs/notifications.md): the one place the hub keeps departments' people."""
    return {dep: name for dep, name in conn.execute("SELECT department, name FROM directory WHERE role = 'head'")}


def wall_data(
    conn,
    actor: Actor,
    now: datetime,
    cal: WorkCalendar,
    *,
    site_names: Callable[[str], str | None],
    sites_known: list[str],
    limit: int = 200,
) -> dict:
    """Everything the wall shows, within the actor's scope."""
    today = now.astimezone(CST).date()
    scope, args = _scoped(actor)
    by_site = _counts(conn, "site", scope, args)
    by_dep = _counts(conn, "department", scope, args)
    heads = department_heads(conn)
    totals = dict.fromkeys(LIGHTS, 0)
    for counts in by_site.values():
        for light, n in counts.items():
            totals[light] = totals.get(light, 0) + n
    sites = _site_rows(conn, actor, by_site, site_names, sites_known)
    departments = [
        {"department": dep or "（未登记部门）", "head": heads.get(dep), **_light_counts(c)}
        for dep, c in sorted(by_dep.items(), key=lambda kv: (-kv[1].get("red", 0), -kv[1].get("yellow", 0), kv[0]))
    ]
    late = late_cases(conn, scope, args, today, cal, heads, site_names, limit)
    late_fu = late_followups(conn, scope, args, today, cal, heads, site_names, limit)
    return {
        "now": now.astimezone(CST).isoformat(timespec="seconds"),
        "today": today.isoformat(),
        "counts": totals,
        "late_total": totals["red"] + totals["yellow"],
        "sites": sites,
        "departments": departments,
        "late": late,
        "late_followups": late_fu,  # red 差评 follow-ups (hub/followups.py), most overdue first
    }


def _light_counts(c: dict[str, int]) -> dict[str, int]:
    return {light: int(c.get(light, 0)) for light in LIGHTS}


def _site_rows(conn, actor: Actor, by_site, site_names, sites_known) -> list[dict]:
    """Sites by name with their open cases per light; health (online, last seen) only for
    actors scoped by region (a department officer sees its cases' counts per site, no more)."""
    codes = set(by_site)
    health: dict[str, tuple] = {}
    if actor.department is None:
        codes |= {c for c in sites_known if actor.region is None or c.startswith(actor.region)}
        health = {
            code: (bool(online), last_ms)
            for code, online, last_ms in conn.execute("SELECT code, online, last_seen_ms FROM sites")
        }
    rows = []
    for code in codes:
        online, last_ms = health.get(code, (None, None))
        row = {"code": code, "name": site_names(code) or code, **_light_counts(by_site.get(code, {}))}
        if actor.department is None:
            row["online"] = bool(online)
            row["last_seen"] = _iso_ms(last_ms)
        rows.append(row)
    rows.sort(key=lambda r: (-r["red"], -r["yellow"], r["name"], r["code"]))
    return rows


def late_cases(conn, scope: str, args: tuple, today: date, cal, heads, site_names, limit: int) -> list[dict]:
    """Open red then yellow cases, most urgent first (the index cases_open_urgency), with days
    overdue, window, clerk, the department's head and the reasons in Chinese. No applicant."""
    cur = conn.execute(
        "SELECT case_no, site, item_name, department, status, light, due_date, due_provisional, "
        "legal_due_date, violations, received_at, reg_json FROM cases "
        f"WHERE closed = 0 AND {URGENCY_LIGHT} < 2{scope} ORDER BY {URGENCY} LIMIT ?",  # a range of cases_open_urgency
        (*args, limit),
    )
    out = []
    for case_no, site, item, dep, status, light, due, prov, legal, viol, received, reg_json in cur.fetchall():
        reg = _json(reg_json)
        due_d, legal_d = _d(due), _d(legal)
        violations = [v for v in _json(viol, []) if isinstance(v, str)]
        out.append(
            {
                "case_no": case_no,
                "site": site,
                "site_name": site_names(site) or site,
                "item_name": item or (reg.get("item") or {}).get("name"),
                "department": dep,
                "head": heads.get(dep),
                "window": _text(reg.get("window")),
                "clerk": _text(reg.get("clerk")),
                "status": status,
                "light": light,
                "light_zh": LIGHT_ZH.get(light, "未知"),
                "received_at": received,
                "due_date": due,
                "due_provisional": bool(prov),
                "days_overdue": days_overdue(due_d, today, cal),
                "remaining_days": remaining_days(due_d, today, cal),
                "reasons_zh": late_reasons(status, light, violations, due_d, legal_d, today),
            }
        )
    return out


FOLLOWUP_LATE_ZH = "差评回访逾期未办结"


def late_followups(conn, scope: str, args: tuple, today: date, cal, heads, site_names, limit: int) -> list[dict]:
    """Open red 差评 follow-ups (past their limit, not under appeal), oldest due first, with the
    rating (channel and level), window, department, its head, days overdue and the reason in
    Chinese. No citizen's data (a portal rating's comment is not shown here)."""
    from hub.followups import APPEALED, CHANNEL_ZH

    cur = conn.execute(
        'SELECT id, site, case_no, "window", department, channel, level_name, due, ticket_id FROM followups '
        f"WHERE closed_ms IS NULL AND light = 'red' AND step <> ?{scope} ORDER BY due, id LIMIT ?",
        (APPEALED, *args, limit),
    )
    out = []
    for fid, site, case_no, window, dep, channel, level_name, due, ticket_id in cur.fetchall():
        due_d = _d(due)
        out.append(
            {
                "id": fid,
                "site": site,
                "site_name": (site_names(site) or site) if site else None,
                "case_no": case_no,
                "window": _text(window),
                "department": dep,
                "head": heads.get(dep),
                "rating_zh": f"{CHANNEL_ZH.get(channel, '评价')}「{level_name}」",
                "light": "red",
                "light_zh": LIGHT_ZH["red"],
                "due_date": due,
                "days_overdue": days_overdue(due_d, today, cal),
                "ticket_id": ticket_id,
                "reasons_zh": [FOLLOWUP_LATE_ZH],
            }
        )
    return out


def _json(text, default=None):
    try:
        v = json.loads(text) if text else default
    except ValueError:
        return {} if default is None else default
    return v if v is not None else ({} if default is None else default)


def _text(v) -> str | None:
    return v[:64] if isinstance(v, str) and v else None


def _iso_ms(ms) -> str | None:
    return datetime.fromtimestamp(ms / 1000, CST).isoformat(timespec="seconds") if ms else None


def change_marker(conn) -> int:
    """The wall's change counter (ingest's own rows and its workers' shards, summed): cheap,
    one indexed row per writer, so each hub process can poll it a few times a second."""
    row = conn.execute(
        "SELECT (SELECT COALESCE(sum(value), 0) FROM counters WHERE name = ?) + "
        "(SELECT COALESCE(sum(value), 0) FROM counter_shards WHERE name = ?)",
        (WALL_COUNTER, WALL_COUNTER),
    ).fetchone()
    return int(row[0] or 0)
