"""Case clock and light rule (办件时限与红黄绿灯): pure replay of a case's events.

Administrative Licensing Law (行政许可法) Art. 32 acceptance, Art. 42 decision limits and
extension, Art. 45 suspensions, Art. 82 working days. See docs/case-rules.md for the decisions
taken where the law is silent. No I/O, no clocks: `now` is always passed in.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Sequence

from protocol.calendar import WorkCalendar, cst_midnight, default_calendar, local_date

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
    """One case event (办件环节) as recorded by an agent or a department system."""

    type: str
    at: datetime
    seq: int = 0
    actor: str | None = None
    reason: str | None = None
    days: int | None = None
    procedure: str | None = None
    step: str | None = None
    approver: str | None = None

    def __post_init__(self) -> None:
        """Validate type, time zone and days; ValueError names the field."""
        if self.type not in EVENT_TYPES:
            raise ValueError(f"type: {self.type!r} is not a known event type")
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise ValueError("at: must be a time-zone-aware datetime")
        if self.days is not None and (isinstance(self.days, bool) or not isinstance(self.days, int)):
            raise ValueError(f"days: must be an integer, got {self.days!r}")


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
    """Mutable replay state of one case; strict mode raises, lenient mode flags or skips."""

    def __init__(self, item: ItemRule, cal: WorkCalendar, received_at: datetime) -> None:
        """Start at receipt (收件): the 5-working-day acceptance clock runs."""
        self.item, self.cal, self.received = item, cal, local_date(received_at)
        self.acceptance_due, self.acceptance_prov = cal.add_working_days(self.received, ACCEPTANCE_DAYS)
        self.strict, self.status, self.index = False, "received", -1
        self.decided = False  # accept / reject / request_supplement seen (acceptance decision)
        self.deemed, self.extended, self.supplement_requests = False, False, 0
        self.accepted_on: date | None = None
        self.susp_start: date | None = None
        self.decision_on: date | None = None
        self.closed_on: date | None = None
        self.shift_p = self.shift_l = 0  # working days added to the promised / legal due date
        self.shift_prov = False
        self.violations: list[str] = []
        self.ignored: list[int] = []

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

    def due(self, legal: bool = False, upto: date | None = None) -> tuple[date, bool]:
        """Current due date (promised or legal) with shifts; `upto` projects an open suspension."""
        assert self.accepted_on is not None
        days = self.item.legal_days if legal else self.item.promised_days
        base, prov = self.cal.add_working_days(self.accepted_on, days)
        shift = self.shift_l if legal else self.shift_p
        s = self.susp_start
        if upto is not None and s is not None and s <= self.cal.add_working_days(base, shift)[0]:
            shift += max(0, self.cal.working_days_between(s, upto))
            prov = prov or not self.cal.all_loaded(s, upto)
        result, prov2 = self.cal.add_working_days(base, shift)
        return result, prov or prov2 or self.shift_prov

    def accepted_like(self) -> bool:
        """Decision clock running and the case free for decisions (accepted, or deemed accepted)."""
        return self.status == "accepted" or (self.status == "supplement_requested" and self.deemed)

    def undecided_deemed(self) -> bool:
        """Deemed accepted with no acceptance decision yet (late accept/reject/补正 still possible)."""
        return self.status == "accepted" and self.deemed and not self.decided

    def deem(self, code: str) -> None:
        """Deemed acceptance on the receipt day (Art. 32: 逾期不告知的，自收到申请材料之日起即为受理)."""
        self.deemed, self.status, self.accepted_on = True, "accepted", self.received
        self.violate(code)

    def maybe_deem(self, d: date, etype: str) -> None:
        """Apply deemed acceptance when an event arrives after the acceptance deadline."""
        if self.status == "received" and not self.decided and d > self.acceptance_due:
            self.deem("late_supplement_notice" if etype == "request_supplement" else "acceptance_timeout")

    def end_suspension(self, d: date) -> None:
        """Close an open suspension on day d, adding its working days to each clock not yet run out."""
        s = self.susp_start
        if s is None:
            return
        k = max(0, self.cal.working_days_between(s, d))
        if s <= self.due()[0]:
            self.shift_p += k
        if s <= self.due(legal=True)[0]:
            self.shift_l += k
        self.shift_prov = self.shift_prov or not self.cal.all_loaded(s, d)
        self.susp_start = None
        self.status = "accepted"

    def close(self, status: str, d: date) -> None:
        """Move to a closed status; the first closing day is kept."""
        self.end_suspension(d)
        self.status = status
        self.closed_on = self.closed_on or d

    def apply(self, ev: Event, index: int) -> None:
        """Apply one event."""
        self.index = index
        d = max(local_date(ev.at), self.received)
        self.maybe_deem(d, ev.type)
        getattr(self, "on_" + ev.type)(ev, d)

    def on_accept(self, ev: Event, d: date) -> None:
        """受理."""
        if self.status in ("received", "supplement_requested"):
            if not self.deemed:
                self.accepted_on = d
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
            self.accepted_on = d
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
        if d > self.due(upto=d)[0]:
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
        """准予许可 (decision)."""
        if self.decide(ev, d):
            self.status = "approved"
            self.decision_on = self.decision_on or d

    def on_deny(self, ev: Event, d: date) -> None:
        """不予许可 (decision; needs reasons)."""
        if not self.decide(ev, d):
            return
        if not ev.reason:
            self.flag("deny_without_reason", "不予许可必须说明理由", "deny needs a reason")
        self.decision_on = self.decision_on or d
        self.close("denied", d)

    def on_complete(self, ev: Event, d: date) -> None:
        """办结."""
        if self.decide(ev, d, extra_from=("approved", "denied")):
            self.decision_on = self.decision_on or d
            self.close("completed", d)

    def on_transfer(self, ev: Event, d: date) -> None:
        """转报 to the upper level; closed here."""
        if not self.accepted_like():
            return self.bad("只有已受理的案件可以转报", "only an accepted case can be transferred")
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


def _ordered(events: Sequence[Event]) -> list[int]:
    """Indexes of events in time order (ties keep seq, then given order)."""
    return sorted(range(len(events)), key=lambda i: (events[i].at, events[i].seq))


def _replay(item: ItemRule, received_at: datetime, events: Sequence[Event], cal: WorkCalendar) -> _Replay:
    """Leniently replay recorded events."""
    st = _Replay(item, cal, received_at)
    for i in _ordered(events):
        st.apply(events[i], i)
    return st


def check_event(item: ItemRule, received_at: datetime, events: Sequence[Event], new: Event,
                cal: WorkCalendar | None = None) -> None:
    """Raise TransitionError if `new` is impossible after the accepted `events`."""
    if new.at < received_at:
        raise TransitionError(_msg("事件时间早于收件时间", "event is earlier than the receipt"))
    if events and new.at < max(e.at for e in events):
        raise TransitionError(_msg("事件时间早于上一事件", "event is earlier than the previous event"))
    st = _replay(item, received_at, events, cal or default_calendar())
    st.strict = True
    st.apply(new, len(events))


def _yellow_start(cal: WorkCalendar, due: date, yellow: int) -> date:
    """First day on which remaining working days to `due` is <= yellow."""
    return cal.add_working_days(due, -yellow)[0] if yellow > 0 else due


def _remaining(cal: WorkCalendar, today: date, due: date) -> int:
    """Working days left to `due` from today; at least -1 once past due (even on a weekend)."""
    left = cal.working_days_between(today, due)
    return min(left, -1) if today > due else left


def _next_change(st: _Replay, today: date, due: date, legal_due: date | None, light: str,
                 yellow: int) -> datetime | None:
    """Earliest future CST midnight at which light, status or an overdue flag flips by itself."""
    cands = [due + timedelta(days=1)]
    if light == "green":
        cands.append(_yellow_start(st.cal, due, yellow))
    if legal_due is not None and st.decision_on is None:
        cands.append(legal_due + timedelta(days=1))
    future = [c for c in cands if c > today]
    return cst_midnight(min(future)) if future else None


def evaluate(item: ItemRule, received_at: datetime, events: Sequence[Event], now: datetime,
             cal: WorkCalendar, default_yellow_days: int = 1) -> CaseView:
    """Evaluate a case's clocks and light at `now` (events sorted by time; impossible ones skipped)."""
    st = _replay(item, received_at, events, cal)
    today = local_date(now)
    if st.status == "received" and today > st.acceptance_due:
        st.deem("acceptance_timeout")
    is_open = st.status not in CLOSED
    yellow = item.yellow_days if item.yellow_days is not None else default_yellow_days
    due, due_prov, legal_due, legal_prov = None, False, None, False
    if st.accepted_on is not None:
        upto = today if is_open and st.susp_start is not None else None
        due, due_prov = st.due(upto=upto)
        legal_due, legal_prov = st.due(legal=True, upto=upto)
    elif st.supplement_requests == 0:
        due, due_prov = st.acceptance_due, st.acceptance_prov
    overdue = due is not None and (today if is_open else st.closed_on) > due
    legal_overdue = legal_due is not None and (st.decision_on or st.closed_on or today) > legal_due
    remaining = _remaining(cal, today, due) if is_open and due is not None else None
    light: Light = "green"
    if st.violations or overdue or legal_overdue:
        light = "red"
    elif remaining is not None and remaining <= yellow:
        light = "yellow"
    running = is_open and due is not None and st.susp_start is None
    return CaseView(
        status=st.status, light=light, due_date=due, due_provisional=due_prov,
        legal_due_date=legal_due, legal_provisional=legal_prov,
        acceptance_due=st.acceptance_due, accepted_on=st.accepted_on,
        deemed_accepted=st.deemed, completed_on=st.closed_on, overdue=overdue,
        legal_overdue=legal_overdue, violations=tuple(st.violations), remaining_days=remaining,
        next_change=_next_change(st, today, due, legal_due, light, yellow) if running else None,
        ignored=tuple(sorted(st.ignored)), calendar=cal.fingerprint(),
    )
