"""Case clock and light rule (办件时限与红黄绿灯): pure replay of a case's events.

Administrative Licensing Law (行政许可法) Art. 32 acceptance, Art. 42 decision limits and
extension, Art. 43 lower-level review of escalated cases, Art. 44 delivery of the licence,
Art. 45 suspensions, Art. 82 working days. See docs/case-rules.md for the decisions taken where
the law is silent. No I/O, no clocks: `now` is always passed in, and every state, light and
violation is a function of (item, received_at, events, now, calendar, options) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from protocol.calendar import WorkCalendar, cst_midnight, default_calendar, local_date
from protocol.caseclock_days import Days, days_of
from protocol.caseclock_replay import _Replay, _replay
from protocol.caseclock_types import (
    ACCEPTANCE_DAYS,
    CASE_TYPES,
    CLOSED,
    DEFAULT_MAX_EXTENSION,
    DELIVERY_DAYS,
    EVENT_TYPES,
    MAX_EXTENSION,
    REVIEW_DAYS,
    STATUSES,
    SUSPEND_PROCEDURES,
    VIOLATION_ZH,
    VIOLATIONS,
    CaseView,
    Event,
    ItemRule,
    Light,
    TransitionError,
    _msg,
    violation_zh,
)

__all__ = [  # callers import every public name of the case clock from this module
    "ACCEPTANCE_DAYS",
    "CASE_TYPES",
    "CLOSED",
    "DEFAULT_MAX_EXTENSION",
    "DELIVERY_DAYS",
    "EVENT_TYPES",
    "MAX_EXTENSION",
    "REVIEW_DAYS",
    "STATUSES",
    "SUSPEND_PROCEDURES",
    "VIOLATIONS",
    "VIOLATION_ZH",
    "CaseView",
    "Event",
    "ItemRule",
    "Light",
    "TransitionError",
    "check_event",
    "evaluate",
    "violation_zh",
]


def check_event(
    item: ItemRule, received_at: datetime, events: Sequence[Event], new: Event, cal: WorkCalendar | None = None
) -> None:
    """Raise TransitionError if `new` is impossible after the accepted `events`."""
    if new.at < received_at:
        raise TransitionError(_msg("事件时间早于收件时间", "event is earlier than the receipt"))
    if events and new.at < max(e.at for e in events):
        raise TransitionError(_msg("事件时间早于上一事件", "event is earlier than the previous event"))
    st = _replay(item, received_at, events, days_of(cal or default_calendar()))
    st.strict = True
    st.apply(new, len(events))


def _yellow_start(days: Days, due: date, yellow: int) -> date:
    """First day on which remaining working days to `due` is <= yellow."""
    return days.add(due, -yellow) if yellow > 0 else due


def _remaining(days: Days, today: date, due: date) -> int:
    """Working days left to `due` from today; at least -1 once past due (even on a weekend)."""
    left = days.between(today, due)
    return min(left, -1) if today > due else left


def _clock(st: _Replay, base: date, shift: int, base_prov: bool, upto: date | None) -> tuple[date, date, bool]:
    """(due as of the last event, due projected to `upto` for an open suspension, provisional)."""
    days = st.days
    due = st.cur(base, shift)
    shown = due if upto is None else st.projected(base, shift, upto)
    prov = base_prov or st.shift_prov or (shown != base and days.provisional(base, shown))
    if shown != due:
        prov = prov or days.provisional(st.susp_start, upto)
    return due, shown, prov


def evaluate(
    item: ItemRule,
    received_at: datetime,
    events: Sequence[Event],
    now: datetime,
    cal: WorkCalendar,
    default_yellow_days: int = 1,
    *,
    backdate_tolerance: timedelta | None = None,
) -> CaseView:
    """Evaluate a case's clocks, light and violations at `now`.

    `events` are in recording order (as stored); they are replayed in time order, impossible
    ones skipped (listed in `ignored`). `backdate_tolerance` (None: not checked) is the largest
    allowed `recorded_at - at`.
    """
    days = days_of(cal)
    st = _replay(item, received_at, events, days, backdate_tolerance)
    today = local_date(now)
    if st.status == "received" and today > st.acceptance_due:
        st.deem()
    status = st.status
    is_open = status not in CLOSED
    suspended = is_open and st.susp_start is not None
    eff = st.susp_start if suspended else today  # clocks are frozen on the suspension day
    upto = today if suspended else None
    yellow = item.yellow_days if item.yellow_days is not None else default_yellow_days

    due = legal_due = review_due = None
    due_prov = legal_prov = review_prov = False
    due_now = None  # promised due without the open suspension (frozen remaining days)
    if st.accepted_on is not None:
        due_now, due, due_prov = _clock(st, st.base_p, st.shift_p, st.prov_p, upto)
        _, legal_due, legal_prov = _clock(st, st.base_l, st.shift_l, st.prov_l, upto)
        if st.base_r is not None:
            running = st.review_running()
            _, review_due, review_prov = _clock(st, st.base_r, st.shift_r, st.prov_r, upto if running else None)
            if running and is_open and eff > review_due:
                st.violate("late_review")
    elif st.supplement_requests == 0:
        due = due_now = st.acceptance_due
        due_prov = st.acceptance_prov
    if status == "approved" and today > st.delivery_due:
        st.violate("late_delivery")

    decided = st.decision_on or st.closed_on
    overdue = due is not None and (decided or eff) > due
    legal_overdue = legal_due is not None and (decided or eff) > legal_due
    remaining = None
    if is_open:
        if status == "approved":
            remaining = _remaining(days, today, st.delivery_due)
        elif due is not None:
            remaining = _remaining(days, eff, due_now)
    light: Light = "green"
    if st.violations or overdue or legal_overdue:
        light = "red"
    elif remaining is not None and remaining <= yellow:
        light = "yellow"

    next_change = None
    if is_open and not suspended and (due is not None or status == "approved"):
        if status == "approved":
            cands = [st.delivery_due + timedelta(days=1)]
            if light == "green":
                cands.append(_yellow_start(days, st.delivery_due, yellow))
        else:
            cands = [due + timedelta(days=1)]
            if light == "green":
                cands.append(_yellow_start(days, due, yellow))
            if legal_due is not None and st.decision_on is None:
                cands.append(legal_due + timedelta(days=1))
            if review_due is not None and st.review_running():
                cands.append(review_due + timedelta(days=1))
        future = [c for c in cands if c > today]
        if future:
            next_change = cst_midnight(min(future))

    return CaseView(
        status=status,
        light=light,
        due_date=due,
        due_provisional=due_prov,
        legal_due_date=legal_due,
        legal_provisional=legal_prov,
        acceptance_due=st.acceptance_due,
        accepted_on=st.accepted_on,
        deemed_accepted=st.deemed,
        completed_on=st.closed_on,
        overdue=overdue,
        legal_overdue=legal_overdue,
        violations=tuple(st.violations),
        remaining_days=remaining,
        next_change=next_change,
        ignored=tuple(sorted(st.ignored)),
        calendar=cal.fingerprint(),
        delivery_due=st.delivery_due,
        delivery_provisional=st.delivery_prov,
        review_due=review_due,
        review_provisional=review_prov,
        linked_to=st.linked_to,
    )
