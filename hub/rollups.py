"""Hourly roll-ups (小时汇总) a child hub sends its parent, and the parent's store of them
(issue 14, DESIGN §7, docs/rollup.md).

On the child: every store change that can move an hour's figures bumps that China hour in
`rollup_dirty`, in the change's own transaction (the ingest's projection: a case's receipt
hour and the hours of its decisions; a vote's hour; a complaint's filing hour). The hub's
leader runs `RollupProducer.tick` (each minute): for every dirty hour that has ended it
recounts the hour from the store, per region (county: the site code's region part) and
department, with the definitions of hub/stats.py (docs/stats.md), and appends a `rollup`
record to the uplink outbox for each group whose figures differ from what was last sent --
revision + 1 (a group that vanished is sent as zeros). The dirty mark is deleted only if no
one bumped it meanwhile (`bumps` compared), so a concurrent ingest worker's mark is never lost.

On the parent: `store(conn, child, body)` keeps the highest revision per (region, department,
hour) in `child_rollups`; `totals` adds them up (every figure is a sum, the durations a
histogram, so the parent's figures are exact); relaying upward is hub/children.py's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from datetime import date, datetime, timedelta

from pydantic import ValidationError

from hub import store as db
from hub import uplink
from hub.followups import VOTE_MARKED
from hub.stats import DECISIONS, SATISFIED_LEVELS, Durations, county_of, key_date
from iobase.sqlite import transaction
from protocol.calendar import CST, WorkCalendar
from protocol.uplink import KIND_ROLLUP, RollupBody

log = logging.getLogger("jiancha.hub.rollups")

HOUR_MS = 3_600_000
HOURS_PER_TICK = 72  # hours recounted in one transaction (a week of backlog takes a few ticks)
TICK_S = 60.0

_SQL = """
    CREATE TABLE rollup_dirty (hour TEXT PRIMARY KEY, bumps {int} NOT NULL DEFAULT 1);
    CREATE TABLE rollup_sent (region TEXT NOT NULL, department TEXT NOT NULL, hour TEXT NOT NULL,
        revision {int} NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (hour, region, department));
    CREATE TABLE child_rollups (region TEXT NOT NULL, department TEXT NOT NULL, hour TEXT NOT NULL,
        revision {int} NOT NULL, child TEXT NOT NULL, origin TEXT, received_ms {int} NOT NULL,
        body_json TEXT NOT NULL, PRIMARY KEY (region, department, hour));
    CREATE INDEX child_rollups_hour ON child_rollups(hour, child);
"""
MIGRATIONS = [("0202_rollups", _SQL.format(int="INTEGER"))]
PG_MIGRATIONS = [("pg_0202_rollups", _SQL.format(int="BIGINT"))]


# -- hours ---------------------------------------------------------------------------------------
def hour_of_ms(ms: int) -> str:
    """The China hour 'YYYY-MM-DDTHH' of a time in ms since the epoch."""
    return datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%dT%H")


def hour_of_iso(text: str) -> str:
    """The China hour of an ISO time as stored (+08:00 text is read as is)."""
    if text.endswith("+08:00") and len(text) >= 13:
        return text[:13]
    t = datetime.fromisoformat(text)
    return (t.astimezone(CST) if t.tzinfo else t).strftime("%Y-%m-%dT%H")


def hour_start_ms(hour: str) -> int:
    return int(datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=CST).timestamp() * 1000)


def mark(conn, hours) -> None:
    """Bump these hours dirty (inside the caller's transaction)."""
    for h in sorted(set(hours)):
        conn.execute(
            "INSERT INTO rollup_dirty (hour, bumps) VALUES (?, 1) "
            "ON CONFLICT (hour) DO UPDATE SET bumps = rollup_dirty.bumps + 1",
            (h,),
        )


def mark_cases(conn, case_nos) -> None:
    """Bump the receipt hour of each case (its status and light count there) and the hours of
    its decision events (its conclusion counts at the first)."""
    ids = sorted(set(case_nos))
    types = ", ".join(f"'{t}'" for t in DECISIONS)
    hours = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        qs = ",".join("?" * len(chunk))
        for (at,) in conn.execute(f"SELECT received_at FROM cases WHERE case_no IN ({qs})", chunk).fetchall():
            hours.add(_safe_hour(at))
        sql = f"SELECT at FROM case_events WHERE case_no IN ({qs}) AND type IN ({types})"
        for (at,) in conn.execute(sql, chunk).fetchall():
            hours.add(_safe_hour(at))
    mark(conn, hours - {None})


def mark_complaint(conn, complaint_id: int) -> None:
    row = conn.execute("SELECT filed_ms FROM complaints WHERE id=?", (complaint_id,)).fetchone()
    if row is not None:
        mark(conn, [hour_of_ms(int(row[0]))])


def _safe_hour(text) -> str | None:
    try:
        return hour_of_iso(str(text))
    except ValueError:
        return None


# -- counting one day's dirty hours ---------------------------------------------------------------
def _empty() -> dict:
    return {
        "received": 0, "status": defaultdict(int), "light": defaultdict(int), "warned": 0,
        "durations": Durations(), "keypad": [0] * 5, "portal": [0] * 5, "misuse": 0, "marked": 0,
        "complaints": 0, "complaint_status": defaultdict(int),
    }  # fmt: skip


def count_day(conn, day: date, hours: set[str], cal: WorkCalendar, home: str) -> dict[tuple, dict]:
    """(region, department, hour) → figures for the given hours of one China day. The same
    cases as hub/stats.py counts (docs/stats.md), by hour instead of by day."""
    groups: dict[tuple, dict] = defaultdict(_empty)
    lo, hi = (day - timedelta(days=1)).isoformat(), (day + timedelta(days=2)).isoformat()

    def g(site, dept, hour) -> dict:
        return groups[(county_of(site) or home, dept or "", hour)]

    sql = ("SELECT received_at, site, department, status, light, yellow_cards FROM cases "
           "WHERE received_at >= ? AND received_at < ?")  # fmt: skip
    for at, site, dept, status, light, yellow in conn.execute(sql, (lo, hi)).fetchall():
        h = _safe_hour(at)
        if h in hours:
            x = g(site, dept, h)
            x["received"] += 1
            x["status"][status] += 1
            x["light"][light] += 1
            x["warned"] += int((yellow or 0) > 0)
    types = ", ".join(f"'{t}'" for t in DECISIONS)
    sql = (
        f"SELECT c.site, c.department, c.received_at, e.at, c.due_date, c.promised_days, c.legal_days "
        f"FROM case_events e JOIN cases c ON c.case_no = e.case_no "
        f"WHERE e.type IN ({types}) AND e.at >= ? AND e.at < ? "
        f"AND NOT EXISTS (SELECT 1 FROM case_events p WHERE p.case_no = e.case_no AND p.type IN ({types}) "
        f"AND (p.at < e.at OR (p.at = e.at AND (p.site < e.site OR (p.site = e.site AND p.seq < e.seq)))))"
    )  # the first decision of each case, as hub/stats.py concluded()
    for site, dept, rat, eat, due, promised, legal in conn.execute(sql, (lo, hi)).fetchall():
        h = _safe_hour(eat)
        if h not in hours:
            continue
        done = key_date(eat if not eat.endswith("+08:00") else eat[:10])
        recv = key_date(rat if not rat.endswith("+08:00") else rat[:10])
        dur = max(0, cal.working_days_between(recv, done))
        on_time = None if not due else done.isoformat() <= due[:10]
        g(site, dept, h)["durations"].hist[(dur, on_time, promised, legal)] += 1
    t0 = int(datetime(day.year, day.month, day.day, tzinfo=CST).timestamp() * 1000)
    sql = (f"SELECT pressed_ms, site, department, channel, level, misuse IS NULL, "
           f"CASE WHEN misuse IS NULL AND {VOTE_MARKED} THEN 1 ELSE 0 END "
           f"FROM votes WHERE pressed_ms >= ? AND pressed_ms < ?")  # fmt: skip
    for ms, site, dept, channel, level, unflagged, is_marked in conn.execute(sql, (t0, t0 + 24 * HOUR_MS)):
        h = hour_of_ms(int(ms))
        if h not in hours:
            continue
        x = g(site, dept, h)
        if not unflagged:
            x["misuse"] += 1
        elif is_marked:
            x["marked"] += 1
        elif channel in ("keypad", "portal") and 1 <= (level or 0) <= 5:
            x[channel][level - 1] += 1
    sql = "SELECT filed_ms, site, department, status FROM complaints WHERE filed_ms >= ? AND filed_ms < ?"
    for ms, site, dept, status in conn.execute(sql, (t0, t0 + 24 * HOUR_MS)).fetchall():
        h = hour_of_ms(int(ms))
        if h in hours:
            x = g(site, dept, h)
            x["complaints"] += 1
            x["complaint_status"][status] += 1
    return {k: figures(v) for k, v in groups.items()}


def figures(x: dict) -> dict:
    """The body's figures (without key and revision) of one counted group."""
    bins = sorted(x["durations"].hist.items(), key=lambda kv: json.dumps(kv[0]))
    on_time = sum(n for (_, ok, _, _), n in bins if ok is True)
    late = sum(n for (_, ok, _, _), n in bins if ok is False)
    return {
        "received": x["received"],
        "status": dict(sorted(x["status"].items())),
        "light": dict(sorted(x["light"].items())),
        "warned": x["warned"],
        "concluded": sum(n for _, n in bins),
        "on_time": on_time,
        "late": late,
        "days_sum": sum(d * n for (d, _, _, _), n in bins),
        "durations": [
            {"days": d, "on_time": ok, "promised": p, "legal": lg, "n": n} for (d, ok, p, lg), n in bins if n
        ],
        "keypad": list(x["keypad"]),
        "portal": list(x["portal"]),
        "misuse": x["misuse"],
        "marked": x["marked"],
        "complaints": x["complaints"],
        "complaint_status": dict(sorted(x["complaint_status"].items())),
    }


ZERO = figures(_empty())


def digest(fig: dict) -> str:
    return hashlib.sha256(json.dumps(fig, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


# -- the producer (child) ---------------------------------------------------------------------------
class RollupProducer:
    """Recounts dirty hours that have ended and appends changed groups to the outbox. Run by the
    hub's leader (the ingest thread's idle loop, like the sweep); `tick(now)` is callable alone."""

    def __init__(self, conn, calendar, home_region: str, now=None, every_s: float = TICK_S):
        self.conn = conn
        self.calendar = calendar  # () -> WorkCalendar
        self.home = home_region
        self.now = now or (lambda: datetime.now(CST))
        self.every_s = every_s
        self._next = 0.0
        self.emitted = 0

    def maybe_tick(self) -> None:
        import time

        if time.monotonic() >= self._next:
            full = self.tick() == HOURS_PER_TICK
            # a backlog: the next chunk at the next idle round (ingest runs in between), else wait
            self._next = time.monotonic() + (0 if full else self.every_s)

    def tick(self, now: datetime | None = None) -> int:
        """Recount up to HOURS_PER_TICK dirty hours that ended before `now`; returns how many."""
        now = now or self.now()
        current = now.astimezone(CST).strftime("%Y-%m-%dT%H")
        with transaction(self.conn):
            rows = self.conn.execute(
                "SELECT hour, bumps FROM rollup_dirty WHERE hour < ? ORDER BY hour LIMIT ?", (current, HOURS_PER_TICK)
            ).fetchall()
            if not rows:
                return 0
            by_day: dict[str, set[str]] = defaultdict(set)
            for hour, _ in rows:
                by_day[hour[:10]].add(hour)
            at_ms = int(now.timestamp() * 1000)
            cal = self.calendar()
            for day, hours in sorted(by_day.items()):
                counted = count_day(self.conn, date.fromisoformat(day), hours, cal, self.home)
                self._emit(hours, counted, at_ms)
            for hour, bumps in rows:
                self.conn.execute("DELETE FROM rollup_dirty WHERE hour=? AND bumps=?", (hour, bumps))
        return len(rows)

    def _emit(self, hours: set[str], counted: dict[tuple, dict], at_ms: int) -> None:
        qs = ",".join("?" * len(hours))
        sent = {
            (r[0], r[1], r[2]): (r[3], r[4])
            for r in self.conn.execute(
                f"SELECT region, department, hour, revision, digest FROM rollup_sent WHERE hour IN ({qs})",
                sorted(hours),
            ).fetchall()
        }
        for key in sorted(set(counted) | set(sent)):
            fig = counted.get(key, ZERO)
            d = digest(fig)
            rev, old = sent.get(key, (0, None))
            if old == d or (old is None and fig == ZERO):
                continue
            region, dept, hour = key
            try:  # one group the body cannot hold (a record is at most 64 KiB) never stops the others
                body = RollupBody(region=region, department=dept, hour=hour, revision=rev + 1, **fig).model_dump()
                uplink.append(self.conn, KIND_ROLLUP, body, at_ms)
            except (ValidationError, ValueError) as exc:
                log.error("roll-up %s/%s/%s not sent: %s", region, dept, hour, str(exc)[:300])
                db.bump(self.conn, "rollups_refused")
                continue
            self.conn.execute(
                "INSERT INTO rollup_sent (region, department, hour, revision, digest) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (hour, region, department) DO UPDATE SET revision = excluded.revision, "
                "digest = excluded.digest",
                (region, dept, hour, rev + 1, d),
            )
            self.emitted += 1


# -- the parent's store ------------------------------------------------------------------------------
def store(conn, child: str, body: RollupBody, now_ms: int) -> None:
    """Keep the highest revision per (region, department, hour) (inside the ingest's transaction)."""
    conn.execute(
        "INSERT INTO child_rollups (region, department, hour, revision, child, origin, received_ms, body_json) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (region, department, hour) DO UPDATE SET "
        "revision = excluded.revision, child = excluded.child, origin = excluded.origin, "
        "received_ms = excluded.received_ms, body_json = excluded.body_json "
        "WHERE child_rollups.revision < excluded.revision",
        (body.region, body.department, body.hour, body.revision, child, body.origin, now_ms,
         json.dumps(body.model_dump(), ensure_ascii=False, separators=(",", ":"))),
    )  # fmt: skip


def add(acc: dict | None, body: dict) -> dict:
    """Add one roll-up's figures into an accumulator (sums; bins merged)."""
    acc = acc or {"received": 0, "status": defaultdict(int), "light": defaultdict(int), "warned": 0,
                  "hist": defaultdict(int), "keypad": [0] * 5, "portal": [0] * 5, "misuse": 0, "marked": 0,
                  "complaints": 0, "complaint_status": defaultdict(int), "rollups": 0}  # fmt: skip
    acc["rollups"] += 1
    for k in ("received", "warned", "misuse", "marked", "complaints"):
        acc[k] += int(body.get(k, 0))
    for k in ("status", "light", "complaint_status"):
        for s, n in (body.get(k) or {}).items():
            acc[k][s] += int(n)
    for k in ("keypad", "portal"):
        acc[k] = [a + int(b) for a, b in zip(acc[k], body.get(k) or [0] * 5)]
    for b in body.get("durations") or []:
        acc["hist"][(b["days"], b["on_time"], b.get("promised"), b.get("legal"))] += int(b["n"])
    return acc


def finish(acc: dict | None) -> dict:
    """An accumulator's figures, with the duration figures of hub/stats.py Durations."""
    if acc is None:
        acc = add(None, ZERO)
        acc["rollups"] = 0
    d = Durations()
    d.hist.update(acc["hist"])
    ratings = [a + b for a, b in zip(acc["keypad"], acc["portal"])]
    total = sum(ratings)
    satisfied = sum(ratings[lv - 1] for lv in SATISFIED_LEVELS)
    return {
        "received": acc["received"], "status": dict(acc["status"]), "light": dict(acc["light"]),
        "warned": acc["warned"], **d.figures(), "ratings": total, "satisfied": satisfied,
        "satisfaction": round(satisfied / total, 4) if total else None, "keypad": acc["keypad"],
        "portal": acc["portal"], "misuse": acc["misuse"], "marked": acc["marked"],
        "complaints": acc["complaints"], "complaint_status": dict(acc["complaint_status"]),
        "rollups": acc["rollups"],
    }  # fmt: skip


def totals(conn, first: date, last: date, *, region: str | None = None, department: str | None = None,
           key=None) -> dict:  # fmt: skip
    """key(child, origin, region) → finished figures of the roll-ups of China days first..last
    (inclusive), optionally only regions under a prefix; each (region, department, hour) counted
    once, at its highest revision. Default key: (child, origin)."""
    key = key or (lambda child, origin, region: (child, origin))
    lo, hi = first.isoformat() + "T00", last.isoformat() + "T99"
    sql = "SELECT child, origin, region, body_json FROM child_rollups WHERE hour >= ? AND hour <= ?"
    args: list = [lo, hi]
    if region:
        sql += " AND substr(region, 1, ?) = ?"
        args += [len(region), region]
    if department is not None:
        sql += " AND department = ?"
        args.append(department)
    accs: dict = {}
    for child, origin, reg, body_json in conn.execute(sql, args).fetchall():
        k = key(child, origin, reg)
        accs[k] = add(accs.get(k), json.loads(body_json))
    return {k: finish(v) for k, v in accs.items()}
