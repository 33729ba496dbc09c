"""Delivery (Art. 44) and review (Art. 43) clocks and the record-keeping violations, with real
2025–2026 dates: 春节 2026 2/15–23 (work Sat 2/14, Sat 2/28), 中秋 9/25–27 and 国庆 2026
10/1–7 (work Sun 9/20, Sat 10/10), 春节 2025 1/28–2/4 (work Sun 1/26, Sat 2/8)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from protocol.calendar import CST, default_calendar
from protocol.caseclock import (
    CLOSED,
    DELIVERY_DAYS,
    REVIEW_DAYS,
    VIOLATIONS,
    CaseView,
    Event,
    ItemRule,
    TransitionError,
    check_event,
    evaluate,
)
from tests import calendar_reference as ref

CAL = default_calendar()
D = date.fromisoformat
PROMISED = ItemRule("XK-001", "promised", legal_days=20, promised_days=5)
ESCALATED = ItemRule("SB-001", "escalated", legal_days=20, promised_days=15)
ESCALATED_LONG = ItemRule("SB-002", "escalated", legal_days=40, promised_days=30)  # whole-process limits


def at(day: str, hour: int = 10, minute: int = 0) -> datetime:
    """An aware instant on a China-time date."""
    return datetime.combine(D(day), datetime.min.time(), CST).replace(hour=hour, minute=minute)


def ev(type_: str, day: str, hour: int = 10, **kw) -> Event:
    """Shorthand event."""
    return Event(type_, at(day, hour), **kw)


def view(events, now: str, item=PROMISED, received: str | None = None, hour: int = 12, **kw) -> CaseView:
    """Evaluate with the receipt at 09:00 on the first event's day unless given."""
    rec = at(received or events[0].at.astimezone(CST).date().isoformat(), 9)
    return evaluate(item, rec, events, at(now, hour), CAL, **kw)


def checked(item, received: datetime, events):
    """Feed events through check_event one by one, as the agent does."""
    done = []
    for e in events:
        check_event(item, received, done, e, CAL)
        done.append(e)
    return done


def test_constants():
    assert (DELIVERY_DAYS, REVIEW_DAYS) == (10, 20)
    assert len(set(VIOLATIONS)) == len(VIOLATIONS)
    for code in ("late_delivery", "late_review", "out_of_order", "backdated", "transfer_without_link"):
        assert code in VIOLATIONS


# -- delivery clock (Art. 44) ---------------------------------------------------------------
@pytest.mark.parametrize(
    "approved,delivery_due",
    [
        ("2026-02-10", "2026-03-02"),  # 2/11–13, Sat 2/14 (make-up), 春节 2/15–23, 2/24–27, Sat 2/28, 3/2
        ("2026-09-18", "2026-10-09"),  # Sun 9/20 (make-up), 9/21–24, 中秋 9/25, 9/28–30, 国庆, 10/8, 10/9
        ("2026-09-28", "2026-10-16"),  # 9/29, 9/30, 国庆 10/1–7, 10/8, 10/9, Sat 10/10 (make-up), 10/12–16
        ("2025-01-24", "2025-02-13"),  # Sun 1/26 (make-up), 1/27, 春节 1/28–2/4, 2/5–7, Sat 2/8, 2/10–13
    ],
)
def test_delivery_due_across_holidays(approved, delivery_due):
    events = [ev("accept", approved, 9), ev("approve", approved, 15)]
    v = view(events, approved)
    assert (v.status, v.delivery_due, v.delivery_provisional) == ("approved", D(delivery_due), False)
    assert v.status not in CLOSED and v.light == "green" and v.remaining_days == DELIVERY_DAYS
    assert v.due_date == ref.add_working_days(D(approved), 5)  # the decision due date stays shown
    assert v.next_change is not None


@pytest.mark.parametrize(
    "now,light,remaining,violations",
    [
        ("2026-02-13", "green", 7, ()),
        ("2026-02-27", "green", 2, ()),
        ("2026-02-28", "yellow", 1, ()),  # Saturday make-up day: one working day (3/2) left
        ("2026-03-01", "yellow", 1, ()),  # Sunday
        ("2026-03-02", "yellow", 0, ()),  # delivery due day
        ("2026-03-03", "red", -1, ("late_delivery",)),
        ("2026-06-30", "red", -ref.working_days_between(D("2026-03-02"), D("2026-06-30")), ("late_delivery",)),
    ],
)
def test_light_waiting_for_delivery_follows_the_delivery_clock(now, light, remaining, violations):
    # decision due 2/24 passes while waiting for delivery: the decision was on time, so no red
    v = view([ev("accept", "2026-02-10", 9), ev("approve", "2026-02-10", 15)], now)
    assert (v.status, v.light, v.remaining_days, v.violations, v.overdue) == (
        "approved",
        light,
        remaining,
        violations,
        False,
    )


def test_delivery_next_change_marks_yellow_then_red():
    events = [ev("accept", "2026-02-10", 9), ev("approve", "2026-02-10", 15)]
    assert view(events, "2026-02-11").next_change == datetime(2026, 2, 28, tzinfo=CST)
    assert view(events, "2026-02-28").next_change == datetime(2026, 3, 3, tzinfo=CST)
    assert view(events, "2026-03-03").next_change is None
    assert view(events, "2026-03-03").light == "red"


@pytest.mark.parametrize(
    "end,day,status,light,violations",
    [
        ("deliver", "2026-03-02", "delivered", "green", ()),
        ("deliver", "2026-03-03", "delivered", "red", ("late_delivery",)),
        ("complete", "2026-02-27", "completed", "green", ()),  # 办结 ends the delivery clock
        ("complete", "2026-03-04", "completed", "red", ("late_delivery",)),
        ("withdraw", "2026-03-05", "withdrawn", "red", ("late_delivery",)),  # already late before
    ],
)
def test_delivery_clock_ends(end, day, status, light, violations):
    rec = at("2026-02-10", 9)
    events = checked(PROMISED, rec, [ev("accept", "2026-02-10", 9), ev("approve", "2026-02-10", 15), ev(end, day)])
    for now in (day, "2026-12-31"):
        v = evaluate(PROMISED, rec, events, at(now), CAL)
        assert (v.status, v.light, v.violations, v.remaining_days, v.next_change) == (
            status,
            light,
            violations,
            None,
            None,
        )
        assert v.delivery_due == D("2026-03-02") and v.completed_on == D(day)


def test_deliver_after_timely_completion_is_not_late():
    events = [
        ev("accept", "2026-02-10", 9),
        ev("approve", "2026-02-10", 15),
        ev("complete", "2026-02-12"),
        ev("deliver", "2026-03-20"),
    ]
    v = view(events, "2026-03-20")
    assert (v.status, v.light, v.violations, v.completed_on) == ("delivered", "green", (), D("2026-02-12"))


def test_late_approval_is_overdue_on_the_decision_day_only():
    # decided 2/25 (due 2/24): 超期 on the record; delivery has its own clock (2/26 … 3/10)
    events = [ev("accept", "2026-02-10"), ev("approve", "2026-02-25")]
    v = view(events, "2026-02-26")
    assert (v.status, v.overdue, v.light, v.violations) == ("approved", True, "red", ())
    assert v.delivery_due == D("2026-03-10") and v.remaining_days == 9


def test_no_delivery_clock_without_approval():
    v = view([ev("accept", "2026-02-10"), ev("deny", "2026-02-12", reason="不符合条件")], "2026-06-01")
    assert (v.status, v.delivery_due, v.light) == ("denied", None, "green")
    v = view([ev("accept", "2026-02-10"), ev("complete", "2026-02-12")], "2026-06-01")
    assert (v.status, v.delivery_due, v.light) == ("completed", None, "green")


def test_step_allowed_while_waiting_for_delivery():
    rec = at("2026-02-10", 9)
    events = checked(
        PROMISED, rec, [ev("accept", "2026-02-10"), ev("approve", "2026-02-11"), ev("step", "2026-02-12", step="制证")]
    )
    assert evaluate(PROMISED, rec, events, at("2026-02-12"), CAL).status == "approved"
    for bad in (
        ev("approve", "2026-02-13"),
        ev("deny", "2026-02-13", reason="r"),
        ev("extend", "2026-02-13", days=5, reason="r", approver="a"),
        ev("transfer", "2026-02-13", link="省厅"),
    ):
        with pytest.raises(TransitionError):
            check_event(PROMISED, rec, events, bad, CAL)


# -- review clock of escalated cases (Art. 43) -----------------------------------------------
@pytest.mark.parametrize(
    "accepted,review_due",
    [
        ("2026-02-10", "2026-03-16"),  # over 春节 2026 with both make-up Saturdays
        ("2026-09-18", "2026-10-22"),  # over 中秋/国庆 2026 with Sun 9/20 and Sat 10/10
        ("2025-01-20", "2025-02-21"),  # over 春节 2025 with Sun 1/26 and Sat 2/8
    ],
)
def test_review_due_across_holidays(accepted, review_due):
    v = view([ev("accept", accepted)], accepted, item=ESCALATED_LONG)
    assert (v.review_due, v.review_provisional, v.status, v.light) == (D(review_due), False, "accepted", "green")
    assert view([ev("accept", accepted)], accepted, item=PROMISED).review_due is None


@pytest.mark.parametrize(
    "day,light,violations",
    [
        ("2026-03-16", "green", ()),
        ("2026-03-17", "red", ("late_review",)),
    ],
)
def test_transfer_ends_the_lower_level_part(day, light, violations):
    rec = at("2026-02-10", 9)
    events = checked(
        ESCALATED_LONG,
        rec,
        [
            ev("accept", "2026-02-10"),
            ev("step", "2026-02-12", step="初审"),
            ev("transfer", day, link="省市场监管局/SB2026-000123"),
        ],
    )
    for now in (day, "2026-12-31"):
        v = evaluate(ESCALATED_LONG, rec, events, at(now), CAL)
        assert (v.status, v.light, v.violations, v.linked_to) == (
            "transferred",
            light,
            violations,
            "省市场监管局/SB2026-000123",
        )
        assert v.status in CLOSED and v.completed_on == D(day) and v.next_change is None
        assert v.review_due == D("2026-03-16") and not v.overdue  # promised (30 days) not run out


def test_open_escalated_case_past_review_due_is_red():
    events = [ev("accept", "2026-02-10")]
    v = view(events, "2026-03-16", item=ESCALATED_LONG)
    assert (v.light, v.violations) == ("green", ())
    assert v.next_change == datetime(2026, 3, 17, tzinfo=CST)
    v = view(events, "2026-03-17", item=ESCALATED_LONG)
    assert (v.light, v.violations, v.overdue, v.legal_overdue) == ("red", ("late_review",), False, False)
    assert v.next_change == datetime(2026, 3, 31, tzinfo=CST)  # promised due 3/30 still ahead


def test_suspension_extends_review_but_extension_does_not():
    events = [
        ev("accept", "2026-03-02"),
        ev("suspend", "2026-03-04", procedure="专家评审"),
        ev("resume", "2026-03-11"),
        ev("extend", "2026-03-12", days=10, reason="复杂", approver="局长"),
    ]
    v = view(events, "2026-03-12", item=ESCALATED_LONG)
    assert v.review_due == D("2026-04-07")  # 3/30 + 5 suspended working days; the extension is Art. 42 only
    assert v.legal_due_date == D("2026-05-21")  # 4/28 + 5 (劳动节 5/1–5) + 10 (work Sat 5/9)


def test_review_frozen_while_suspended():
    events = [ev("accept", "2026-02-10"), ev("suspend", "2026-03-12", procedure="检测")]
    for now in ("2026-03-12", "2026-04-30"):
        v = view(events, now, item=ESCALATED_LONG)
        assert v.violations == () and v.status == "suspended"
        assert ref.working_days_between(D(now), v.review_due) == 2  # 3/13, 3/16 left


def test_decision_at_the_lower_level_ends_the_review_clock():
    events = [ev("accept", "2026-02-10"), ev("approve", "2026-03-17")]
    v = view(events, "2026-03-17", item=ESCALATED_LONG)
    assert v.violations == ("late_review",) and v.delivery_due == D("2026-03-31")
    v = view(
        [ev("accept", "2026-02-10"), ev("deny", "2026-03-13", reason="不符合条件")], "2026-04-30", item=ESCALATED_LONG
    )
    assert (v.status, v.violations, v.light) == ("denied", (), "green")


def test_deemed_acceptance_starts_the_review_clock_on_the_receipt_day():
    v = view([], "2026-03-17", item=ESCALATED_LONG, received="2026-02-10")
    assert v.deemed_accepted and v.review_due == D("2026-03-16")
    assert v.violations == ("acceptance_timeout", "late_review")


@pytest.mark.parametrize(
    "kw,linked",
    [
        (dict(link="市行政审批局"), "市行政审批局"),
        (dict(step="报省厅审批"), "报省厅审批"),
        (dict(reason="转报省级主管部门"), "转报省级主管部门"),
        (dict(link="SB2026-9", step="s", reason="r"), "SB2026-9"),
    ],
)
def test_transfer_link_sources(kw, linked):
    rec = at("2026-03-02", 9)
    events = checked(ESCALATED, rec, [ev("accept", "2026-03-02"), ev("transfer", "2026-03-05", **kw)])
    assert evaluate(ESCALATED, rec, events, at("2026-03-05"), CAL).linked_to == linked


def test_transfer_without_link_refused_or_flagged():
    rec, events = at("2026-03-02", 9), [ev("accept", "2026-03-02")]
    with pytest.raises(TransitionError, match="receiving level"):
        check_event(ESCALATED, rec, events, ev("transfer", "2026-03-05"), CAL)
    v = evaluate(ESCALATED, rec, events + [ev("transfer", "2026-03-05", link="")], at("2026-03-05"), CAL)
    assert (v.status, v.violations, v.linked_to, v.light) == ("transferred", ("transfer_without_link",), None, "red")


def test_event_link_and_recorded_at_are_keyword_only_and_validated():
    with pytest.raises(TypeError):
        Event("transfer", at("2026-03-02"), 0, None, None, None, None, None, None, "省厅")  # type: ignore[misc]
    with pytest.raises(ValueError, match="recorded_at"):
        Event("accept", at("2026-03-02"), recorded_at=datetime(2026, 3, 2, 10))
    with pytest.raises(ValueError, match="link"):
        Event("transfer", at("2026-03-02"), link=7)  # type: ignore[arg-type]
    e = Event("accept", at("2026-03-02"))
    assert (e.link, e.recorded_at) == (None, None)


# -- record-keeping violations ---------------------------------------------------------------
def test_out_of_order_record():
    events = [
        ev("accept", "2026-03-02", 10),
        ev("step", "2026-03-04", step="审查"),
        ev("step", "2026-03-03", step="补录"),
    ]
    v = view(events, "2026-03-04")
    assert (v.violations, v.light, v.status, v.ignored) == (("out_of_order",), "red", "accepted", ())


def test_event_before_receipt_is_out_of_order():
    v = evaluate(PROMISED, at("2026-03-02", 9), [ev("accept", "2026-03-02", 8)], at("2026-03-02"), CAL)
    assert v.violations == ("out_of_order",) and v.accepted_on == D("2026-03-02")


def test_same_instant_is_not_out_of_order():
    events = [ev("accept", "2026-03-02", 10), ev("step", "2026-03-02", 10, step="审查")]
    assert view(events, "2026-03-02").violations == ()


@pytest.mark.parametrize(
    "recorded,tolerance,flagged",
    [
        (at("2026-03-02", 10), timedelta(0), False),  # written when it happened
        (at("2026-03-02", 10, 5), timedelta(minutes=5), False),  # exactly at the tolerance
        (at("2026-03-02", 10, 6), timedelta(minutes=5), True),
        (at("2026-03-05", 10), timedelta(days=2), True),  # entered three days later
        (at("2026-03-05", 10), None, False),  # check disabled
        (at("2026-03-02", 9), timedelta(0), False),  # written before `at`: not backdating
    ],
)
def test_backdated_record(recorded, tolerance, flagged):
    events = [Event("accept", at("2026-03-02"), recorded_at=recorded)]
    v = evaluate(PROMISED, at("2026-03-02", 9), events, at("2026-03-05"), CAL, backdate_tolerance=tolerance)
    assert (v.violations == ("backdated",)) == flagged and (v.light == "red") == flagged
    assert v.accepted_on == D("2026-03-02")  # the record is still applied


def test_backdate_tolerance_is_keyword_only():
    events = [Event("accept", at("2026-03-02"), recorded_at=at("2026-03-09"))]
    with pytest.raises(TypeError):
        evaluate(PROMISED, at("2026-03-02", 9), events, at("2026-03-09"), CAL, 1, timedelta(0))  # type: ignore[misc]
    v = evaluate(PROMISED, at("2026-03-02", 9), events, at("2026-03-09"), CAL, 1, backdate_tolerance=timedelta(0))
    assert v.violations == ("backdated",)


@pytest.mark.parametrize(
    "events,code",
    [
        ([ev("request_supplement", "2026-03-12")], "late_supplement_notice"),
        ([ev("reject", "2026-03-03")], "reject_without_reason"),
        ([ev("accept", "2026-03-02"), ev("deny", "2026-03-03")], "deny_without_reason"),
        ([ev("complete", "2026-03-03")], "complete_without_acceptance"),
        (
            [ev("accept", "2026-03-02"), ev("suspend", "2026-03-03", procedure="检验"), ev("complete", "2026-03-04")],
            "complete_while_suspended",
        ),
        (
            [ev("accept", "2026-03-02"), ev("extend", "2026-03-10", days=5, reason="r", approver="a")],
            "extension_after_due",
        ),
        (
            [
                ev("accept", "2026-03-02"),
                ev("extend", "2026-03-03", days=5, reason="r", approver="a"),
                ev("extend", "2026-03-04", days=5, reason="r", approver="a"),
            ],
            "second_extension",
        ),
        ([ev("accept", "2026-03-02"), ev("approve", "2026-03-03"), ev("deliver", "2026-03-18")], "late_delivery"),
        (
            [ev("accept", "2026-03-02"), ev("step", "2026-03-04", step="a"), ev("step", "2026-03-03", step="b")],
            "out_of_order",
        ),
    ],
)
def test_each_violation_is_its_own_red_card(events, code):
    v = view(events, "2026-03-20", received="2026-03-02")
    assert code in v.violations and v.light == "red"


# -- JSON form ---------------------------------------------------------------------------------
def test_to_dict_includes_new_fields():
    events = [ev("accept", "2026-02-10"), ev("approve", "2026-02-12")]
    d = view(events, "2026-02-12", item=ESCALATED_LONG).to_dict()
    assert d["delivery_due"] == "2026-03-04" and d["delivery_provisional"] is False
    assert d["review_due"] == "2026-03-16" and d["linked_to"] is None
    assert d["next_change"] == "2026-03-03T00:00:00+08:00"  # yellow one working day before and d["violations"] == []
    assert json.loads(json.dumps(d)) == d
    t = view(
        [ev("accept", "2026-02-10"), ev("transfer", "2026-02-12", link="SB-9")], "2026-02-12", item=ESCALATED
    ).to_dict()
    assert (t["linked_to"], t["delivery_due"], t["status"]) == ("SB-9", None, "transferred")
    assert set(CaseView.__dataclass_fields__) == set(d)


def test_delivery_due_in_unloaded_year_is_provisional():
    v = view([ev("accept", "2026-12-21"), ev("approve", "2026-12-22")], "2026-12-22")
    assert v.delivery_due == D("2027-01-05") and v.delivery_provisional
