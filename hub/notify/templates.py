"""Chinese message templates (短信/邮件模板): defaults, checks and rendering.

Templates are plain `str.format` strings keyed by name. Each kind of message has a text
(`yellow`), an e-mail subject (`yellow.subject`) and a one-line summary used inside a digest
(`yellow.line`). Operators override any key through `NotifyConfig.templates`; placeholders are
checked when the configuration loads, missing facts when a message is enqueued.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

KINDS = (
    "yellow",
    "red",
    "supervision",
    "reply_due",
    "complaint_assigned",
    "complaint_replied",
    "ticket_subject",
    "followup_opened",
    "followup_yellow",
    "followup_red",
)  # what callers may enqueue
DIGEST = "digest"  # built by the worker only

# Placeholders each kind may use. `recipient` (the person's name) and `site` are optional
# extras any kind may use when the caller supplies them.
_COMMON = {"recipient", "site", "department", "case_no", "item_name"}
FIELDS: dict[str, frozenset[str]] = {
    "yellow": frozenset(_COMMON | {"due_date", "remaining"}),
    "red": frozenset(_COMMON | {"due_date", "overdue", "reason"}),
    "supervision": frozenset(_COMMON | {"title", "doc_no", "reply_due_date", "due_date", "overdue"}),
    "reply_due": frozenset(_COMMON | {"title", "doc_no", "reply_due_date", "remaining"}),
    "complaint_assigned": frozenset({"recipient", "department", "complaint_no", "reply_due_date"}),
    "complaint_replied": frozenset({"recipient", "complaint_no", "confirm_due_date"}),
    "ticket_subject": frozenset({"recipient", "department", "subject", "title", "reply_due_date"}),
    "followup_opened": frozenset({"recipient", "department", "followup_id", "level_name", "where", "due_date"}),
    "followup_yellow": frozenset({"recipient", "department", "followup_id", "level_name", "where", "due_date"}),
    "followup_red": frozenset({"recipient", "department", "followup_id", "level_name", "where", "due_date"}),
    DIGEST: frozenset({"recipient", "count", "red", "yellow", "supervision", "reply_due", "lines", "more"}),
    "digest.more": frozenset({"count"}),
    "email_footer": frozenset(),
}

DEFAULT_TEMPLATES: dict[str, str] = {
    # 黄牌预警
    "yellow": "【电子监察】{department}：办件{case_no}（{item_name}）将于{due_date}到期，"
    "剩余{remaining}个工作日，请及时办理。",
    "yellow.subject": "【黄牌预警】办件{case_no}将于{due_date}到期",
    "yellow.line": "{case_no}（{item_name}，{due_date}到期）",
    # 红牌
    "red": "【电子监察】{department}：办件{case_no}（{item_name}）已超过承诺时限（{due_date}），"
    "亮红牌，请立即办理并说明理由。",
    "red.subject": "【红牌】办件{case_no}已超期",
    "red.line": "{case_no}（{item_name}，已超期）",
    # 督办通知 and the later rungs of the ladder; {title} = 督办通知 / 责令说明理由 / 电子监察问询 …
    "supervision": "【电子监察】{department}：电子监察中心就办件{case_no}（{item_name}）发出{title}，"
    "请于{reply_due_date}前书面回复办理情况和超期理由。",
    "supervision.subject": "【{title}】办件{case_no}，请于{reply_due_date}前回复",
    "supervision.line": "{case_no}（{title}，{reply_due_date}前回复）",
    # the reply to a 督办 is nearly due
    "reply_due": "【电子监察】{department}：办件{case_no}的{title}回复将于{reply_due_date}到期，"
    "剩余{remaining}个工作日，请及时回复。",
    "reply_due.subject": "【回复提醒】办件{case_no}的{title}回复将于{reply_due_date}到期",
    "reply_due.line": "{case_no}（{title}回复{reply_due_date}到期）",
    # 投诉 (hub/complaints.py): assigned to a department; the department's reply, to the citizen
    "complaint_assigned": "【电子监察】{department}：投诉{complaint_no}已交由贵单位办理，请于{reply_due_date}前答复。",
    "complaint_assigned.subject": "【投诉交办】投诉{complaint_no}，请于{reply_due_date}前答复",
    "complaint_assigned.line": "投诉{complaint_no}（{reply_due_date}前答复）",
    "complaint_replied": "【政务服务投诉】您的投诉{complaint_no}已有答复，请凭查询码查看，"
    "并于{confirm_due_date}前确认满意或提出异议。",
    "complaint_replied.subject": "您的投诉{complaint_no}已有答复",
    "complaint_replied.line": "投诉{complaint_no}已答复",
    # a 督办 about a complaint or a 差评 follow-up (hub/supervision.py, ticket subjects)
    "ticket_subject": "【电子监察】{department}：电子监察中心就{subject}发出{title}，请于{reply_due_date}前书面回复办理情况。",
    "ticket_subject.subject": "【{title}】{subject}，请于{reply_due_date}前回复",
    "ticket_subject.line": "{subject}（{title}，{reply_due_date}前回复）",
    # 差评回访 (hub/followups.py): opened, nearly due, late
    "followup_opened": "【电子监察】{department}：收到差评「{level_name}」（{where}），已生成回访件#{followup_id}，"
    "请于{due_date}前完成核实、整改、回访。",
    "followup_opened.subject": "【差评回访】回访件#{followup_id}，请于{due_date}前办结",
    "followup_opened.line": "回访件#{followup_id}（{due_date}前办结）",
    "followup_yellow": "【电子监察】{department}：差评回访件#{followup_id}（{where}）将于{due_date}到期，请及时办结。",
    "followup_yellow.subject": "【回访预警】回访件#{followup_id}将于{due_date}到期",
    "followup_yellow.line": "回访件#{followup_id}（{due_date}到期）",
    "followup_red": "【电子监察】{department}：差评回访件#{followup_id}（{where}）已超过期限（{due_date}），"
    "亮红灯，请立即办结。",
    "followup_red.subject": "【回访逾期】回访件#{followup_id}已超期",
    "followup_red.line": "回访件#{followup_id}（已超期）",
    # 汇总 (digest): one message instead of many for one recipient
    "digest": "【电子监察】您有{count}件办件即将到期或已超期：{lines}{more}，请登录电子监察系统及时办理。",
    "digest.subject": "【电子监察】您有{count}条提醒（红牌{red}，黄牌{yellow}，督办{supervision}）",
    "digest.more": "等{count}件",
    "email_footer": "（本邮件由电子监察系统自动发送，请勿直接回复。）",
}


class TemplateError(ValueError):
    """A template names an unknown placeholder, or a fact it needs is missing."""


def _kind(key: str) -> str:
    return key.split(".", 1)[0] if key not in FIELDS else key


def placeholders(text: str) -> set[str]:
    """The field names a format string uses; rejects attribute/index access and positional fields."""
    names = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier():
            raise TemplateError(f"placeholder {{{field}}} must be a plain name such as {{case_no}}")
        names.add(field)
    return names


def check_templates(overrides: Mapping[str, str]) -> dict[str, str]:
    """Validate operator overrides (known keys, known placeholders); returns them unchanged."""
    for key, text in overrides.items():
        if key not in DEFAULT_TEMPLATES:
            raise TemplateError(f"unknown template {key!r}; known: {', '.join(sorted(DEFAULT_TEMPLATES))}")
        try:
            used = placeholders(text)
        except (TemplateError, ValueError) as exc:
            raise TemplateError(f"template {key!r}: {exc}") from None
        unknown = used - FIELDS[_kind(key)]
        if unknown:
            raise TemplateError(
                f"template {key!r} uses unknown placeholder(s) "
                f"{', '.join('{' + u + '}' for u in sorted(unknown))}; allowed: "
                f"{', '.join(sorted(FIELDS[_kind(key)]))}"
            )
    return dict(overrides)


def render(templates: Mapping[str, str], key: str, facts: Mapping[str, object]) -> str:
    """Fill template `key` with `facts`; a missing fact raises TemplateError naming it."""
    text = templates[key]
    missing = placeholders(text) - set(facts)
    if missing:
        raise TemplateError(
            f"template {key!r} needs fact(s) {', '.join(sorted(missing))}; got {', '.join(sorted(facts)) or 'none'}"
        )
    return text.format_map({k: "" if v is None else v for k, v in facts.items()})
