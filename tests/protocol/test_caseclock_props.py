"""Property tests of the case clock: monotone lights, suspensions, promised days, determinism,
violations that later events never remove, next_change, and the fast working-day arithmetic."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.calendar import CST, WorkCalendar, YearTable, default_calendar
from protocol.caseclock import (
    CLOSED,
    EVENT_TYPES,
    SUSPEND_PROCEDURES,
    VIOLATIONS,
    Event,
    ItemRule,
    TransitionError,
    check_event,
    evaluate,
)
from protocol.caseclock_days import Days, days_of

CAL = default_calendar()
CAL_2027 = CAL.with_year(
    YearTable(2027, frozenset({date(2027, 1, 1), date(2027, 2, 8)}), frozenset({date(2027, 2, 6)}))
)
RANK = {"green": 0, "yellow": 1, "red": 2}
ITEMS = [
    ItemRule("P", "promised", legal_days=20, promised_days=5),
    ItemRule("J", "joint", legal_days=45, promised_days=30, yellow_days=3),
    ItemRule("I", "immediate", legal_days=20, promised_days=0),
    ItemRule("E", "escalated", legal_days=40, promised_days=25),
    ItemRule("E2", "escalated", legal_days=20, promised_days=20, yellow_days=0),
]
FULL = dict(reason="r", approver="a", days=5, procedure="鉴定", step="s", link="上级")

dates = st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 11, 30))
steps = st.lists(
    st.tuples(st.sampled_from(EVENT_TYPES), st.integers(0, 12), st.integers(8, 18), st.booleans(), st.integers(-1, 72)),
    max_size=9,
)


def _at(d: date, hour: int = 10) -> datetime:
    return datetime.combine(d, datetime.min.time(), CST).replace(hour=hour)


def build(rec_day: date, spec) -> tuple[datetime, list[Event]]:
    """Receipt at 09:00 and events at non-decreasing times; recorded_at hours after (or None)."""
    rec, events, d, last = _at(rec_day, 9), [], rec_day, None
    for kind, gap, hour, full, late_h in spec:
        d += timedelta(days=gap)
        t = _at(d, hour)
        if last is not None and t < last:
            t = last
        last = t
        kw = dict(FULL) if full else {}
        if late_h >= 0:
            kw["recorded_at"] = t + timedelta(hours=late_h)
        events.append(Event(kind, t, **kw))
    return rec, events


TOL = st.sampled_from([None, timedelta(0), timedelta(hours=24)])


# -- fast working-day arithmetic agrees with WorkCalendar ----------------------------------------
@settings(max_examples=400, deadline=None)
@given(
    st.dates(min_value=date(2022, 1, 1), max_value=date(2029, 12, 31)),
    st.integers(-420, 420),
    st.dates(min_value=date(2022, 1, 1), max_value=date(2029, 12, 31)),
    st.sampled_from([CAL, CAL_2027]),
)
def test_days_agree_with_work_calendar(start, n, other, cal):
    fast = Days(cal)  # fresh window each time, so window growth is exercised too
    assert fast.add_p(start, n) == cal.add_working_days(start, n)
    assert fast.between(start, other) == cal.working_days_between(start, other)
    assert fast.is_working(start) == cal.is_working_day(start)
    assert fast.provisional(start, other) == (not cal.all_loaded(start, other))


def test_days_memo_survives_many_calendars():
    cals = [CAL.with_year(YearTable(2027, frozenset({date(2027, 1, k)}), frozenset())) for k in range(1, 13)]
    for cal in cals:
        assert days_of(cal).cal is cal
        # each calendar has a different 2027 holiday; the memo must never mix them up
        assert days_of(cal).add(date(2026, 12, 31), 3) == cal.add_working_days(date(2026, 12, 31), 3)[0]


# -- lights are monotone in `now` for an open case --------------------------------------------
@settings(max_examples=200, deadline=None)
@given(dates, steps, st.sampled_from(ITEMS), st.lists(st.integers(0, 90), min_size=2, max_size=6), TOL)
def test_light_monotone_in_now_without_new_events(rec_day, spec, item, offsets, tol):
    rec, events = build(rec_day, spec)
    start = events[-1].at if events else rec
    views = [
        evaluate(item, rec, events, start + timedelta(days=o), CAL, backdate_tolerance=tol) for o in sorted(offsets)
    ]
    assume(views[0].status not in CLOSED)
    for a, b in zip(views, views[1:]):
        assert RANK[a.light] <= RANK[b.light], (a, b)
        assert set(a.violations) <= set(b.violations)
        assert b.status not in CLOSED


# -- suspension never shortens a due date -----------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    dates,
    st.sampled_from(ITEMS),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 60),
    st.booleans(),
    st.sampled_from(SUSPEND_PROCEDURES),
)
def test_suspension_never_shortens_any_due_date(acc, item, s_off, length, now_off, resumed, proc):
    accept = Event("accept", _at(acc))
    s, r = acc + timedelta(days=s_off), acc + timedelta(days=s_off + length)
    susp = [accept, Event("suspend", _at(s), procedure=proc)] + ([Event("resume", _at(r))] if resumed else [])
    now = _at(r + timedelta(days=now_off), 12)
    plain = evaluate(item, accept.at, [accept], now, CAL)
    with_s = evaluate(item, accept.at, susp, now, CAL)
    assert with_s.due_date >= plain.due_date and with_s.legal_due_date >= plain.legal_due_date
    if item.case_type == "escalated":
        assert with_s.review_due >= plain.review_due


# -- more promised days never give an earlier due date ------------------------------------------
@settings(max_examples=200, deadline=None)
@given(dates, steps, st.integers(0, 60), st.integers(1, 10), st.integers(0, 60))
def test_more_promised_days_never_earlier(rec_day, spec, promised, more, now_off):
    rec, events = build(rec_day, spec)
    now = _at(rec_day + timedelta(days=now_off), 12)
    if events and now < events[-1].at:
        now = events[-1].at
    a = evaluate(ItemRule("P", "promised", 30, promised), rec, events, now, CAL)
    b = evaluate(ItemRule("P", "promised", 30, promised + more), rec, events, now, CAL)
    if a.due_date is not None and a.accepted_on is not None:
        assert b.due_date >= a.due_date
        assert b.due_date > a.due_date or promised == 0


# -- determinism --------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(dates, steps, st.sampled_from(ITEMS), st.integers(0, 90), TOL)
def test_evaluate_is_deterministic(rec_day, spec, item, now_off, tol):
    rec, events = build(rec_day, spec)
    now = _at(rec_day + timedelta(days=now_off), 12)
    v = evaluate(item, rec, events, now, CAL, backdate_tolerance=tol)
    twin = WorkCalendar(CAL.tables())  # equal calendar, another object (and memo entry)
    assert v == evaluate(item, rec, tuple(events), now, twin, backdate_tolerance=tol)
    assert v == evaluate(item, rec, list(events), now, CAL, backdate_tolerance=tol)
    assert v.to_dict() == evaluate(item, rec, events, now, CAL, backdate_tolerance=tol).to_dict()
    assert set(v.violations) <= set(VIOLATIONS)
    assert (v.light == "red") == bool(v.violations or v.overdue or v.legal_overdue)


# -- a later event never removes an earlier violation -------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    dates,
    steps,
    st.sampled_from(ITEMS),
    st.sampled_from(EVENT_TYPES),
    st.integers(0, 30),
    st.integers(0, 14),
    st.booleans(),
    st.integers(0, 30),
    TOL,
)
def test_later_event_never_removes_a_violation(rec_day, spec, item, kind, gap, hour, full, now_off, tol):
    rec, events = build(rec_day, spec)
    last = events[-1].at if events else rec
    new = Event(kind, last + timedelta(days=gap, hours=hour), **(FULL if full else {}))
    before = evaluate(item, rec, events, new.at, CAL, backdate_tolerance=tol)  # as the event arrives
    for now in (new.at, new.at + timedelta(days=now_off)):
        after = evaluate(item, rec, events + [new], now, CAL, backdate_tolerance=tol)
        assert set(before.violations) <= set(after.violations), (before.violations, after.violations)
        if before.status in CLOSED or before.light == "red":
            assert after.light == "red" or after.light == before.light


# -- next_change is exact ---------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(dates, steps, st.sampled_from(ITEMS), st.integers(0, 60))
def test_next_change_is_exact(rec_day, spec, item, now_off):
    rec, events = build(rec_day, spec)
    now = _at(rec_day + timedelta(days=now_off), 12)
    if events and now < events[-1].at:
        now = events[-1].at
    v = evaluate(item, rec, events, now, CAL)
    key = lambda x: (x.status, x.light, x.overdue, x.legal_overdue, x.deemed_accepted, x.violations)
    if v.next_change is None:  # nothing changes any more (checked a year ahead)
        assert key(evaluate(item, rec, events, now + timedelta(days=365), CAL)) == key(v)
    else:
        before = evaluate(item, rec, events, v.next_change - timedelta(seconds=1), CAL)
        after = evaluate(item, rec, events, v.next_change, CAL)
        assert key(before) == key(v) and key(after) != key(v)


# -- records accepted by check_event carry only time-based violations -------------------------
TIME_BASED = {"acceptance_timeout", "late_supplement_notice", "late_review", "late_delivery"}


@settings(max_examples=200, deadline=None)
@given(dates, steps, st.sampled_from(ITEMS), st.integers(0, 60))
def test_checked_records_are_never_ignored(rec_day, spec, item, now_off):
    rec, candidates = build(rec_day, spec)
    accepted: list[Event] = []
    for e in candidates:
        try:
            check_event(item, rec, accepted, e, CAL)
        except TransitionError:
            continue
        accepted.append(e)
    now = (accepted[-1].at if accepted else rec) + timedelta(days=now_off)
    v = evaluate(item, rec, accepted, now, CAL)
    assert v.ignored == () and set(v.violations) <= TIME_BASED


# -- purity ----------------------------------------------------------------------------------------
def test_caseclock_modules_are_pure():
    import ast
    from pathlib import Path

    allowed = {
        "__future__",
        "bisect",
        "dataclasses",
        "datetime",
        "typing",
        "collections.abc",
        "protocol.calendar",
        "protocol.caseclock_days",
        "protocol.caseclock_types",
        "protocol.caseclock_replay",
    }
    root = Path(__file__).resolve().parents[2] / "protocol"
    for path in sorted(root.glob("caseclock*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= allowed, path
            elif isinstance(node, ast.ImportFrom):
                assert node.module in allowed, (path, node.module)
