"""The events scores count (绩效评估的事实), read from the hub's store for one period.

One reader per event kind (hub/scores_rules.py KINDS); each returns `Event`s with the China date
the event belongs to, the record it came from (case number, ticket, follow-up, complaint,
device record, catalog version, manual item) and who it concerns (department, site, window,
staff). Only the kinds some rule needs are read. See docs/scores.md "Where each kind comes from".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from hub import db
from hub.followups import BAD_LEVELS, VOTE_NOT_MARKED
from protocol.calendar import CST, WorkCalendar, cst_midnight, local_date

SATISFIED_LEVELS = (1, 2)  # 非常满意, 满意


@dataclass(frozen=True, slots=True)
class Event:
    """One countable fact: kind, China date, the record it came from, and whom it concerns."""

    kind: str
    day: str  # YYYY-MM-DD, China date
    ref: str  # the record: case number, 督办 #id, 回访 #id, complaint number, ...
    department: str | None = None
    site: str | None = None
    window: str | None = None
    staff: str | None = None
    attrs: tuple[tuple[str, str | int], ...] = field(default=())
    detail: str = ""

    def attr(self, key: str):
        """An attribute for filters: the common ones, then the kind's own."""
        if key == "department":
            return self.department
        if key == "site":
            return self.site
        return dict(self.attrs).get(key)

    def canonical(self) -> str:
        """One line for the fingerprint: every field, unit-separated (None as an empty field)."""
        attrs = "\x1d".join(f"{k}={v}" for k, v in self.attrs)
        return "\x1f".join((self.kind, self.day, self.ref, self.department or "", self.site or "",
                             self.window or "", self.staff or "", attrs, self.detail))  # fmt: skip


@dataclass(frozen=True)
class Window:
    """The period read: [start, end] China dates, and `as_of` (nothing later than it counts)."""

    start: date
    end: date
    as_of: date

    @property
    def last(self) -> date:
        return min(self.end, self.as_of)

    def ms(self) -> tuple[int, int]:
        """[start, last + 1 day) as ms since 1970."""
        a = cst_midnight(self.start)
        b = cst_midnight(self.last + timedelta(days=1))
        return int(a.timestamp() * 1000), int(b.timestamp() * 1000)


def _day_of_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CST).date().isoformat()


@lru_cache(maxsize=4096)
def norm_window(label) -> str | None:
    """One name per window whoever wrote it: '3', 3, '3号窗口' and '窗口3' are all '3'."""
    if label in (None, ""):
        return None
    t = str(label).strip()
    m = re.fullmatch(r"\D{0,4}?(\d{1,4})\D{0,4}", t)
    return m[1].lstrip("0") or "0" if m else t[:32]


def _reg_sql(conn) -> str:
    """The registration's window and clerk, read by the engine (no JSON parsed in Python)."""
    if db.engine(conn) == db.POSTGRESQL:
        return "c.reg_json::json->>'window', c.reg_json::json->>'clerk'"
    return "json_extract(c.reg_json, '$.window'), json_extract(c.reg_json, '$.clerk')"


def _reg(reg_json: str | None) -> tuple[str | None, str | None]:
    try:
        reg = json.loads(reg_json or "{}")
    except ValueError:
        return None, None
    c = reg.get("clerk")
    return norm_window(reg.get("window")), (str(c) if c not in (None, "") else None)


def _cards(conn, w: Window, kind: str) -> list[Event]:
    """黄牌/红牌: the light change alerts (one per case and kind in the period)."""
    a, b = w.ms()
    alert = "light_yellow" if kind == "yellow_card" else "light_red"
    first: dict[str, tuple] = {}  # a case's first card of the kind in the period (no GROUP BY over wide rows)
    for row in conn.execute(
        f"SELECT a.case_no, a.at_ms, c.site, c.department, c.item_code, c.item_name, c.case_type, {_reg_sql(conn)} "
        "FROM alerts a JOIN cases c ON c.case_no = a.case_no WHERE a.kind = ? AND a.at_ms >= ? AND a.at_ms < ?",
        (alert, a, b),
    ):
        if row[0] not in first or row[1] < first[row[0]][1]:
            first[row[0]] = row
    out = []
    for case_no, at_ms, site, dept, item_code, item_name, case_type, win, clerk in first.values():
        win, clerk = norm_window(win), (str(clerk) if clerk not in (None, "") else None)
        attrs = (("case_type", case_type or ""), ("item_code", item_code or ""))
        out.append(Event(kind, _day_of_ms(at_ms), case_no, dept, site, win, clerk, attrs, item_name or ""))
    return out


def _tickets(conn, w: Window) -> list[Event]:
    """督办 unanswered: the reply deadline passed (the day after it is in the period) with no reply by then."""
    first = (w.start - timedelta(days=1)).isoformat()
    last = (w.last - timedelta(days=1)).isoformat()
    rows = conn.execute(
        "SELECT t.id, t.case_no, t.site, t.department, t.level, t.reply_due, c.item_code, c.reg_json, "
        "(SELECT min(e.at_ms) FROM ticket_events e WHERE e.ticket_id = t.id AND e.action = 'reply') "
        "FROM tickets t LEFT JOIN cases c ON c.case_no = t.case_no WHERE t.reply_due >= ? AND t.reply_due <= ?",
        (first, last),
    ).fetchall()
    out = []
    for tid, case_no, site, dept, level, due, item_code, reg_json, replied_ms in rows:
        late_day = date.fromisoformat(due) + timedelta(days=1)
        if replied_ms is not None and _day_of_ms(replied_ms) <= due:
            continue
        win, clerk = _reg(reg_json)
        attrs = (("item_code", item_code or ""), ("level", level))
        out.append(Event("ticket_unanswered", late_day.isoformat(), f"督办#{tid}", dept, site, win, clerk, attrs,
                         f"{case_no}，回复期限 {due}"))  # fmt: skip
    return out


def _followups(conn, w: Window) -> list[Event]:
    """差评: a 不满意/非常不满意 rating's follow-up not marked 误评/恶意差评 (rated in the period)."""
    a, b = w.ms()
    rows = conn.execute(
        'SELECT id, channel, case_no, site, "window", staff, department, level, level_name, rated_ms FROM followups '
        f"WHERE mark IS NULL AND level IN ({', '.join('?' * len(BAD_LEVELS))}) AND rated_ms >= ? AND rated_ms < ?",
        (*BAD_LEVELS, a, b),
    ).fetchall()
    return [
        Event(
            "verified_dissatisfaction",
            _day_of_ms(rated),
            f"回访#{fid}",
            dept,
            site,
            norm_window(win),
            staff,
            (("channel", channel), ("level", level)),
            f"{case_no or ''} {level_name}".strip(),
        )  # fmt: skip
        for fid, channel, case_no, site, win, staff, dept, level, level_name, rated in rows
    ]


def _votes(conn, w: Window, kind: str) -> list[Event]:
    """满意评价 (not misuse, not marked) or misuse presses, by press time."""
    a, b = w.ms()
    if kind == "satisfied_rating":
        cond = f"misuse IS NULL AND level IN (1, 2) AND {VOTE_NOT_MARKED}"
    else:
        cond = "misuse IS NOT NULL"
    rows = conn.execute(
        f'SELECT site, seq, case_no, "window", staff, department, level, level_name, channel, pressed_ms FROM votes '
        f"WHERE pressed_ms >= ? AND pressed_ms < ? AND {cond}",
        (a, b),
    ).fetchall()
    return [
        Event(
            kind,
            _day_of_ms(ms),
            case_no or f"{site}#{seq}",
            dept,
            site,
            norm_window(win),
            staff,
            (("channel", channel), ("level", level)),
            level_name,
        )  # fmt: skip
        for site, seq, case_no, win, staff, dept, level, level_name, channel, ms in rows
    ]


def _complaint_days(conn, w: Window, cal: WorkCalendar, reply_days: int) -> list[Event]:
    """Each working day a complaint assigned (交办) to a department stays unanswered past its
    limit (reply_days working days from the assign or reopen day), within the period."""
    a, _ = w.ms()
    rows = conn.execute(
        "SELECT c.id, c.complaint_no, c.about_kind, c.site, c.department, e.action, e.at_ms FROM complaints c "
        "JOIN complaint_events e ON e.complaint_id = c.id WHERE e.action IN ('assign', 'reopen', 'reply') "
        "AND c.department IS NOT NULL AND c.department <> '' AND c.id IN (SELECT complaint_id FROM complaint_events "
        "WHERE action IN ('assign', 'reopen') AND at_ms < ?) AND (c.status NOT IN ('closed', 'refused') "
        "OR c.updated_ms >= ?) ORDER BY c.id, e.at_ms, e.id",
        (w.ms()[1], a - 400 * 86_400_000),
    ).fetchall()
    by_cid: dict[int, tuple[tuple, list]] = {}
    for cid, no, about, site, dept, action, at_ms in rows:
        day = local_date(datetime.fromtimestamp(at_ms / 1000, CST))
        by_cid.setdefault(cid, ((no, about, site, dept), []))[1].append((action, day))
    out: list[Event] = []
    for info, steps in by_cid.values():
        since = None
        for action, day in steps:
            if action in ("assign", "reopen"):
                since = day
            elif since is not None:  # the reply ends the step
                out += _late_days(info, since, day, w, cal, reply_days)
                since = None
        if since is not None:  # still unanswered: late up to the period's last day
            out += _late_days(info, since, w.last, w, cal, reply_days)
    return out


def _late_days(info, since: date, replied: date, w: Window, cal: WorkCalendar, reply_days: int) -> list[Event]:
    no, about, site, dept = info
    due = cal.add_working_days(since, reply_days)[0]
    out, d = [], max(due, w.start - timedelta(days=1))
    while True:
        d = cal.next_working_day(d)
        if d > replied or d > w.last:
            return out
        n = cal.working_days_between(due, d)
        out.append(Event("complaint_late_day", d.isoformat(), no, dept, site, None, None, (("about_kind", about),),
                         f"答复期限 {due}，逾期第 {n} 个工作日"))  # fmt: skip


def _unattended(conn, w: Window) -> list[Event]:
    """窗口无人值守: the cameras' window_unattended records; the window's department is the one
    its keypad ratings name most in the period (none known: not on a department)."""
    lo, hi = (w.start - timedelta(days=1)).isoformat(), (w.last + timedelta(days=2)).isoformat()
    rows = conn.execute(
        "SELECT site, seq, device, \"window\", at, detail_json FROM device_events WHERE event = 'window_unattended' "
        "AND at >= ? AND at < ?",
        (lo, hi),
    ).fetchall()
    if not rows:
        return []
    depts = _window_departments(conn, w, {r[0] for r in rows})
    out = []
    for site, seq, device, win, at, detail_json in rows:
        day = local_date(datetime.fromisoformat(at))
        if not w.start <= day <= w.last:
            continue
        secs = (json.loads(detail_json or "{}") or {}).get("unattended_s")
        win = norm_window(win)
        detail = f"摄像机 {device}" + (f"，无人 {int(secs) // 60} 分钟" if isinstance(secs, int | float) else "")
        out.append(Event("unattended_window", day.isoformat(), f"{site}#{seq}", depts.get((site, win)), site, win,
                         None, (), detail))  # fmt: skip
    return out


def _window_departments(conn, w: Window, sites: set[str]) -> dict[tuple[str, str | None], str]:
    """(site, window) → the department whose keypad ratings that window received most in the
    period (votes carry the window's department; one aggregate, no case JSON read)."""
    a, b = w.ms()
    counts: Counter = Counter()
    for site, win, dept, n in conn.execute(
        'SELECT site, "window", department, count(*) FROM votes WHERE pressed_ms >= ? AND pressed_ms < ? '
        'AND department IS NOT NULL GROUP BY site, "window", department',
        (a, b),
    ):
        if site in sites:
            counts[(site, norm_window(win), dept)] += n
    best: dict = {}
    for (site, win, dept), n in sorted(counts.items()):
        if n > best.get((site, win), (0, ""))[0]:
            best[(site, win)] = (n, dept)
    return {k: v[1] for k, v in best.items()}


def _backdated(conn, w: Window) -> list[Event]:
    """补记超时: cases received in the period whose records came later than the tolerance."""
    a, b = w.start.isoformat(), (w.last + timedelta(days=1)).isoformat()
    rows = conn.execute(
        "SELECT case_no, site, department, item_code, item_name, case_type, received_at, reg_json FROM cases "
        "WHERE case_no IN (SELECT case_no FROM cases WHERE received_at >= ? AND received_at < ? "
        "AND violations <> '[]' AND violations LIKE '%\"backdated\"%')",  # the inner scan reads an index alone
        (a, b),
    ).fetchall()
    out = []
    for case_no, site, dept, item_code, item_name, case_type, received_at, reg_json in rows:
        day = local_date(datetime.fromisoformat(received_at))
        if not w.start <= day <= w.last:
            continue
        win, clerk = _reg(reg_json)
        out.append(Event("backdated", day.isoformat(), case_no, dept, site, win, clerk,
                         (("case_type", case_type or ""), ("item_code", item_code or "")), item_name or ""))  # fmt: skip
    return out


def _catalog(conn, w: Window, kinds: set[str]) -> list[Event]:
    """承诺件改即办件 and 压缩承诺时限: items of a catalog version signed in the period whose
    promised limit the previous version had longer (0 now, legal > 0: a conversion)."""
    a, b = w.ms()
    rows = conn.execute(
        "SELECT version, payload_json, at_ms FROM catalog_versions WHERE version >= "
        "COALESCE((SELECT max(version) FROM catalog_versions WHERE at_ms < ?), 0) AND at_ms < ? ORDER BY version",
        (a, b),
    ).fetchall()
    out, prev = [], None
    for version, payload, at_ms in rows:
        items = {i["code"]: i for i in json.loads(payload).get("items", [])}
        if prev is not None and at_ms >= a:
            for code, it in sorted(items.items()):
                old = prev.get(code)
                if old is None or it["promised_days"] >= old["promised_days"]:
                    continue
                legal, promised = it["legal_days"], it["promised_days"]
                conv = (
                    legal > 0 and (promised == 0 or it["case_type"] == "immediate") and old["case_type"] != "immediate"
                )
                kind = "immediate_conversion" if conv else "promise_shortened"
                if kind in kinds and promised < legal:
                    detail = f"{it['name']}：承诺 {old['promised_days']} → {promised} 个工作日（法定 {legal}）"
                    out.append(Event(kind, _day_of_ms(at_ms), f"{code}（目录第{version}版）", it["department"],
                                     None, None, None, (("item_code", code),), detail))  # fmt: skip
        prev = items
    return out


def _manual(conn, w: Window) -> list[Event]:
    """Manual items (表扬, 书面感谢, 违纪 ...) a supervisor entered, by their date."""
    rows = conn.execute(
        'SELECT id, day, category, department, site, "window", staff, reason, attachment FROM score_manual '
        "WHERE day >= ? AND day <= ?",
        (w.start.isoformat(), w.last.isoformat()),
    ).fetchall()
    return [
        Event(
            "manual",
            day,
            f"人工#{mid}",
            dept,
            site,
            norm_window(win),
            staff,
            (("category", cat),),
            reason + (f"（附件：{att}）" if att else ""),
        )  # fmt: skip
        for mid, day, cat, dept, site, win, staff, reason, att in rows
    ]


def read_events(conn, kinds: set[str], w: Window, cal: WorkCalendar, reply_days: int = 10) -> list[Event]:
    """Every event of `kinds` in the period, in a stable order (day, kind, ref)."""
    out: list[Event] = []
    for kind in ("yellow_card", "red_card"):
        if kind in kinds:
            out += _cards(conn, w, kind)
    if "ticket_unanswered" in kinds:
        out += _tickets(conn, w)
    if "verified_dissatisfaction" in kinds:
        out += _followups(conn, w)
    for kind in ("satisfied_rating", "vote_misuse"):
        if kind in kinds:
            out += _votes(conn, w, kind)
    if "complaint_late_day" in kinds:
        out += _complaint_days(conn, w, cal, reply_days)
    if "unattended_window" in kinds:
        out += _unattended(conn, w)
    if "backdated" in kinds:
        out += _backdated(conn, w)
    if kinds & {"immediate_conversion", "promise_shortened"}:
        out += _catalog(conn, w, kinds)
    if "manual" in kinds:
        out += _manual(conn, w)
    out.sort(key=lambda e: (e.day, e.kind, e.ref, e.department or "", e.site or "", e.window or "", e.staff or ""))
    return out
