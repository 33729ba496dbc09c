"""Case clock and light rule (办件时限与红黄绿灯): pure replay of a case's events.

Administrative Licensing Law (行政许可法) Art. 32 acceptance, Art. 42 decision limits and
extension, Art. 43 lower-level review of escalated cases, Art. 44 delivery of the licence,
Art. 45 suspensions, Art. 82 working days. See docs/case-rules.md for the decisions taken where
the law is silent. No I/O, no clocks: `now` is always passed in, and every state, light and
violation is a function of (item, received_at, events, now, calendar, options) only.
"""
from __future__ import annotations

from dataclasses import KW_ONLY, asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Literal, Sequence

from protocol.calendar import CST, WorkCalendar, cst_midnight, default_calendar, local_date
from protocol.caseclock_days import Days, days_of

Light = Literal["green", "yellow", "red"]
CASE_TYPES = ("immediate", "promised", "joint", "escalated")  # 即办件/承诺件/联办件/上报件
EVENT_TYPES = (
    "accept", "reject", "request_supplement", "supplement_received", "suspend", "resume",
    "extend", "step", "approve", "deny", "complete", "transfer", "withdraw", "deliver",
)
SUSPEND_PROCEDURES = ("听证", "招标", "拍卖", "检验", "检测", "检疫", "鉴定", "专家评审")
STATUSES = (
    "received", "supplement_requested", "accepted", "suspended", "approved", "denied",
    "rejected", "completed", "delivered", "withdrawn", "transferred",
)
CLOSED = frozenset({"completed", "delivered", "rejected", "denied", "withdrawn", "transferred"})
ACCEPTANCE_DAYS = 5  # Art. 32: 补正 notice within 5 days, else deemed accepted
MAX_EXTENSION = {"joint": 15}  # Art. 42 ¶2; others Art. 42 ¶1
DEFAULT_MAX_EXTENSION = 10
REVIEW_DAYS = 20  # Art. 43: lower level reviews an escalated case within 20 days of acceptance
DELIVERY_DAYS = 10  # Art. 44: issue and deliver the licence within 10 days of the decision
VIOLATIONS = (  # every procedural red-card reason (红牌事由) `CaseView.violations` may hold
    "acceptance_timeout",           # Art. 32: no accept/reject/补正 within 5 working days
    "late_supplement_notice",       # Art. 32: 补正 notice after the 5 working days
    "repeated_supplement_request",  # Art. 32: 补正 must be told once, completely
    "reject_without_reason",        # Art. 32: 不予受理 needs reasons
    "deny_without_reason",          # Art. 38: 不予许可 needs reasons
    "complete_without_acceptance",  # decided or completed a case never accepted
    "complete_while_suspended",     # decided or completed during an Art. 45 procedure
    "second_extension",             # Art. 42: one extension only
    "extension_after_due",          # Art. 42: extension decided after the limit ran out
    "extension_without_approval",   # Art. 42: extension needs a reason and the head's approval
    "extension_too_long",           # Art. 42: more than 10 (joint 15) working days
    "late_delivery",                # Art. 44: licence not delivered within 10 working days
    "late_review",                  # Art. 43: lower level took more than 20 working days
    "transfer_without_link",        # transfer naming no receiving level or case
    "out_of_order",                 # an event recorded with a time before an earlier record
    "backdated",                    # recorded_at - at beyond the configured tolerance
)


@dataclass(frozen=True)
class ItemRule:
    """Time limits of one catalog item (事项): legal (法定) and promised (承诺) working days."""

    code: str
    case_type: str
    legal_days: int
    promised_days: int
    yellow_days: int | None = None

    def __post_init__(self) -> None:
        """Validate the fields; ValueError names the field."""
        if not isinstance(self.code, str) or not self.code:
            raise ValueError("code: must be a non-empty string")
        if self.case_type not in CASE_TYPES:
            raise ValueError(f"case_type: {self.case_type!r} not one of {', '.join(CASE_TYPES)}")
        for name in ("legal_days", "promised_days", "yellow_days"):
            v = getattr(self, name)
            if v is None and name == "yellow_days":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: must be a non-negative integer, got {v!r}")

    def max_extension(self) -> int:
        """Largest allowed extension (延期) in working days: 15 for joint cases, else 10."""
        return MAX_EXTENSION.get(self.case_type, DEFAULT_MAX_EXTENSION)


@dataclass(frozen=True)
class Event:
    """One case event (办件环节) as recorded by an agent or a department system.

    `link` names the receiving level or case of a `transfer` (转报接收机关/案件编号).
    `recorded_at` is the wall time at which the record was written, when known; `evaluate`
    compares it with `at` to find backdated records.
    """

    type: str
    at: datetime
    seq: int = 0
    actor: str | None = None
    reason: str | None = None
    days: int | None = None
    procedure: str | None = None
    step: str | None = None
    approver: str | None = None
    _: KW_ONLY
    link: str | None = None
    recorded_at: datetime | None = None

    def __post_init__(self) -> None:
        """Validate type, time zones, days and link; ValueError names the field."""
        if self.type not in EVENT_TYPES:
            raise ValueError(f"type: {self.type!r} is not a known event type")
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise ValueError("at: must be a time-zone-aware datetime")
        if self.days is not None and (isinstance(self.days, bool) or not isinstance(self.days, int)):
            raise ValueError(f"days: must be an integer, got {self.days!r}")
        if self.recorded_at is not None and (
                not isinstance(self.recorded_at, datetime) or self.recorded_at.utcoffset() is None):
            raise ValueError("recorded_at: must be a time-zone-aware datetime")
        if self.link is not None and not isinstance(self.link, str):
            raise ValueError(f"link: must be a string, got {self.link!r}")


class TransitionError(ValueError):
    """An impossible event for the case's state; message in Chinese then English."""


@dataclass(frozen=True)
class CaseView:
    """The evaluated state of a case at `now` (办件状态与灯色)."""

    status: str
    light: Light
    due_date: date | None
    due_provisional: bool
    legal_due_date: date | None
    legal_provisional: bool
    acceptance_due: date
    accepted_on: date | None
    deemed_accepted: bool
    completed_on: date | None
    overdue: bool
    legal_overdue: bool
    violations: tuple[str, ...]
    remaining_days: int | None
    next_change: datetime | None
    ignored: tuple[int, ...] = ()
    calendar: str = ""
    delivery_due: date | None = None      # Art. 44, from the approve day
    delivery_provisional: bool = False
    review_due: date | None = None        # Art. 43, escalated cases only
    review_provisional: bool = False
    linked_to: str | None = None          # receiving level/case of a transfer

    def to_dict(self) -> dict:
        """JSON-able form: dates as YYYY-MM-DD, instants as ISO 8601 with +08:00."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, (date, datetime)):
                out[k] = v.isoformat()
            elif isinstance(v, tuple):
                out[k] = list(v)
        return out


def _msg(zh: str, en: str) -> str:
    """Bilingual message: Chinese first, English in parentheses."""
    return f"{zh} ({en})"


class _Replay:
    """Mutable replay state of one case; strict mode raises, lenient mode flags or skips.

    Clocks are kept as a base date (fixed when the clock starts) plus working days added by
    suspensions (and the extension), so a replay costs a handful of bisects.
    """

    __slots__ = (
        "item", "days", "received", "acceptance_due", "acceptance_prov", "strict", "status", "index",
        "decided", "deemed", "extended", "supplement_requests", "accepted_on", "susp_start",
        "decision_on", "closed_on", "shift_p", "shift_l", "shift_r", "shift_prov",
        "base_p", "prov_p", "base_l", "prov_l", "base_r", "prov_r", "review_end",
        "delivery_due", "delivery_prov", "delivery_end", "linked_to", "violations", "ignored",
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
            return self.flag("repeated_supplement_request", "补正材料应一次性告知，不能再次告知",
                             "a supplement may be requested only once")
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
            return self.bad(f"中止计时的程序必须是{'、'.join(SUSPEND_PROCEDURES)}之一",
                            f"procedure must be one of {', '.join(SUSPEND_PROCEDURES)}")
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
            return self.flag("extension_without_approval", "延期必须说明理由并经负责人批准",
                             "extension needs a reason and an approver")
        limit = self.item.max_extension()
        if ev.days is None or ev.days < 1:
            return self.bad("延期天数必须为正整数", "extension days must be a positive integer")
        if ev.days > limit:
            return self.flag("extension_too_long", f"延期不能超过{limit}个工作日",
                             f"extension cannot exceed {limit} working days")
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
            self.flag("complete_while_suspended", "案件中止计时期间不能作出决定或办结",
                      "case is suspended; resume before deciding or completing")
            self.end_suspension(d)
        if self.status in ("received", "supplement_requested") and self.accepted_on is None:
            self.flag("complete_without_acceptance", "案件未受理，不能作出决定或办结",
                      "case is not accepted; cannot decide or complete")
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
            self.flag("transfer_without_link", "转报必须注明接收的上级机关或案件编号",
                      "transfer needs the receiving level or case (link, step or reason)")
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


_HANDLERS: dict[str, Callable[[_Replay, Event, date], None]] = {
    t: getattr(_Replay, "on_" + t) for t in EVENT_TYPES}


def _replay(item: ItemRule, received_at: datetime, events: Sequence[Event], days: Days,
            tolerance: timedelta | None = None) -> _Replay:
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


def check_event(item: ItemRule, received_at: datetime, events: Sequence[Event], new: Event,
                cal: WorkCalendar | None = None) -> None:
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


def evaluate(item: ItemRule, received_at: datetime, events: Sequence[Event], now: datetime,
             cal: WorkCalendar, default_yellow_days: int = 1, *,
             backdate_tolerance: timedelta | None = None) -> CaseView:
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
            _, review_due, review_prov = _clock(st, st.base_r, st.shift_r, st.prov_r,
                                                upto if running else None)
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
        status=status, light=light, due_date=due, due_provisional=due_prov,
        legal_due_date=legal_due, legal_provisional=legal_prov,
        acceptance_due=st.acceptance_due, accepted_on=st.accepted_on,
        deemed_accepted=st.deemed, completed_on=st.closed_on, overdue=overdue,
        legal_overdue=legal_overdue, violations=tuple(st.violations), remaining_days=remaining,
        next_change=next_change, ignored=tuple(sorted(st.ignored)), calendar=cal.fingerprint(),
        delivery_due=st.delivery_due, delivery_provisional=st.delivery_prov,
        review_due=review_due, review_provisional=review_prov, linked_to=st.linked_to,
    )
