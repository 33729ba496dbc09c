"""Case clock types and constants (办件时限): item rules, events, the case view.

Administrative Licensing Law (行政许可法) Art. 32 acceptance, Art. 42 decision limits and
extension, Art. 43 lower-level review of escalated cases, Art. 44 delivery of the licence,
Art. 45 suspensions, Art. 82 working days. See docs/case-rules.md for the decisions taken where
the law is silent. No I/O, no clocks: `now` is always passed in, and every state, light and
violation is a function of (item, received_at, events, now, calendar, options) only.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, asdict, dataclass
from datetime import date, datetime
from typing import Literal

Light = Literal["green", "yellow", "red"]
CASE_TYPES = ("immediate", "promised", "joint", "escalated")  # 即办件/承诺件/联办件/上报件
EVENT_TYPES = (
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
)
SUSPEND_PROCEDURES = ("听证", "招标", "拍卖", "检验", "检测", "检疫", "鉴定", "专家评审")
STATUSES = (
    "received",
    "supplement_requested",
    "accepted",
    "suspended",
    "approved",
    "denied",
    "rejected",
    "completed",
    "delivered",
    "withdrawn",
    "transferred",
)
CLOSED = frozenset({"completed", "delivered", "rejected", "denied", "withdrawn", "transferred"})
ACCEPTANCE_DAYS = 5  # Art. 32: 补正 notice within 5 days, else deemed accepted
MAX_EXTENSION = {"joint": 15}  # Art. 42 ¶2; others Art. 42 ¶1
DEFAULT_MAX_EXTENSION = 10
REVIEW_DAYS = 20  # Art. 43: lower level reviews an escalated case within 20 days of acceptance
DELIVERY_DAYS = 10  # Art. 44: issue and deliver the licence within 10 days of the decision
VIOLATIONS = (  # every procedural red-card reason (红牌事由) `CaseView.violations` may hold
    "acceptance_timeout",  # Art. 32: no accept/reject/补正 within 5 working days
    "late_supplement_notice",  # Art. 32: 补正 notice after the 5 working days
    "repeated_supplement_request",  # Art. 32: 补正 must be told once, completely
    "reject_without_reason",  # Art. 32: 不予受理 needs reasons
    "deny_without_reason",  # Art. 38: 不予许可 needs reasons
    "complete_without_acceptance",  # decided or completed a case never accepted
    "complete_while_suspended",  # decided or completed during an Art. 45 procedure
    "second_extension",  # Art. 42: one extension only
    "extension_after_due",  # Art. 42: extension decided after the limit ran out
    "extension_without_approval",  # Art. 42: extension needs a reason and the head's approval
    "extension_too_long",  # Art. 42: more than 10 (joint 15) working days
    "late_delivery",  # Art. 44: licence not delivered within 10 working days
    "late_review",  # Art. 43: lower level took more than 20 working days
    "transfer_without_link",  # transfer naming no receiving level or case
    "out_of_order",  # an event recorded with a time before an earlier record
    "backdated",  # recorded_at - at beyond the configured tolerance
)

# what people see for each event type (timelines on pages, in documents; 收件 is the registration)
EVENT_ZH: dict[str, str] = {
    "receive": "收件",
    "accept": "受理",
    "reject": "不予受理",
    "request_supplement": "补正告知",
    "supplement_received": "补正材料已收",
    "suspend": "特别程序开始",
    "resume": "特别程序结束",
    "extend": "延期",
    "step": "办理环节",
    "approve": "批准",
    "deny": "不予许可",
    "complete": "办结",
    "transfer": "转报",
    "withdraw": "撤回",
    "deliver": "送达/领证",
}

# violation code → the Chinese reason people read (红牌事由); every code above has one
VIOLATION_ZH = {
    "acceptance_timeout": "逾期未受理（视为受理）",
    "late_supplement_notice": "逾期补正告知",
    "repeated_supplement_request": "多次要求补正（未一次性告知）",
    "reject_without_reason": "不予受理未说明理由",
    "deny_without_reason": "不予许可未说明理由",
    "complete_without_acceptance": "未受理即办结",
    "complete_while_suspended": "特别程序期间办结",
    "second_extension": "重复延期",
    "extension_after_due": "超期后延期",
    "extension_without_approval": "延期未经负责人批准",
    "extension_too_long": "延期超过法定天数",
    "late_delivery": "逾期送达",
    "late_review": "逾期审查",
    "transfer_without_link": "转报未注明接收单位",
    "out_of_order": "办理环节顺序异常",
    "backdated": "补记时间超出允许范围",
}


def violation_zh(code: str) -> str:
    """The Chinese reason for a violation code; an unknown code (a newer agent's) is returned as is."""
    return VIOLATION_ZH.get(code, code)


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
            not isinstance(self.recorded_at, datetime) or self.recorded_at.utcoffset() is None
        ):
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
    delivery_due: date | None = None  # Art. 44, from the approve day
    delivery_provisional: bool = False
    review_due: date | None = None  # Art. 43, escalated cases only
    review_provisional: bool = False
    linked_to: str | None = None  # receiving level/case of a transfer

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
