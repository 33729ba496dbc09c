"""Templates: defaults render the documented Chinese text, overrides are checked at load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.notify.config import NotifyConfig
from hub.notify.policy import digest_message
from hub.notify.templates import DEFAULT_TEMPLATES, FIELDS, KINDS, TemplateError, placeholders, render

FACTS = {
    "department": "市场监督管理局",
    "case_no": "S01-0007",
    "item_name": "食品经营许可",
    "due_date": "2025-03-10",
    "remaining": 1,
    "overdue": 2,
    "title": "督办通知",
    "reply_due_date": "2025-03-14",
    "complaint_no": "TS20250310123456",  # 投诉 (hub/complaints.py)
    "confirm_due_date": "2025-03-17",
    "subject": "投诉 TS20250310123456",  # a 督办 about a complaint or a follow-up (ticket_subject)
    "followup_id": "12",  # 差评回访 (hub/followups.py)
    "level_name": "非常不满意",
    "where": "窗口 3（赵六）",
}


def test_followup_and_subject_notices_read_as_written():
    assert render(DEFAULT_TEMPLATES, "followup_opened", FACTS) == (
        "【电子监察】市场监督管理局：收到差评「非常不满意」（窗口 3（赵六）），已生成回访件#12，"
        "请于2025-03-10前完成核实、整改、回访。"
    )
    assert render(DEFAULT_TEMPLATES, "followup_red", FACTS) == (
        "【电子监察】市场监督管理局：差评回访件#12（窗口 3（赵六））已超过期限（2025-03-10），亮红灯，请立即办结。"
    )
    assert render(DEFAULT_TEMPLATES, "ticket_subject", FACTS) == (
        "【电子监察】市场监督管理局：电子监察中心就投诉 TS20250310123456发出督办通知，请于2025-03-14前书面回复办理情况。"
    )


def test_yellow_default_is_the_documented_text():
    assert render(DEFAULT_TEMPLATES, "yellow", FACTS) == (
        "【电子监察】市场监督管理局：办件S01-0007（食品经营许可）将于2025-03-10到期，剩余1个工作日，请及时办理。"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_text_subject_and_line_within_its_fields(kind):
    for key in (kind, f"{kind}.subject", f"{kind}.line"):
        text = render(DEFAULT_TEMPLATES, key, FACTS)
        assert text and "{" not in text
        assert placeholders(DEFAULT_TEMPLATES[key]) <= FIELDS[kind]


def test_every_default_template_passes_the_override_check():
    NotifyConfig(templates=dict(DEFAULT_TEMPLATES))


def test_override_replaces_only_its_key():
    cfg = NotifyConfig(templates={"red": "【监察】{recipient}，办件{case_no}已超期{overdue}个工作日。"})
    t = cfg.all_templates()
    assert render(t, "red", {**FACTS, "recipient": "张三"}) == "【监察】张三，办件S01-0007已超期2个工作日。"
    assert t["yellow"] == DEFAULT_TEMPLATES["yellow"]


@pytest.mark.parametrize(
    "templates, err",
    [
        ({"green": "x"}, "unknown template 'green'"),
        ({"yellow": "{case_number}"}, "unknown placeholder(s) {case_number}"),
        ({"yellow": "{case_no.upper}"}, "must be a plain name"),
        ({"yellow": "{0}"}, "must be a plain name"),
        ({"yellow": "未闭合{case_no"}, "template 'yellow'"),
    ],
)
def test_bad_overrides_fail_at_config_load(templates, err):
    with pytest.raises(ValidationError) as exc:
        NotifyConfig(templates=templates)
    assert err in str(exc.value)


def test_missing_fact_is_named():
    with pytest.raises(TemplateError, match=r"needs fact\(s\) remaining"):
        render(DEFAULT_TEMPLATES, "yellow", {k: v for k, v in FACTS.items() if k != "remaining"})


def test_sms_digest_lists_the_most_urgent_first_then_counts_the_rest():
    items = [("yellow", f"Y{i}") for i in range(10)] + [("red", "R1"), ("supervision", "D1")]
    text, subject, facts = digest_message(DEFAULT_TEMPLATES, "sms", items, max_lines=3)
    assert text == "【电子监察】您有12件办件即将到期或已超期：R1；D1；Y0等12件，请登录电子监察系统及时办理。"
    assert subject == "【电子监察】您有12条提醒（红牌1，黄牌10，督办1）"
    assert facts == {"red": 1, "supervision": 1, "reply_due": 0, "yellow": 10, "count": 12}


def test_email_digest_appends_the_full_list():
    items = [("yellow", f"Y{i}") for i in range(8)]
    text, _, _ = digest_message(DEFAULT_TEMPLATES, "email", items, max_lines=2)
    assert "Y0；Y1等8件" in text and text.endswith("\n7. Y6\n8. Y7")
