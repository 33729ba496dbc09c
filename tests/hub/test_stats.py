"""Statistics (hub/stats.py) on both engines against figures computed here, in plain Python over
the generated rows (tests/hub/stats_data.py), with working days from the independent calendar
reference (tests/calendar_reference.py), and against direct SQL counts of the store."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime

import pytest

from hub.access import Actor
from hub.stats import Filter, StatsError, compute, month_period, parse_period, trend_label
from protocol.calendar import CST, default_calendar
from tests import calendar_reference as ref
from tests.hub.stats_data import generate, sites_of, write

FIRST, LAST = date(2026, 10, 1), date(2026, 10, 31)  # National Day holidays and a 调休 Saturday
NOW = datetime(2026, 11, 10, 10, 0, tzinfo=CST)
REPLY_DAYS = 5
ADMIN = Actor("admin1", "admin")


@pytest.fixture
def world(db):
    g = generate(FIRST, LAST, 1500, seed=13, sites=sites_of(6))
    write(db, g)
    return db, g


def _in(d) -> bool:
    return d is not None and FIRST <= d <= LAST


def expected_concluded(cases):
    """Concluded-in-period figures over `cases`, by hand: durations from the reference calendar."""
    done = [c for c in cases if _in(c["decided"])]
    durs = sorted(max(0, ref.working_days_between(c["received"], c["decided"])) for c in done)
    with_due = [c for c in done if c["due_date"]]
    on_time = sum(c["decided"] <= date.fromisoformat(c["due_date"]) for c in with_due)
    prom = [c for c in done if c["promised_days"]]
    dur = {c["case_no"]: max(0, ref.working_days_between(c["received"], c["decided"])) for c in done}
    n = len(durs)
    mid = (durs[(n - 1) // 2] + durs[n // 2]) / 2
    return {
        "concluded": len(done),
        "on_time": on_time,
        "late": len(with_due) - on_time,
        "on_time_rate": round(on_time / len(with_due), 4),
        "mean_days": round(sum(durs) / n, 2),
        "median_days": mid,
        "p90_days": durs[math.ceil(0.9 * n) - 1],
        "faster_rate": round(sum(dur[c["case_no"]] < c["promised_days"] for c in prom) / len(prom), 4)
        if prom
        else None,
        "ratio_promised": round(sum(dur[c["case_no"]] / c["promised_days"] for c in prom) / len(prom), 4)
        if prom
        else None,
    }


def test_all_statistics_against_hand_computed_figures(world):
    conn, g = world
    out = compute(conn, Filter(ADMIN), FIRST, LAST, default_calendar(), NOW, reply_days=REPLY_DAYS)
    rec = [c for c in g.cases if _in(c["received"])]
    s = out["summary"]
    assert s["received"] == len(rec) > 500
    assert out["received"]["status"] == dict(Counter(c["status"] for c in rec))
    assert out["received"]["light"] == dict(Counter(c["light"] for c in rec))
    assert out["received"]["sites"] == dict(Counter(c["site"] for c in rec))
    assert out["received"]["items"] == dict(Counter((c["item_code"], c["department"]) for c in rec))
    warned = sum(c["yellow_cards"] > 0 for c in rec)
    assert (s["warned"], s["warning_rate"]) == (warned, round(warned / len(rec), 4))

    want = expected_concluded(g.cases)
    for key, value in want.items():
        assert s[key] == value, key
    assert s["overdue_rate"] == round(want["late"] / (want["on_time"] + want["late"]), 4)
    for dept in {c["department"] for c in g.cases}:
        assert (
            out["concluded"]["department"][dept]["concluded"]
            == expected_concluded([c for c in g.cases if c["department"] == dept])["concluded"]
        )
    county = out["concluded"]["county"]["140702"]
    assert county == {**county, **expected_concluded([c for c in g.cases if c["site"].startswith("140702")])}
    today = NOW.date().isoformat()
    assert s["open_overdue"] == sum(1 for c in g.cases if not c["closed"] and c["due_date"] and c["due_date"] < today)


def test_ratings_exclude_misuse_and_marked_and_count_channels_apart(world):
    conn, g = world
    out = compute(conn, Filter(ADMIN), FIRST, LAST, default_calendar(), NOW)
    counted = [v for v in g.votes if _in(v["day"]) and v["misuse"] is None
               and (v["site"], v["seq"], v["channel"]) not in g.marks]  # fmt: skip
    for ch in ("keypad", "portal"):
        mine = [v for v in counted if v["channel"] == ch]
        got = out["ratings"]["channels"][ch]
        assert got["levels"] == [sum(v["level"] == lv for v in mine) for lv in range(1, 6)]
        assert got["satisfaction"] == round(sum(v["level"] <= 3 for v in mine) / len(mine), 4)
    assert out["summary"]["ratings"] == len(counted)
    assert out["summary"]["satisfaction"]["all"] == round(sum(v["level"] <= 3 for v in counted) / len(counted), 4)
    assert (
        out["ratings"]["marked"]
        == sum(
            1
            for v in g.votes
            if _in(v["day"]) and v["misuse"] is None and (v["site"], v["seq"], v["channel"]) in g.marks
        )
        > 0
    )
    # and a direct SQL count of the store
    lo = int(datetime(2026, 10, 1, tzinfo=CST).timestamp() * 1000)
    hi = int(datetime(2026, 11, 1, tzinfo=CST).timestamp() * 1000)
    (n,) = conn.execute(
        "SELECT count(*) FROM votes v WHERE pressed_ms >= ? AND pressed_ms < ? AND misuse IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM followups f WHERE f.site = v.site AND f.seq = v.seq AND f.channel = v.channel "
        "AND f.mark IS NOT NULL)",
        (lo, hi),
    ).fetchone()
    assert out["summary"]["ratings"] == n


def test_received_count_matches_direct_sql(world):
    conn, g = world
    out = compute(conn, Filter(ADMIN), FIRST, LAST, default_calendar(), NOW)
    (cst_rows,) = conn.execute(
        "SELECT count(*) FROM cases WHERE received_at >= '2026-10-01' AND received_at < '2026-11-01' "
        "AND received_at LIKE '%+08:00'"
    ).fetchone()
    utc_rows = sum(1 for c in g.cases if not c["received_at"].endswith("+08:00") and _in(c["received"]))
    assert out["summary"]["received"] == cst_rows + utc_rows
    assert utc_rows > 0  # the generator wrote some times in UTC: they count on their China date


def test_complaints_on_time_replies(world):
    conn, g = world
    out = compute(conn, Filter(ADMIN), FIRST, LAST, default_calendar(), NOW, reply_days=REPLY_DAYS)
    mine = [c for c in g.complaints if _in(c["filed"])]
    events = defaultdict(list)
    for e in g.complaint_events:
        events[e["complaint_id"]].append(e)
    replied = on_time = 0
    for c in mine:
        rounds, start = [], None
        for e in sorted(events[c["id"]], key=lambda e: e["at_ms"]):
            if e["action"] in ("assign", "reopen"):
                start = e["day"]
            elif e["action"] == "reply" and start is not None:
                rounds.append(e["day"] <= ref.add_working_days(start, REPLY_DAYS))
                start = None
        replied += bool(rounds)
        on_time += bool(rounds) and all(rounds)
    com = out["complaints"]
    assert com["filed"] == len(mine) > 10
    assert com["status"] == dict(Counter(c["status"] for c in mine))
    assert (com["replied"], com["replied_on_time"]) == (replied, on_time)
    assert 0 < on_time < replied


def test_scope_and_filters_narrow_every_figure(world):
    conn, g = world
    cal = default_calendar()
    county = compute(conn, Filter(Actor("sup-b", "supervisor", "140703")), FIRST, LAST, cal, NOW)
    mine = [c for c in g.cases if c["site"].startswith("140703")]
    assert county["summary"]["received"] == sum(_in(c["received"]) for c in mine)
    assert county["summary"]["concluded"] == expected_concluded(mine)["concluded"]
    assert set(county["received"]["sites"]) <= {s for s in sites_of(6) if s.startswith("140703")}
    dept = compute(conn, Filter(Actor("dept", "department", "民政局")), FIRST, LAST, cal, NOW)
    assert set(dept["concluded"]["department"]) == {"民政局"}
    assert dept["summary"]["received"] == sum(_in(c["received"]) and c["department"] == "民政局" for c in g.cases)
    # a department filter never widens a scope: another county's supervisor asking for all sites
    narrowed = compute(conn, Filter(Actor("sup-b", "supervisor", "140703"), region="140702"), FIRST, LAST, cal, NOW)
    assert narrowed["summary"]["received"] == 0


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-13-01", "2026-12-01", "YYYY-MM-DD"),
        ("2026-11-02", "2026-11-01", "不能晚于"),
        ("2025-01-01", "2026-01-02", "最长 366 天"),
        ("1999-12-31", "2000-01-01", "2000 至 2100"),
        ("2026-1-1", None, "YYYY-MM-DD"),
    ],
)
def test_bad_periods_are_refused_in_chinese_and_english(start, end, message):
    with pytest.raises(StatsError, match=message):
        parse_period(start, end, date(2026, 11, 10))


def test_period_defaults_and_month_and_trend_labels():
    assert parse_period(None, None, date(2026, 11, 10)) == (date(2026, 11, 1), date(2026, 11, 10))
    assert parse_period("2025-11-10", "2026-11-10", date(2026, 1, 1))[0] == date(2025, 11, 10)  # 366 days
    assert month_period("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    assert month_period("2028-02") == (date(2028, 2, 1), date(2028, 2, 29))
    with pytest.raises(StatsError):
        month_period("2026-13")
    assert trend_label(date(2026, 11, 5), "week") == "2026-11-02"  # its Monday
    assert trend_label(date(2026, 11, 5), "month") == "2026-11"
