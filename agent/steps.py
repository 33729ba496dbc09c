"""The next steps a clerk may take on a case (办理环节), and the Chinese labels of the clerk's page.

Which steps are offered is asked of the case rules themselves (protocol.caseclock.check_event,
the check the store runs before every event): a step is offered when the rules accept it with
every field it can carry filled in. What the clerk then submits goes through the same store
call as the API (AgentStore.add_event), so a refusal is the rule's own message. Nothing about
the law is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from protocol.calendar import WorkCalendar
from protocol.caseclock import EVENT_TYPES, SUSPEND_PROCEDURES, Event, ItemRule, check_event
from protocol.caseclock_types import EVENT_ZH

STATUS_ZH = {
    "received": "已收件，待受理",
    "supplement_requested": "已告知补正",
    "accepted": "已受理，办理中",
    "suspended": "特别程序中（暂停计时）",
    "approved": "已批准，待送达",
    "denied": "不予许可",
    "rejected": "不予受理",
    "completed": "已办结",
    "delivered": "已送达",
    "withdrawn": "已撤回",
    "transferred": "已转报",
}
LIGHT_ZH = {"green": "绿灯", "yellow": "黄灯", "red": "红灯"}
CASE_TYPE_ZH = {"immediate": "即办件", "promised": "承诺件", "joint": "联办件", "escalated": "上报件"}


@dataclass(frozen=True)
class Field:
    """One input a step asks for."""

    name: str  # NewEvent field
    label: str
    kind: str = "text"  # text | textarea | number | select
    choices: tuple[str, ...] = ()
    hint: str = ""


REASON = Field("reason", "理由", "textarea")
STEP_FIELDS: dict[str, tuple[Field, ...]] = {
    "accept": (),
    "reject": (Field("reason", "不予受理的理由", "textarea", hint="依法须说明理由"),),
    "request_supplement": (
        Field("reason", "需补正的材料（一次性告知全部）", "textarea", hint="每行一项，将印在补正告知书上"),
    ),
    "supplement_received": (),
    "suspend": (
        Field("procedure", "特别程序", "select", SUSPEND_PROCEDURES),
        Field("reason", "说明", "textarea"),
    ),
    "resume": (),
    "extend": (
        Field("days", "延长工作日数", "number", hint="一般不超过 10 个工作日，联办件 15 个"),
        Field("reason", "延期理由", "textarea"),
        Field("approver", "批准负责人"),
    ),
    "step": (Field("step", "环节名称", hint="如：现场勘查、集体研究"),),
    "approve": (),
    "deny": (Field("reason", "不予许可的理由", "textarea", hint="依法须说明理由"),),
    "complete": (),
    "transfer": (Field("link", "接收的上级机关或案件编号"),),
    "withdraw": (Field("reason", "撤回说明", "textarea"),),
    "deliver": (),
}
# the order of the buttons: the usual path first
STEP_ORDER = (
    "accept",
    "request_supplement",
    "supplement_received",
    "reject",
    "step",
    "suspend",
    "resume",
    "extend",
    "approve",
    "deny",
    "complete",
    "deliver",
    "transfer",
    "withdraw",
)
assert set(STEP_ORDER) == set(EVENT_TYPES) == set(STEP_FIELDS)
# what a trial event carries: every field the rules may ask for, filled in
_TRIAL = {"reason": "—", "approver": "—", "days": 1, "procedure": SUSPEND_PROCEDURES[0], "step": "—", "link": "—"}


def step_label(event_type: str) -> str:
    """The button's Chinese label."""
    return EVENT_ZH.get(event_type, event_type)


def allowed_steps(
    rule: ItemRule, received_at: datetime, events: Sequence[Event], now: datetime, cal: WorkCalendar
) -> list[str]:
    """Event types the case rules accept next, at `now`, in button order."""
    out = []
    for t in STEP_ORDER:
        try:
            check_event(rule, received_at, events, Event(type=t, at=now, **_TRIAL), cal)
        except ValueError:
            continue
        out.append(t)
    return out


def zh(message: str) -> str:
    """The Chinese part of a bilingual message "中文 (English)" (what people read on the page)."""
    text = str(message)
    cut = text.find(" (")
    if cut > 0 and text.endswith(")") and text[cut + 2 : -1].isascii():
        return text[:cut]
    return text
