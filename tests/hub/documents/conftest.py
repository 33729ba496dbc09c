from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from hub.documents import DocumentFacts

CST = timezone(timedelta(hours=8))


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


def make_facts(**over) -> DocumentFacts:
    base = dict(
        case_no="JZ-DY-20260302-0007",
        item_name="食品经营许可（新办）",
        department="晋中市榆次区市场监督管理局",
        addressee="晋中市榆次区市场监督管理局",
        addressee_head="王建国",
        authority="晋中市政务服务电子监察中心",
        issue_date=date(2026, 11, 21),
        site_name="东阳镇便民服务中心",
        received_at=at(3, 2, 9, 30),
        accepted_at=at(3, 10, 15, 0),
        due_date=date(2026, 3, 24),
        legal_due_date=date(2026, 4, 7),
        days_overdue=12,
        light="red",
        violations=("acceptance_timeout", "late_supplement_notice"),
        timeline=(
            (at(3, 2, 9, 30), "收件"),
            (at(3, 10, 15, 0), "受理"),
            (at(3, 12, 10, 5), "办理环节：现场核查"),
            (at(4, 9, 16, 40), "办结"),
        ),
        reply_deadline=date(2026, 11, 28),
        contact="李明 0354-3031234",
        cc=("晋中市政务服务管理局",),
    )
    base.update(over)
    return DocumentFacts(**base)


@pytest.fixture
def facts() -> DocumentFacts:
    return make_facts()
