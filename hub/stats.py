"""Statistics over the hub's store (统计分析, DESIGN §12): counts, rates, working-day durations,
ratings and complaints for a period of China dates and an actor's scope. Every figure is
defined in docs/stats.md; this module computes exactly those definitions.

The store is read with a few grouped SQL statements that both engines run the same way (hub/db.py):
the database does the counting, Python only folds groups and counts working days (protocol's
calendar) per distinct pair of dates. Times are stored as ISO text with their offset; agents
write China time (+08:00), whose first ten characters are the China date. A time stored with
another offset is grouped by its whole text and converted here, so it lands on its China date
too (the SQL range is widened by a day on each side and cut exactly in Python).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from hub.access import Actor, scope_where
from hub.db import SQLITE, engine
from hub.followups import VOTE_NOT_MARKED
from protocol.calendar import CST, WorkCalendar, local_date

MAX_PERIOD_DAYS = 366
TRENDS = ("day", "week", "month")
DECISIONS = ("approve", "deny", "complete")  # 办结: the first of these closes the case's clock
SATISFIED_LEVELS = (1, 2, 3)  # 非常满意, 满意, 基本满意
CHANNELS = ("keypad", "portal")
DAY_MS = 86_400_000
PARALLEL = 3  # parts counted at once (run_parts)
CST_MS = 8 * 3_600_000
# covering indexes: the month's receipts and decisions are read from the index alone (no row
# lookups; votes_pressed serves the scores' reading of the month's votes too), which is what keeps a month of a million-case store within the targets (docs/stats.md)
MIGRATIONS = [
    (
        "stats_0001_indexes",
        """
        CREATE INDEX case_events_type_at ON case_events(type, at, case_no, site, seq);
        CREATE INDEX case_events_case_decision ON case_events(case_no, type, at, site, seq);
        CREATE INDEX cases_stats_received ON cases(received_at, site, item_code, department, status, light, yellow_cards);
        CREATE INDEX cases_stats_decided ON cases(case_no, site, item_code, department, received_at, due_date,
            promised_days, legal_days);
        CREATE INDEX votes_pressed ON votes(pressed_ms, site, channel, level, misuse, department, "window", seq);
        CREATE INDEX complaints_filed ON complaints(filed_ms);
    """,
    )
]
PG_MIGRATIONS = [("pg_stats_0001_indexes", MIGRATIONS[0][1])]


class StatsError(ValueError):
    """A parameter the statistics cannot use; the message is Chinese, then English."""


@dataclass(frozen=True)
class Filter:
    """Which cases, ratings and complaints count: the actor's scope, narrowed by an optional
    region code prefix and department (both ANDed with the scope, never widening it)."""

    actor: Actor
    region: str | None = None
    department: str | None = None

    def where(self, site_col: str, dept_col: str) -> tuple[list[str], list]:
        """SQL conditions and arguments for tables with these site and department columns."""
        conds, args = [], []
        scoped, scope_args = scope_where(self.actor, site_col, dept_col)
        if scoped:
            conds.append(scoped)
            args.extend(scope_args)
        if self.region:
            conds.append(f"substr({site_col}, 1, ?) = ?")
            args.extend([len(self.region), self.region])
        for prefix in {p for p in (self.actor.region, self.region) if p}:
            # the same prefix as a range, so that an index on the site column can be used
            conds.append(f"{site_col} >= ? AND {site_col} < ?")
            args.extend([prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)])
        if self.department:
            conds.append(f"{dept_col} = ?")
            args.append(self.department)
        return conds, args


def dkey(col: str) -> str:
    """SQL: the China date of an ISO time column (+08:00 text), else the whole text (see above)."""
    return f"CASE WHEN {col} LIKE '%+08:00' THEN substr({col}, 1, 10) ELSE {col} END"


def key_date(key: str) -> date:
    """The China date of a dkey() value."""
    if len(key) == 10:
        return _day(key)
    return local_date(datetime.fromisoformat(key))


@lru_cache(maxsize=4096)
def _day(key: str) -> date:
    return date.fromisoformat(key)


def parse_period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """(first, last) China dates, both inclusive; default: this month up to today. ≤ 366 days."""
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last.replace(day=1)
    except (ValueError, TypeError):
        raise StatsError("日期格式应为 YYYY-MM-DD (from/to must be YYYY-MM-DD dates)") from None
    if not (2000 <= first.year <= 2100 and 2000 <= last.year <= 2100):
        raise StatsError("日期须在 2000 至 2100 年之间 (dates must be within 2000-2100)")
    if first > last:
        raise StatsError("开始日期不能晚于结束日期 (from must not be after to)")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise StatsError(f"统计期间最长 {MAX_PERIOD_DAYS} 天 (the period is at most {MAX_PERIOD_DAYS} days)")
    return first, last


def month_period(month: str) -> tuple[date, date]:
    """'2026-11' → (2026-11-01, 2026-11-30)."""
    try:
        y, m = (int(x) for x in month.split("-"))
        first = date(y, m, 1)
    except (ValueError, TypeError):
        raise StatsError(f"月份格式应为 YYYY-MM (month must be YYYY-MM): {month[:20]!r}") from None
    nxt = date(y + (m == 12), m % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def trend_label(d: date, trend: str) -> str:
    """The trend bucket of a day: 2026-11-03 (day), 2026-11-02 (week: its Monday), 2026-11 (month)."""
    if trend == "week":
        return (d - timedelta(days=d.weekday())).isoformat()
    if trend == "month":
        return d.strftime("%Y-%m")
    return d.isoformat()


def rate(num: int, den: int) -> float | None:
    """num/den rounded to 4 places, None without a denominator."""
    return round(num / den, 4) if den else None


def _range(first: date, last: date) -> tuple[str, str]:
    """Text bounds one day wider than the period on each side (cut exactly in Python)."""
    return (first - timedelta(days=1)).isoformat(), (last + timedelta(days=2)).isoformat()


def _and(conds: list[str]) -> str:
    return "".join(f" AND {c}" for c in conds)


# -- the cases received in the period ------------------------------------------------------------
def received(conn, flt: Filter, first: date, last: date) -> dict:
    """Cases received (收件) in the period: by day × status/light/warned, by site, by item."""
    lo, hi = _range(first, last)
    conds, args = flt.where("site", "department")
    k = dkey("received_at")
    # one index-only pass (cases_stats_received), folded here: cheaper than three GROUP BYs
    sql = (f"SELECT {k}, site, item_code, department, status, light, yellow_cards FROM cases "
           f"WHERE received_at >= ? AND received_at < ?{_and(conds)}")  # fmt: skip
    counts: dict[tuple, int] = defaultdict(int)
    for key, site, code, dept, st, li, yellow in conn.execute(sql, (lo, hi, *args)):
        counts[(key, site, code, dept, st, li, yellow > 0)] += 1
    days: dict[date, dict] = defaultdict(lambda: {"n": 0, "warned": 0})
    status, light, sites = defaultdict(int), defaultdict(int), defaultdict(int)
    items: dict[tuple, int] = defaultdict(int)
    for (key, site, code, dept, st, li, warned), n in counts.items():
        d = key_date(key)
        if first <= d <= last:
            days[d]["n"] += n
            days[d]["warned"] += n * warned
            status[st] += n
            light[li] += n
            sites[site] += n
            items[(code, dept or "")] += n
    return {"days": dict(days), "status": dict(status), "light": dict(light), "sites": dict(sites),
            "items": dict(items), "names": item_names(conn, {c for c, _ in items})}  # fmt: skip


def item_names(conn, codes: set[str]) -> dict[str, str]:
    """Item code → name: the catalog's, else the name a case registered it under."""
    names = {c: n for c, n in conn.execute("SELECT code, name FROM catalog").fetchall() if c in codes}
    for code in sorted(codes - set(names))[:1000]:
        row = conn.execute("SELECT item_name FROM cases WHERE item_code = ? AND item_name IS NOT NULL LIMIT 1", (code,))
        names[code] = (row.fetchone() or ("",))[0]
    return names


# -- the cases concluded in the period -----------------------------------------------------------
class Durations:
    """Concluded cases of one group as a histogram: (working days, on time?, promised, legal) →
    cases. A group has a few hundred distinct keys however many cases it holds."""

    __slots__ = ("hist",)

    def __init__(self) -> None:
        self.hist: dict[tuple, int] = defaultdict(int)

    def figures(self) -> dict:
        """The group's figures (docs/stats.md)."""
        n = with_due = on_time = with_prom = faster = with_legal = total = 0
        r_prom = r_legal = 0.0
        days: dict[int, int] = defaultdict(int)
        for (dur, ok, promised, legal), k in self.hist.items():
            n += k
            total += dur * k
            days[dur] += k
            if ok is not None:
                with_due += k
                on_time += k * ok
            if promised:
                with_prom += k
                r_prom += k * dur / promised
                faster += k * (dur < promised)
            if legal:
                with_legal += k
                r_legal += k * dur / legal
        return {
            "concluded": n,
            "on_time": on_time,
            "late": with_due - on_time,
            "on_time_rate": rate(on_time, with_due),
            "overdue_rate": rate(with_due - on_time, with_due),
            "mean_days": round(total / n, 2) if n else None,
            "median_days": _hist_median(days, n),
            "p90_days": _hist_rank(days, math.ceil(0.9 * n)) if n else None,
            "ratio_promised": round(r_prom / with_prom, 4) if with_prom else None,
            "faster_rate": rate(faster, with_prom),
            "ratio_legal": round(r_legal / with_legal, 4) if with_legal else None,
        }


def _hist_rank(days: dict[int, int], rank: int) -> int:
    """The value at 1-based `rank` of the sorted values the histogram holds."""
    seen = 0
    for value in sorted(days):
        seen += days[value]
        if seen >= rank:
            return value
    raise ValueError(rank)


def _hist_median(days: dict[int, int], n: int) -> float | None:
    if not n:
        return None
    return (
        float(_hist_rank(days, n // 2 + 1)) if n % 2 else (_hist_rank(days, n // 2) + _hist_rank(days, n // 2 + 1)) / 2
    )


def concluded(conn, flt: Filter, first: date, last: date, cal: WorkCalendar) -> dict:
    """Cases concluded (办结: their first approve/deny/complete) in the period, grouped."""
    lo, hi = _range(first, last)
    conds, args = flt.where("c.site", "c.department")
    types = ", ".join(f"'{t}'" for t in DECISIONS)
    rk, dk = dkey("c.received_at"), dkey("e.at")
    sql = (
        f"SELECT c.site, c.item_code, c.department, {rk}, {dk}, c.due_date, c.promised_days, c.legal_days, 1 "
        f"FROM case_events e JOIN cases c ON c.case_no = e.case_no "
        f"WHERE e.type IN ({types}) AND e.at >= ? AND e.at < ?{_and(conds)} "
        f"AND NOT EXISTS (SELECT 1 FROM case_events p WHERE p.case_no = e.case_no AND p.type IN ({types}) "
        f"AND (p.at < e.at OR (p.at = e.at AND (p.site < e.site OR (p.site = e.site AND p.seq < e.seq)))))"
    )  # rows, not groups: sorting them for a GROUP BY costs more than folding them here
    names = ("all", "item", "department", "site", "county", "day")
    groups: dict[str, dict] = {g: defaultdict(Durations) for g in names}
    wd: dict[tuple[str, str], int] = {}
    dates: dict[str, date] = {}
    counties: dict[str, str] = {}
    for site, item, dept, rkey, dkey_, due, promised, legal, n in conn.execute(sql, (lo, hi, *args)):
        done = dates.get(dkey_) or dates.setdefault(dkey_, key_date(dkey_))
        if not first <= done <= last:
            continue
        pair = (rkey, dkey_)
        dur = wd.get(pair)
        if dur is None:
            recv = dates.get(rkey) or dates.setdefault(rkey, key_date(rkey))
            dur = wd[pair] = max(0, cal.working_days_between(recv, done))
        on_time = None if not due else done.isoformat() <= due[:10]
        key, n = (dur, on_time, promised, legal), int(n)
        county = counties.get(site) or counties.setdefault(site, county_of(site))
        for g, k in zip(names, ("", item, dept or "", site, county, done)):
            groups[g][k].hist[key] += n
    return {g: {k: v.figures() for k, v in d.items()} for g, d in groups.items()}


def county_of(site: str) -> str:
    """A site's county (区县): the region code before the site's number, 140702-001 → 140702."""
    return (site or "").split("-", 1)[0][:6]


def open_overdue(conn, flt: Filter, today: date) -> int:
    """Cases still open whose promised limit ran out before today (在办超期), as of today."""
    conds, args = flt.where("site", "department")
    sql = f"SELECT count(*) FROM cases WHERE closed = 0 AND due_date IS NOT NULL AND due_date < ?{_and(conds)}"
    return int(conn.execute(sql, (today.isoformat(), *args)).fetchone()[0])


# -- ratings -------------------------------------------------------------------------------------
def ratings(conn, flt: Filter, first: date, last: date) -> dict:
    """Counted ratings (满意率) by channel, level, day and site; excluded ones counted apart."""
    lo = int(datetime(first.year, first.month, first.day, tzinfo=CST).timestamp() * 1000)
    hi = lo + ((last - first).days + 1) * DAY_MS
    conds, args = flt.where("site", "department")
    day = f"CAST((pressed_ms + {CST_MS}) / {DAY_MS} AS BIGINT)"
    base = f"FROM votes WHERE pressed_ms >= ? AND pressed_ms < ?{_and(conds)}"
    levels = {ch: [0] * 5 for ch in CHANNELS}
    by_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])  # [counted, satisfied]
    by_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    marked_expr = f"CASE WHEN misuse IS NULL AND {VOTE_NOT_MARKED.replace('NOT EXISTS', 'EXISTS', 1)} THEN 1 ELSE 0 END"
    counts: dict[tuple, int] = defaultdict(int)
    # one index-only pass over the period's ratings (votes_pressed), folded here
    for row in conn.execute(
        f"SELECT {day}, site, channel, level, misuse IS NULL, {marked_expr} {base}", (lo, hi, *args)
    ):
        counts[row] += 1
    misuse = marked = 0
    for (dn, site, channel, level, unflagged, is_marked), n in counts.items():
        if not unflagged:
            misuse += n
        elif is_marked:
            marked += n
        elif channel in levels and 1 <= level <= 5:
            levels[channel][level - 1] += n
            d = date(1970, 1, 1) + timedelta(days=int(dn))
            ok = n * (level in SATISFIED_LEVELS)
            for acc in (by_day[d], by_site[site]):
                acc[0] += n
                acc[1] += ok
    channels = {ch: _levels(levels[ch]) for ch in CHANNELS}
    channels["all"] = _levels([a + b for a, b in zip(levels["keypad"], levels["portal"])])
    return {"channels": channels, "days": dict(by_day), "sites": dict(by_site),
            "misuse": int(misuse), "marked": int(marked)}  # fmt: skip


def _levels(counts: list[int]) -> dict:
    total = sum(counts)
    return {
        "levels": counts,
        "total": total,
        "satisfied": sum(counts[:3]),
        "satisfaction": rate(sum(counts[:3]), total),
    }


# -- complaints ----------------------------------------------------------------------------------
def complaints(conn, flt: Filter, first: date, last: date, cal: WorkCalendar, reply_days: int, today: date) -> dict:
    """Complaints filed in the period: by status; replies on time (each reply round within
    `reply_days` working days of its assignment or reopening, as hub/complaints.py supervises)."""
    lo = int(datetime(first.year, first.month, first.day, tzinfo=CST).timestamp() * 1000)
    hi = lo + ((last - first).days + 1) * DAY_MS
    conds, args = flt.where("site", "department")
    where = f"filed_ms >= ? AND filed_ms < ?{_and(conds)}"
    status: dict[str, int] = defaultdict(int)
    for st, n in conn.execute(
        f"SELECT status, count(*) FROM complaints WHERE {where} GROUP BY status", (lo, hi, *args)
    ):
        status[st] += int(n)
    rounds: dict[int, list] = defaultdict(list)  # complaint id → [(start date, reply date | None)]
    for cid, at_ms, action in conn.execute(
        f"SELECT complaint_id, at_ms, action FROM complaint_events WHERE complaint_id IN "
        f"(SELECT id FROM complaints WHERE {where}) AND action IN ('assign', 'reopen', 'reply') "
        f"ORDER BY complaint_id, at_ms, id",
        (lo, hi, *args),
    ):
        d = datetime.fromtimestamp(at_ms / 1000, CST).date()
        r = rounds[cid]
        if action == "reply":
            if r and r[-1][1] is None:
                r[-1] = (r[-1][0], d)
        elif not r or r[-1][1] is not None:
            r.append((d, None))
    replied = on_time = late_open = 0
    due_of: dict[date, date] = {}
    for r in rounds.values():
        done = [(s, e) for s, e in r if e is not None]
        for s, _ in r:
            if s not in due_of:
                due_of[s] = cal.add_working_days(s, reply_days)[0]
        if done:
            replied += 1
            on_time += all(e <= due_of[s] for s, e in done)
        if any(e is None and today > due_of[s] for s, e in r):
            late_open += 1
    filed = sum(status.values())
    return {"filed": filed, "status": dict(status), "replied": replied, "replied_on_time": on_time,
            "on_time_rate": rate(on_time, replied), "open_late": late_open}  # fmt: skip


# -- everything ----------------------------------------------------------------------------------
def compute(conn, flt: Filter, first: date, last: date, cal: WorkCalendar, now: datetime, *,
            reply_days: int = 5, trend: str = "day") -> dict:  # fmt: skip
    """All statistics of the period within the filter (the numbers; hub/stats_tables.py shapes them)."""
    if trend not in TRENDS:
        raise StatsError(f"by 应为 {'、'.join(TRENDS)} 之一 (by must be one of {', '.join(TRENDS)})")
    today = local_date(now)
    parts = {
        "concluded": lambda c: concluded(c, flt, first, last, cal),  # the longest first
        "received": lambda c: received(c, flt, first, last),
        "ratings": lambda c: ratings(c, flt, first, last),
        "complaints": lambda c: complaints(c, flt, first, last, cal, reply_days, today),
        "open_overdue": lambda c: open_overdue(c, flt, today),
    }
    got = run_parts(conn, parts)
    rec, con, rat, com = got["received"], got["concluded"], got["ratings"], got["complaints"]
    n_received = sum(v["n"] for v in rec["days"].values())
    warned = sum(v["warned"] for v in rec["days"].values())
    total = con["all"].get("") or Durations().figures()
    summary = {
        "received": n_received,
        "warned": warned,
        "warning_rate": rate(warned, n_received),
        **total,
        "open_overdue": got["open_overdue"],
        "satisfaction": {ch: rat["channels"][ch]["satisfaction"] for ch in ("all", *CHANNELS)},
        "ratings": rat["channels"]["all"]["total"],
        "complaints": com["filed"],
        "complaints_replied": com["replied"],
        "complaints_on_time": com["replied_on_time"],
        "complaint_on_time_rate": com["on_time_rate"],
    }
    return {"from": first.isoformat(), "to": last.isoformat(), "as_of": today.isoformat(), "trend": trend,
            "summary": summary, "received": rec, "concluded": con, "ratings": rat, "complaints": com}  # fmt: skip


def run_parts(conn, parts: dict) -> dict:
    """Run each part(conn) -> result side by side, each on a reader of its own: the pooled
    reader on PostgreSQL (each statement takes a pooled connection), a new read-only connection
    to the same file on SQLite (it reads without blocking or being blocked, WAL). The SQL runs
    outside Python's GIL, so a two-core machine counts two parts at once. A connection we cannot
    duplicate (an in-memory database, a PgConnection inside a transaction) runs them in turn."""
    from concurrent.futures import ThreadPoolExecutor

    from hub.db import PgPool, connect

    path = None
    if not isinstance(conn, PgPool) and engine(conn) == SQLITE:
        row = conn.execute("PRAGMA database_list").fetchone()
        path = row[2] if row and row[2] else None
    if not isinstance(conn, PgPool) and path is None:
        return {k: fn(conn) for k, fn in parts.items()}

    def one(fn):
        if isinstance(conn, PgPool):
            return fn(conn)
        c = connect(f"sqlite:{path}", readonly=True, synchronous="NORMAL")
        try:
            return fn(c)
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {k: pool.submit(one, fn) for k, fn in parts.items()}
        return {k: f.result() for k, f in futures.items()}
