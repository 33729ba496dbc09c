"""The replay of a case's events (state machine of the case clock), pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from protocol.calendar import CST, local_date
from protocol.caseclock_days import Days
from protocol.caseclock_types import (
    ACCEPTANCE_DAYS,
    CLOSED,
    DELIVERY_DAYS,
    EVENT_TYPES,
    REVIEW_DAYS,
    SUSPEND_PROCEDURES,
    Event,
    ItemRule,
    TransitionError,
    _msg,
)


class _Replay:
    """Mutable replay state of one case; strict mode raises, lenient mode flags or skips.

    Clocks are kept as a base date (fixed when the clock starts) plus working days added by
    suspensions (and the extension), so a replay costs a handful of bisects.
    """

    __slots__ = (
        "item",
        "days",
        "received",
        "acceptance_due",
        "acceptance_prov",
        "strict",
        "status",
        "index",
        "decided",
        "deemed",
        "extended",
        "supplement_requests",
        "accepted_on",
        "susp_start",
        "decision_on",
        "closed_on",
        "shift_p",
        "shift_l",
        "shift_r",
        "shift_prov",
        "base_p",
        "prov_p",
        "base_l",
        "prov_l",
        "base_r",
        "prov_r",
        "review_end",
        "delivery_due",
        "delivery_prov",
        "delivery_end",
        "linked_to",
        "violations",
        "ignored",
    )

    def __init__(self, item: ItemRule, days: Days, received: date) -> None:
        """Start at receipt (收件): the 5-working-day acceptance clock runs."""
        self.item, self.days, self.received = item, days, received
        self.acceptance_due, self.acceptance_prov = days.add_p(received, ACCEPTANCE_DAYS)
        self.strict, self.status, self.index = False, "received", -1
        self.decided = False  # accept / reject / request_supplement seen (acceptance decision)
        self.deemed, self.extended, self.supplement_requests = False, False, 0
        self.accepted_on: date | None = None
        self.susp_start: date | None = None
        self.decision_on: date | None = None
        self.closed_on: date | None = None
        self.shift_p = self.shift_l = self.shift_r = 0  # working days added to each clock
        self.shift_prov = False
        self.base_p = self.base_l = self.base_r = None  # clock bases, set on acceptance
        self.prov_p = self.prov_l = self.prov_r = False
        self.review_end: date | None = None
        self.delivery_due: date | None = None
        self.delivery_prov = False
        self.delivery_end: date | None = None
        self.linked_to: str | None = None
        self.violations: list[str] = []
        self.ignored: list[int] = []

    # -- bookkeeping -------------------------------------------------------------------------
    def bad(self, zh: str, en: str) -> None:
        """Impossible event: raise (strict) or skip it (lenient)."""
        if self.strict:
            raise TransitionError(_msg(zh, en))
        self.ignored.append(self.index)

    def flag(self, code: str, zh: str, en: str) -> None:
        """Refused event that, when present anyway, is a procedural violation (红牌)."""
        if self.strict:
            raise TransitionError(_msg(zh, en))
        self.violate(code)

    def violate(self, code: str) -> None:
        """Record a violation code once."""
        if code not in self.violations:
            self.violations.append(code)

    # -- clocks ------------------------------------------------------------------------------
    def set_accepted(self, d: date) -> None:
        """Acceptance day: the decision clocks (and the review clock of escalated cases) start."""
        days, item = self.days, self.item
        self.accepted_on = d
        self.base_p, self.prov_p = days.add_p(d, item.promised_days)
        self.base_l, self.prov_l = days.add_p(d, item.legal_days)
        if item.case_type == "escalated":
            self.base_r, self.prov_r = days.add_p(d, REVIEW_DAYS)

    def cur(self, base: date, shift: int) -> date:
        """A clock's due date with the working days already added."""
        return self.days.add(base, shift) if shift else base

    def projected(self, base: date, shift: int, upto: date) -> date:
        """Due date if an open suspension ended on `upto` (unchanged when it began after due)."""
        due = self.cur(base, shift)
        s = self.susp_start
        if s is not None and s <= due:
            k = self.days.between(s, upto)
            if k > 0:
                due = self.days.add(due, k)
        return due

    def review_running(self) -> bool:
        """The Art. 43 review clock runs (escalated, accepted, not yet transferred or decided)."""
        return self.base_r is not None and self.review_end is None

    def end_suspension(self, d: date) -> None:
        """Close an open suspension on day d, adding its working days to each clock not yet run out."""
        s = self.susp_start
        if s is None:
            return
        k = self.days.between(s, d)
        if k > 0:
            if s <= self.cur(self.base_p, self.shift_p):
                self.shift_p += k
            if s <= self.cur(self.base_l, self.shift_l):
                self.shift_l += k
            if self.review_running() and s <= self.cur(self.base_r, self.shift_r):
                self.shift_r += k
        self.shift_prov = self.shift_prov or self.days.provisional(s, d)
        self.susp_start = None
        self.status = "accepted"

    def end_review(self, d: date) -> None:
        """The lower level's part ends (transfer, decision or closing): late after review_due."""
        if self.review_running():
            self.review_end = d
            if d > self.cur(self.base_r, self.shift_r):
                self.violate("late_review")

    def end_delivery(self, d: date) -> None:
        """The delivery clock stops (deliver, complete or withdraw): late after delivery_due."""
        if self.delivery_due is not None and self.delivery_end is None:
            self.delivery_end = d
            if d > self.delivery_due:
                self.violate("late_delivery")

    def accepted_like(self) -> bool:
        """Decision clock running and the case free for decisions (accepted, or deemed accepted)."""
        return self.status == "accepted" or (self.status == "supplement_requested" and self.deemed)

    def undecided_deemed(self) -> bool:
        """Deemed accepted with no acceptance decision yet (late accept/reject/补正 still possible)."""
        return self.status == "accepted" and self.deemed and not self.decided

    def deem(self) -> None:
        """Deemed acceptance on the receipt day (Art. 32: 逾期不告知的，自收到申请材料之日起即为受理)."""
        self.deemed, self.status = True, "accepted"
        self.set_accepted(self.received)
        self.violate("acceptance_timeout")

    def close(self, status: str, d: date) -> None:
        """Move to a closed status; the first closing day is kept."""
        self.end_suspension(d)
        self.end_delivery(d)
        self.end_review(d)
        self.status = status
        self.closed_on = self.closed_on or d

    def apply(self, ev: Event, index: int) -> None:
        """Apply one event."""
        self.index = index
        d = ev.at.astimezone(CST).date()
        if d < self.received:
            d = self.received
        if self.status == "received" and d > self.acceptance_due and not self.decided:
            self.deem()
        _HANDLERS[ev.type](self, ev, d)

    # -- events ------------------------------------------------------------------------------
    def on_accept(self, ev: Event, d: date) -> None:
        """受理."""
        if self.status in ("received", "supplement_requested"):
            if not self.deemed:
                self.set_accepted(d)
            self.status, self.decided = "accepted", True
        elif self.undecided_deemed():
            self.decided = True
        else:
            self.bad("案件已受理或已办结，不能再受理", "case already accepted or closed; cannot accept")

    def on_reject(self, ev: Event, d: date) -> None:
        """不予受理 (needs reasons, Art. 32)."""
        if not (self.status in ("received", "supplement_requested") or self.undecided_deemed()):
            return self.bad("案件已受理或已办结，不能不予受理", "case already accepted or closed; cannot reject")
        if not ev.reason:
            self.flag("reject_without_reason", "不予受理必须说明理由", "reject needs a reason")
        self.decided = True
        self.close("rejected", d)

    def on_request_supplement(self, ev: Event, d: date) -> None:
        """补正告知: once, complete, within the acceptance clock."""
        if self.status in CLOSED:
            return self.bad("案件已办结，不能告知补正", "case is closed; cannot request a supplement")
        if self.supplement_requests:
            return self.flag(
                "repeated_supplement_request",
                "补正材料应一次性告知，不能再次告知",
                "a supplement may be requested only once",
            )
        if not (self.status == "received" or self.undecided_deemed()):
            return self.bad("案件已受理，不能再告知补正", "case already accepted; cannot request a supplement")
        if d > self.acceptance_due:
            self.violate("late_supplement_notice")
        self.status, self.decided = "supplement_requested", True
        self.supplement_requests += 1

    def on_supplement_received(self, ev: Event, d: date) -> None:
        """补正材料已收: accepted on that day."""
        if self.status != "supplement_requested":
            return self.bad("未告知补正，不能登记补正材料", "no supplement was requested")
        if not self.deemed:
            self.set_accepted(d)
        self.status = "accepted"

    def on_suspend(self, ev: Event, d: date) -> None:
        """Art. 45 special procedure (特别程序) stops the clock."""
        if self.status != "accepted":
            return self.bad("只有已受理的案件可以中止计时", "only an accepted case can be suspended")
        if ev.procedure not in SUSPEND_PROCEDURES:
            return self.bad(
                f"中止计时的程序必须是{'、'.join(SUSPEND_PROCEDURES)}之一",
                f"procedure must be one of {', '.join(SUSPEND_PROCEDURES)}",
            )
        self.status, self.susp_start = "suspended", d

    def on_resume(self, ev: Event, d: date) -> None:
        """End of the special procedure; the clock runs again."""
        if self.status != "suspended":
            return self.bad("案件未中止计时，不能恢复", "case is not suspended; cannot resume")
        self.end_suspension(d)

    def on_extend(self, ev: Event, d: date) -> None:
        """延期 (Art. 42): once, reason and approver, at most 10 (joint 15) days, before due."""
        if self.status not in ("accepted", "suspended"):
            return self.bad("只有办理中的案件可以延期", "only a case in progress can be extended")
        if self.extended:
            return self.flag("second_extension", "案件只能延期一次", "a case can be extended only once")
        if not ev.reason or not ev.approver:
            return self.flag(
                "extension_without_approval",
                "延期必须说明理由并经负责人批准",
                "extension needs a reason and an approver",
            )
        limit = self.item.max_extension()
        if ev.days is None or ev.days < 1:
            return self.bad("延期天数必须为正整数", "extension days must be a positive integer")
        if ev.days > limit:
            return self.flag(
                "extension_too_long", f"延期不能超过{limit}个工作日", f"extension cannot exceed {limit} working days"
            )
        if d > self.projected(self.base_p, self.shift_p, d):
            return self.flag("extension_after_due", "已超过办理时限，不能延期", "case is past due; cannot extend")
        self.shift_p += ev.days
        self.shift_l += ev.days
        self.extended = True

    def on_step(self, ev: Event, d: date) -> None:
        """A named processing step (办理环节); no state change."""
        if self.status not in ("accepted", "suspended", "approved"):
            return self.bad("案件不在办理中，不能记录环节", "case is not in progress; cannot record a step")
        if not ev.step:
            return self.bad("环节名称不能为空", "step needs a name")

    def decide(self, ev: Event, d: date, extra_from: tuple[str, ...] = ()) -> bool:
        """Common checks before approve/deny/complete; False when the event is skipped."""
        if self.status == "suspended":
            self.flag(
                "complete_while_suspended",
                "案件中止计时期间不能作出决定或办结",
                "case is suspended; resume before deciding or completing",
            )
            self.end_suspension(d)
        if self.status in ("received", "supplement_requested") and self.accepted_on is None:
            self.flag(
                "complete_without_acceptance",
                "案件未受理，不能作出决定或办结",
                "case is not accepted; cannot decide or complete",
            )
            return True
        if not (self.accepted_like() or self.status in extra_from):
            self.bad(f"案件状态为{self.status}，不能执行该操作", f"not possible in status {self.status}")
            return False
        return True

    def on_approve(self, ev: Event, d: date) -> None:
        """准予许可 (decision): the decision clock stops, the Art. 44 delivery clock starts."""
        if self.decide(ev, d):
            self.end_review(d)
            self.status = "approved"
            self.decision_on = self.decision_on or d
            self.delivery_due, self.delivery_prov = self.days.add_p(d, DELIVERY_DAYS)

    def on_deny(self, ev: Event, d: date) -> None:
        """不予许可 (decision; needs reasons)."""
        if not self.decide(ev, d):
            return
        if not ev.reason:
            self.flag("deny_without_reason", "不予许可必须说明理由", "deny needs a reason")
        self.decision_on = self.decision_on or d
        self.close("denied", d)

    def on_complete(self, ev: Event, d: date) -> None:
        """办结 (also ends the delivery clock of an approved case)."""
        if self.decide(ev, d, extra_from=("approved", "denied")):
            self.decision_on = self.decision_on or d
            self.close("completed", d)

    def on_transfer(self, ev: Event, d: date) -> None:
        """转报 to the receiving level (named by link, step or reason); closed here."""
        if not self.accepted_like():
            return self.bad("只有已受理的案件可以转报", "only an accepted case can be transferred")
        link = ev.link or ev.step or ev.reason
        if not link:
            self.flag(
                "transfer_without_link",
                "转报必须注明接收的上级机关或案件编号",
                "transfer needs the receiving level or case (link, step or reason)",
            )
        self.linked_to = link or None
        self.close("transferred", d)

    def on_withdraw(self, ev: Event, d: date) -> None:
        """撤回 by the applicant, any time before closing."""
        if self.status in CLOSED:
            return self.bad("案件已办结，不能撤回", "case is closed; cannot withdraw")
        self.close("withdrawn", d)

    def on_deliver(self, ev: Event, d: date) -> None:
        """送达/领证 after a decision or completion."""
        if self.status not in ("approved", "completed", "denied"):
            return self.bad("案件未作出决定或办结，不能送达", "case not decided or completed; cannot deliver")
        self.close("delivered", d)


_HANDLERS: dict[str, Callable[[_Replay, Event, date], None]] = {t: getattr(_Replay, "on_" + t) for t in EVENT_TYPES}


def _replay(
    item: ItemRule, received_at: datetime, events: Sequence[Event], days: Days, tolerance: timedelta | None = None
) -> _Replay:
    """Leniently replay recorded events (given in recording order) in time order.

    Records whose time is earlier than a record before them (or than the receipt) are
    `out_of_order`; records written more than `tolerance` after their time are `backdated`.
    """
    st = _Replay(item, days, local_date(received_at))
    latest, prev, need_sort, ooo, backdated = received_at, None, False, False, False
    for e in events:
        a = e.at
        if a < latest:
            ooo = True
        else:
            latest = a
        if prev is not None and (a < prev.at or (a == prev.at and e.seq < prev.seq)):
            need_sort = True
        prev = e
        if tolerance is not None and e.recorded_at is not None and e.recorded_at - a > tolerance:
            backdated = True
    if need_sort:
        for i in sorted(range(len(events)), key=lambda i: (events[i].at, events[i].seq)):
            st.apply(events[i], i)
    else:
        for i, e in enumerate(events):
            st.apply(e, i)
    if ooo:
        st.violate("out_of_order")
    if backdated:
        st.violate("backdated")
    return st
