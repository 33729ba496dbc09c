"""The steps offered to a clerk are what the case rules accept next."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agent.steps import STEP_FIELDS, STEP_ORDER, allowed_steps, zh
from protocol.calendar import CST, default_calendar
from protocol.caseclock import Event, ItemRule

RULE = ItemRule(code="XK-001", case_type="promised", legal_days=20, promised_days=10)
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=CST)  # a Friday


def _events(*types: str) -> list[Event]:
    extra = {"suspend": {"procedure": "听证"}, "extend": {"days": 5, "reason": "r", "approver": "a"}}
    return [Event(type=t, at=T0 + timedelta(hours=i + 1), seq=i + 1, **extra.get(t, {})) for i, t in enumerate(types)]


@pytest.mark.parametrize(
    "history, offered",
    [
        ((), ["accept", "request_supplement", "reject", "withdraw"]),
        (("request_supplement",), ["accept", "supplement_received", "reject", "withdraw"]),
        (("accept",), ["step", "suspend", "extend", "approve", "deny", "complete", "transfer", "withdraw"]),
        (("accept", "suspend"), ["step", "resume", "extend", "withdraw"]),
        (("accept", "extend"), ["step", "suspend", "approve", "deny", "complete", "transfer", "withdraw"]),
        (("accept", "approve"), ["step", "complete", "deliver", "withdraw"]),
        (("accept", "complete"), ["deliver"]),
        (("accept", "complete", "deliver"), []),
        (("reject",), []),
    ],
)
def test_allowed_steps_per_state(history, offered):
    now = T0 + timedelta(days=1)
    assert allowed_steps(RULE, T0, _events(*history), now, default_calendar()) == offered


def test_no_extension_once_past_due():
    late = T0 + timedelta(days=30)  # past the 10 working days
    steps = allowed_steps(RULE, T0, _events("accept"), late, default_calendar())
    assert "extend" not in steps and "complete" in steps


def test_every_step_has_a_form_and_a_place():
    assert set(STEP_FIELDS) == set(STEP_ORDER)


def test_zh_keeps_the_chinese_part():
    assert zh("不予受理必须说明理由 (reject needs a reason)") == "不予受理必须说明理由"
    assert (
        zh("未知事项 (unknown item): 'X' is not in the catalog") == "未知事项 (unknown item): 'X' is not in the catalog"
    )
    assert zh("只有中文") == "只有中文"
