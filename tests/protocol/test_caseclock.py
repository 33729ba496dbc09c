"""Case clock and light rule with real 2025–2026 dates (holidays and 调休 included)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.calendar import CST, YearTable, default_calendar
from protocol.caseclock import (
    SUSPEND_PROCEDURES,
    CaseView,
    Event,
    ItemRule,
    TransitionError,
    check_event,
    evaluate,
)
from protocol.models import CatalogItem
from tests import calendar_reference as ref

CAL = default_calendar()
D = date.fromisoformat
PROMISED = ItemRule("XK-001", "promised", legal_days=20, promised_days=5)
JOINT = ItemRule("LB-001", "joint", legal_days=45, promised_days=30)
IMMEDIATE = ItemRule("JB-001", "immediate", legal_days=20, promised_days=0)


def at(day: str, hour: int = 10) -> datetime:
    """An aware instant on a China-time date."""
    return datetime.combine(D(day), datetime.min.time(), CST).replace(hour=hour)


def ev(type_: str, day: str, hour: int = 10, **kw) -> Event:
    """Shorthand event."""
    return Event(type_, at(day, hour), **kw)


def view(events, now: str, item=PROMISED, received: str | None = None, hour: int = 12, cal=CAL) -> CaseView:
    """Evaluate with the receipt on the first event's day unless given."""
    rec = at(received or (events[0].at.astimezone(CST).date().isoformat() if events else now), 9)
    return evaluate(item, rec, events, at(now, hour), cal)


def replay_checked(item, received, events):
    """Feed events through check_event one by one, as the agent does."""
    accepted = []
    for e in events:
        check_event(item, received, accepted, e, CAL)
        accepted.append(e)
    return accepted


# -- due dates around holidays -------------------------------------------------------------
@pytest.mark.parametrize(
    "accepted,due,legal_due",
    [
        ("2025-01-24", "2025-02-07", "2025-02-27"),  # 春节 2025, work Sun 1/26 and Sat 2/8
        ("2025-09-26", "2025-10-10", "2025-10-30"),  # 国庆+中秋 2025, work Sun 9/28 and Sat 10/11
        ("2026-02-10", "2026-02-24", "2026-03-16"),  # 春节 2026, work Sat 2/14 and Sat 2/28
        ("2026-02-13", "2026-02-27", "2026-03-19"),
        ("2026-09-24", "2026-10-09", "2026-10-29"),  # 中秋 9/25–27 and 国庆 2026, work Sat 10/10
        ("2026-09-30", "2026-10-13", "2026-11-03"),
    ],
)
def test_due_dates_across_holidays(accepted, due, legal_due):
    v = view([ev("accept", accepted)], accepted)
    assert (v.status, v.accepted_on, v.due_date, v.legal_due_date) == ("accepted", D(accepted), D(due), D(legal_due))
    assert not v.due_provisional and not v.legal_provisional
    assert v.remaining_days == 5 and v.light == "green"


@pytest.mark.parametrize(
    "now,light,remaining",
    [
        ("2026-02-12", "green", 3),
        ("2026-02-13", "green", 2),
        ("2026-02-14", "yellow", 1),  # Saturday make-up day, the last working day before due
        ("2026-02-20", "yellow", 1),  # inside the holiday
        ("2026-02-23", "yellow", 1),  # the calendar day before due
        ("2026-02-24", "yellow", 0),  # due day itself
        ("2026-02-25", "red", -1),  # the day after due
        ("2026-03-02", "red", -5),  # 2/25–27, Sat 2/28 (make-up), 3/2
    ],
)
def test_light_timeline_spring_festival(now, light, remaining):
    v = view([ev("accept", "2026-02-10")], now)
    assert (v.light, v.remaining_days, v.overdue) == (light, remaining, light == "red")


@pytest.mark.parametrize(
    "now,light",
    [
        ("2026-10-07", "green"),
        ("2026-10-08", "yellow"),
        ("2026-10-09", "yellow"),
        ("2026-10-10", "red"),
    ],
)
def test_light_timeline_national_day(now, light):
    assert view([ev("accept", "2026-09-24")], now).light == light


def test_yellow_days_of_item_and_default():
    item = ItemRule("X", "promised", 20, 5, yellow_days=3)
    assert view([ev("accept", "2026-03-02")], "2026-03-04", item=item).light == "yellow"
    assert view([ev("accept", "2026-03-02")], "2026-03-04").light == "green"
    rec = at("2026-03-02", 9)
    assert evaluate(PROMISED, rec, [ev("accept", "2026-03-02")], at("2026-03-04"), CAL, 3).light == "yellow"


def test_next_change_indexes_transitions():
    events = [ev("accept", "2026-02-10")]
    assert view(events, "2026-02-10").next_change == datetime(2026, 2, 14, tzinfo=CST)
    assert view(events, "2026-02-14").next_change == datetime(2026, 2, 25, tzinfo=CST)
    red = view(events, "2026-02-25")
    assert red.next_change == datetime(2026, 3, 17, tzinfo=CST)  # legal limit still ahead
    assert view(events, "2026-03-17").next_change is None
    done = view(events + [ev("complete", "2026-02-24")], "2026-02-24")
    assert done.next_change is None and done.remaining_days is None


# -- 即办件 ----------------------------------------------------------------------------
def test_immediate_due_same_working_day():
    events = [ev("accept", "2026-02-13")]
    assert view(events, "2026-02-13", item=IMMEDIATE).due_date == D("2026-02-13")
    assert view(events, "2026-02-13", item=IMMEDIATE).light == "yellow"
    assert view(events, "2026-02-14", item=IMMEDIATE).light == "red"
    done = view(events + [ev("complete", "2026-02-13", 16)], "2026-02-14", item=IMMEDIATE)
    assert (done.status, done.light, done.overdue) == ("completed", "green", False)
    late = view(events + [ev("complete", "2026-02-14", 9)], "2026-02-14", item=IMMEDIATE)
    assert (late.light, late.overdue) == ("red", True)


def _catalog_item(case_type: str, promised_days: int) -> CatalogItem:
    return CatalogItem(
        code="JB-9",
        name="居民身份证明",
        department="公安局",
        item_type="public_service",
        case_type=case_type,
        legal_days=20,
        promised_days=promised_days,
    )


@pytest.mark.parametrize("accepted", ["2026-03-02", "2026-02-13", "2026-02-21", "2026-10-01"])
def test_immediate_item_from_the_catalog_is_due_the_day_it_is_accepted(accepted):
    """A 即办件 in the catalog must have promised_days 0 (case-rules.md): one with 5 is refused,
    else a case accepted Monday 2026-03-02 would fall due 2026-03-09. With 0 it is due on the
    acceptance day, or the next working day after a day off: the reference calendar's answer."""
    with pytest.raises(ValueError, match="即办件"):
        _catalog_item("immediate", 5)
    rule = _catalog_item("immediate", 0).rule()
    v = view([ev("accept", accepted)], accepted, item=rule)
    assert v.due_date == ref.add_working_days(D(accepted), 0)
    if ref.is_working_day(D(accepted)):
        assert v.due_date == D(accepted)
    assert _catalog_item("promised", 5).rule().promised_days == 5  # the check is on 即办件 only


def test_immediate_accepted_on_holiday_is_due_next_working_day():
    v = view([ev("accept", "2026-02-21")], "2026-02-21", item=IMMEDIATE)
    assert v.due_date == D("2026-02-24")


# -- acceptance clock (Art. 32) --------------------------------------------------------------
def test_acceptance_window_then_deemed_acceptance():
    v = view([], "2026-02-24", received="2026-02-10")
    assert (v.status, v.acceptance_due, v.due_date, v.light) == ("received", D("2026-02-24"), D("2026-02-24"), "yellow")
    assert v.next_change == datetime(2026, 2, 25, tzinfo=CST)
    v = view([], "2026-02-25", received="2026-02-10")
    assert (v.status, v.deemed_accepted, v.accepted_on) == ("accepted", True, D("2026-02-10"))
    assert v.violations == ("acceptance_timeout",) and v.light == "red"
    assert v.due_date == D("2026-02-24") and v.overdue


def test_late_accept_keeps_receipt_day_and_red():
    v = view([ev("accept", "2026-02-26")], "2026-02-26", received="2026-02-10")
    assert (v.accepted_on, v.deemed_accepted, v.violations) == (D("2026-02-10"), True, ("acceptance_timeout",))
    check_event(PROMISED, at("2026-02-10", 9), [], ev("accept", "2026-02-26"), CAL)  # allowed, but flagged


def test_timely_accept_on_last_day_is_fine():
    v = view([ev("accept", "2026-02-24", 17)], "2026-02-24", received="2026-02-10")
    assert (v.accepted_on, v.deemed_accepted, v.violations) == (D("2026-02-24"), False, ())


def test_supplement_stops_acceptance_clock_and_restarts_on_receipt():
    events = [ev("request_supplement", "2026-02-12", reason="缺营业执照复印件")]
    v = view(events, "2026-04-30", received="2026-02-10")
    assert (v.status, v.light, v.due_date, v.remaining_days, v.next_change) == (
        "supplement_requested",
        "green",
        None,
        None,
        None,
    )
    v = view(events + [ev("supplement_received", "2026-03-02")], "2026-03-02", received="2026-02-10")
    assert (v.status, v.accepted_on, v.due_date, v.deemed_accepted) == (
        "accepted",
        D("2026-03-02"),
        D("2026-03-09"),
        False,
    )


def test_late_supplement_notice_is_red_and_deemed():
    v = view([ev("request_supplement", "2026-02-25")], "2026-02-25", received="2026-02-10")
    # deemed accepted at 00:00 on 2/25 (acceptance_timeout); the late notice is its own red card
    assert v.violations == ("acceptance_timeout", "late_supplement_notice") and v.light == "red"
    assert v.deemed_accepted and v.accepted_on == D("2026-02-10")


def test_only_one_supplement_request():
    rec = at("2026-02-10", 9)
    first = [ev("request_supplement", "2026-02-11", reason="缺材料")]
    with pytest.raises(TransitionError, match="一次性"):
        check_event(PROMISED, rec, first, ev("request_supplement", "2026-02-12"), CAL)
    v = evaluate(PROMISED, rec, first + [ev("request_supplement", "2026-02-12")], at("2026-02-12"), CAL)
    assert "repeated_supplement_request" in v.violations and v.light == "red"


# -- suspension (Art. 45) -------------------------------------------------------------------
def test_suspension_adds_working_days_to_both_clocks():
    events = [ev("accept", "2026-03-02"), ev("suspend", "2026-03-04", procedure="鉴定"), ev("resume", "2026-03-11")]
    v = view(events, "2026-03-11")
    assert (v.due_date, v.legal_due_date) == (D("2026-03-16"), D("2026-04-07"))  # +5 each


def test_suspension_over_spring_festival_counts_working_days_only():
    events = [ev("accept", "2026-02-10"), ev("suspend", "2026-02-13", procedure="检测"), ev("resume", "2026-02-25")]
    v = view(events, "2026-02-25")
    # 2/14 (Sat, make-up), 2/24, 2/25 were suspended: due 2/24 + 3 working days
    assert v.due_date == D("2026-02-27") and v.light == "green"


def test_while_suspended_the_light_is_frozen():
    events = [ev("accept", "2026-03-02"), ev("suspend", "2026-03-05", procedure="专家评审")]
    for now in ("2026-03-05", "2026-03-20", "2026-06-30"):
        v = view(events, now)
        assert (v.status, v.light, v.remaining_days, v.next_change) == ("suspended", "green", 2, None)
        assert ref.working_days_between(D(now), v.due_date) == 2


def test_suspension_after_due_does_not_rescue():
    events = [
        ev("accept", "2026-03-02"),
        ev("suspend", "2026-03-10", procedure="听证"),
        ev("resume", "2026-03-20"),
        ev("complete", "2026-03-20"),
    ]
    v = view(events, "2026-03-20")
    assert v.due_date == D("2026-03-09") and v.overdue and v.light == "red"
    assert v.legal_due_date == D("2026-04-10")  # legal clock (3/30) had not run out: +8 working days


def test_several_suspensions_add_up():
    events = [
        ev("accept", "2026-03-02"),
        ev("suspend", "2026-03-03", procedure="检验"),
        ev("resume", "2026-03-05"),
        ev("suspend", "2026-03-06", procedure="检疫"),
        ev("resume", "2026-03-09"),
    ]
    assert view(events, "2026-03-09").due_date == D("2026-03-12")  # +2 +1


@pytest.mark.parametrize("procedure", [None, "调查", "补充材料"])
def test_suspend_needs_a_listed_procedure(procedure):
    with pytest.raises(TransitionError, match="procedure"):
        check_event(
            PROMISED,
            at("2026-03-02", 9),
            [ev("accept", "2026-03-02")],
            ev("suspend", "2026-03-03", procedure=procedure),
            CAL,
        )


def test_complete_while_suspended():
    rec, events = at("2026-03-02", 9), [ev("accept", "2026-03-02"), ev("suspend", "2026-03-03", procedure="拍卖")]
    for kind in ("complete", "approve", "deny"):
        with pytest.raises(TransitionError, match="suspended"):
            check_event(PROMISED, rec, events, ev(kind, "2026-03-04", reason="r"), CAL)
    v = evaluate(PROMISED, rec, events + [ev("complete", "2026-03-04")], at("2026-03-04"), CAL)
    assert v.status == "completed" and v.violations == ("complete_while_suspended",) and v.light == "red"


# -- extension (Art. 42) --------------------------------------------------------------------
def test_extension_adds_days():
    events = [ev("accept", "2026-03-02"), ev("extend", "2026-03-06", days=10, reason="需现场核查", approver="王主任")]
    v = view(replay_checked(PROMISED, at("2026-03-02", 9), events), "2026-03-06")
    assert (v.due_date, v.legal_due_date, v.light) == (D("2026-03-23"), D("2026-04-14"), "green")


@pytest.mark.parametrize(
    "item,days,ok", [(PROMISED, 10, True), (PROMISED, 11, False), (JOINT, 15, True), (JOINT, 16, False)]
)
def test_extension_limits(item, days, ok):
    rec, accepted = at("2026-03-02", 9), [ev("accept", "2026-03-02")]
    new = ev("extend", "2026-03-03", days=days, reason="复杂", approver="局长")
    if ok:
        check_event(item, rec, accepted, new, CAL)
    else:
        with pytest.raises(TransitionError, match="cannot exceed"):
            check_event(item, rec, accepted, new, CAL)


EXT = dict(days=5, reason="复杂", approver="局长")


@pytest.mark.parametrize(
    "events,new,match",
    [
        (
            [ev("accept", "2026-03-02"), ev("extend", "2026-03-03", **EXT)],
            ev("extend", "2026-03-04", **EXT),
            "only once",
        ),
        ([ev("accept", "2026-03-02")], ev("extend", "2026-03-03", days=5, reason="复杂"), "approver"),
        ([ev("accept", "2026-03-02")], ev("extend", "2026-03-03", days=5, approver="局长"), "reason"),
        ([ev("accept", "2026-03-02")], ev("extend", "2026-03-10", **EXT), "past due"),
        ([ev("accept", "2026-03-02")], ev("extend", "2026-03-03", days=0, reason="r", approver="a"), "positive"),
        ([], ev("extend", "2026-03-03", **EXT), "in progress"),
        ([ev("accept", "2026-03-02")], ev("accept", "2026-03-03"), "already accepted"),
        ([ev("accept", "2026-03-02")], ev("reject", "2026-03-03", reason="r"), "cannot reject"),
        ([], ev("reject", "2026-03-03"), "reason"),
        ([ev("accept", "2026-03-02")], ev("deny", "2026-03-03"), "reason"),
        ([], ev("complete", "2026-03-03"), "not accepted"),
        ([], ev("approve", "2026-03-03"), "not accepted"),
        ([ev("accept", "2026-03-02"), ev("complete", "2026-03-03")], ev("accept", "2026-03-04"), "closed"),
        ([ev("accept", "2026-03-02"), ev("complete", "2026-03-03")], ev("withdraw", "2026-03-04"), "closed"),
        ([ev("accept", "2026-03-02")], ev("resume", "2026-03-03"), "not suspended"),
        ([ev("accept", "2026-03-02")], ev("deliver", "2026-03-03"), "cannot deliver"),
        ([ev("accept", "2026-03-02")], ev("supplement_received", "2026-03-03"), "no supplement"),
        ([ev("accept", "2026-03-02")], ev("request_supplement", "2026-03-03"), "already accepted"),
        ([ev("accept", "2026-03-02")], ev("step", "2026-03-03"), "name"),
        ([], ev("step", "2026-03-03", step="审查"), "not in progress"),
        ([], ev("transfer", "2026-03-03"), "transferred"),
        ([ev("accept", "2026-03-02", 15)], ev("complete", "2026-03-02", 11), "previous event"),
        ([], ev("accept", "2026-03-02", 8), "receipt"),
    ],
)
def test_transition_errors(events, new, match):
    with pytest.raises(TransitionError, match=match) as exc:
        check_event(PROMISED, at("2026-03-02", 9), events, new, CAL)
    zh, _, en = str(exc.value).partition(" (")
    assert zh and not zh.isascii() and en.endswith(")")


def test_happy_paths_pass_check_event():
    rec = at("2026-03-02", 9)
    flows = [
        [
            ev("accept", "2026-03-02"),
            ev("step", "2026-03-03", step="审查"),
            ev("approve", "2026-03-04"),
            ev("complete", "2026-03-04", 15),
            ev("deliver", "2026-03-05"),
        ],
        [ev("accept", "2026-03-02"), ev("complete", "2026-03-03")],
        [ev("accept", "2026-03-02"), ev("deny", "2026-03-03", reason="不符合条件"), ev("complete", "2026-03-03", 11)],
        [ev("reject", "2026-03-03", reason="不属于本机关职权")],
        [ev("request_supplement", "2026-03-03"), ev("withdraw", "2026-03-20")],
        [ev("accept", "2026-03-02"), ev("transfer", "2026-03-04", link="省市场监管局")],
    ]
    closed = ["delivered", "completed", "completed", "rejected", "withdrawn", "transferred"]
    for flow, status in zip(flows, closed):
        v = evaluate(PROMISED, rec, replay_checked(PROMISED, rec, flow), at("2026-04-30"), CAL)
        assert (v.status, v.light, v.violations, v.ignored) == (status, "green", (), ())


# -- violations recorded by other systems ------------------------------------------------------
@pytest.mark.parametrize(
    "events,code",
    [
        ([ev("reject", "2026-03-03")], "reject_without_reason"),
        ([ev("accept", "2026-03-02"), ev("deny", "2026-03-03")], "deny_without_reason"),
        ([ev("complete", "2026-03-03")], "complete_without_acceptance"),
        (
            [ev("accept", "2026-03-02"), ev("extend", "2026-03-03", **EXT), ev("extend", "2026-03-04", **EXT)],
            "second_extension",
        ),
        ([ev("accept", "2026-03-02"), ev("extend", "2026-03-10", **EXT)], "extension_after_due"),
    ],
)
def test_violations_from_foreign_events_are_red(events, code):
    v = view(events, "2026-03-12", received="2026-03-02")
    assert code in v.violations and v.light == "red"
    if code == "extension_after_due":
        assert v.due_date == D("2026-03-09")  # the refused extension adds nothing


def test_impossible_foreign_events_are_skipped_and_reported():
    events = [ev("accept", "2026-03-02"), ev("resume", "2026-03-03"), ev("accept", "2026-03-04")]
    v = view(events, "2026-03-04")
    assert v.ignored == (1, 2) and v.light == "green" and v.violations == ()


def test_events_are_replayed_in_time_order_and_flagged_out_of_order():
    events = [ev("complete", "2026-03-04"), ev("accept", "2026-03-02")]
    v = view(events, "2026-03-05", received="2026-03-02")
    assert v.status == "completed" and v.violations == ("out_of_order",) and v.ignored == ()
    v = view(events[::-1], "2026-03-05", received="2026-03-02")
    assert v.status == "completed" and v.violations == ()


# -- 超期办结 -------------------------------------------------------------------------------
def test_overdue_completion_stays_red():
    events = [ev("accept", "2026-02-10"), ev("complete", "2026-02-26")]
    for now in ("2026-02-26", "2026-12-31"):
        v = view(events, now)
        assert (v.status, v.light, v.overdue, v.completed_on) == ("completed", "red", True, D("2026-02-26"))
        assert v.remaining_days is None and v.next_change is None


def test_on_time_completion_is_green_forever():
    events = [ev("accept", "2026-02-10"), ev("complete", "2026-02-24", 17)]
    assert view(events, "2026-12-31").light == "green"


def test_legal_overdue_is_red():
    item = ItemRule("X", "promised", legal_days=5, promised_days=10)
    v = view([ev("accept", "2026-03-02")], "2026-03-10", item=item)
    assert v.legal_overdue and not v.overdue and v.light == "red"


# -- provisional deadlines ---------------------------------------------------------------------
def test_deadline_in_unloaded_year_is_provisional_until_loaded():
    events = [ev("accept", "2026-12-28")]
    v = view(events, "2026-12-28")
    assert v.due_date == D("2027-01-04") and v.due_provisional and v.legal_provisional
    cal = CAL.with_year(YearTable(2027, frozenset({D("2027-01-01"), D("2027-01-04")}), frozenset()))
    v2 = view(events, "2026-12-28", cal=cal)
    assert v2.due_date == D("2027-01-06") and not v2.due_provisional and v2.calendar != v.calendar


def test_to_dict_is_json_ready():
    import json

    d = view([ev("accept", "2026-02-10")], "2026-02-10").to_dict()
    assert d["due_date"] == "2026-02-24" and d["next_change"] == "2026-02-14T00:00:00+08:00"
    json.dumps(d)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="at"):
        Event("accept", datetime(2026, 3, 2, 10))
    with pytest.raises(ValueError, match="type"):
        Event("approve_all", at("2026-03-02"))
    with pytest.raises(ValueError, match="case_type"):
        ItemRule("X", "urgent", 20, 5)


# -- properties --------------------------------------------------------------------------------
dates = st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 11, 30))


def _ev(kind: str, d: date, **kw) -> Event:
    return Event(kind, datetime.combine(d, datetime.min.time(), CST).replace(hour=10), **kw)


@settings(max_examples=150, deadline=None)
@given(dates, st.integers(0, 30), st.integers(0, 40), st.integers(0, 40), st.sampled_from(SUSPEND_PROCEDURES))
def test_suspension_never_shortens(acc, promised, s_off, length, proc):
    item = ItemRule("P", "promised", legal_days=promised + 10, promised_days=promised)
    rec = _ev("accept", acc)
    s, r = acc + timedelta(days=s_off), acc + timedelta(days=s_off + length)
    now = datetime.combine(r, datetime.min.time(), CST).replace(hour=12)
    plain = evaluate(item, rec.at, [rec], now, CAL)
    susp = evaluate(item, rec.at, [rec, _ev("suspend", s, procedure=proc), _ev("resume", r)], now, CAL)
    assert susp.due_date >= plain.due_date and susp.legal_due_date >= plain.legal_due_date
    if s <= plain.due_date:
        assert ref.working_days_between(plain.due_date, susp.due_date) == ref.working_days_between(s, r)


@settings(max_examples=150, deadline=None)
@given(dates, st.integers(0, 60))
def test_due_date_monotone_in_promised_days(acc, promised):
    rec = _ev("accept", acc)
    a = evaluate(ItemRule("P", "promised", 20, promised), rec.at, [rec], rec.at, CAL).due_date
    b = evaluate(ItemRule("P", "promised", 20, promised + 1), rec.at, [rec], rec.at, CAL).due_date
    assert a < b or (promised == 0 and a <= b)


KINDS = [
    "accept",
    "reject",
    "request_supplement",
    "supplement_received",
    "suspend",
    "resume",
    "extend",
    "step",
    "approve",
    "deny",
    "complete",
    "transfer",
    "withdraw",
    "deliver",
]


@settings(max_examples=150, deadline=None)
@given(
    dates,
    st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 20), st.booleans()), max_size=8),
    st.integers(0, 60),
)
def test_evaluate_is_deterministic_and_consistent(rec_day, steps, now_off):
    rec = datetime.combine(rec_day, datetime.min.time(), CST).replace(hour=9)
    events, d = [], rec_day
    for kind, gap, full in steps:
        d += timedelta(days=gap)
        kw = dict(reason="r", approver="a", days=5, procedure="鉴定", step="s") if full else {}
        events.append(_ev(kind, d, **kw))
    now = datetime.combine(rec_day + timedelta(days=now_off), datetime.min.time(), CST).replace(hour=12)
    v1 = evaluate(PROMISED, rec, events, now, CAL)
    assert v1 == evaluate(PROMISED, rec, list(events), now, CAL)
    assert v1.light == "red" or not (v1.violations or v1.overdue or v1.legal_overdue)
    if v1.next_change is not None:  # nothing changes before next_change, something changes at it
        before = evaluate(PROMISED, rec, events, v1.next_change - timedelta(seconds=1), CAL)
        after = evaluate(PROMISED, rec, events, v1.next_change, CAL)
        key = lambda v: (v.status, v.light, v.overdue, v.legal_overdue, v.deemed_accepted, v.violations)
        assert key(before) == key(v1) and key(after) != key(v1)
