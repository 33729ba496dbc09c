"""督办 tickets: the escalation ladder after a red card, as pure rules (no I/O).

A red card opens a ticket at the first ladder level (default 责令说明理由, with a 督办通知);
the department replies; a supervisor accepts or rejects the reply. No reply by the deadline, or
a rejected reply, escalates to the next level (监察建议书, then 监察决定书). Every step is a
ticket event with actor, time and text.
"""

from __future__ import annotations

from datetime import date

from protocol.calendar import WorkCalendar

LEVEL_TITLES = {
    "duban": "督办通知",
    "order_explain": "责令说明理由",
    "inquiry": "电子监察问询",
    "rectify": "电子监察整改通知",
    "suggestion": "监察建议",
    "decision": "监察决定",
}
# documents issued when a ticket opens at a level
LEVEL_DOCUMENTS = {
    "duban": ("duban",),
    "order_explain": ("duban", "order_explain"),
    "inquiry": ("inquiry",),
    "rectify": ("rectify",),
    "suggestion": ("suggestion",),
    "decision": ("decision",),
}
OPEN = "open"
REPLIED = "replied"
STATUS_ZH = {
    "open": "待回复",
    "replied": "已回复待审核",
    "accepted": "已采纳",
    "escalated": "已升级",
    "final": "已作出监察决定",
    "closed": "已关闭",
}


# what a ticket is about (tickets.subject); tickets.case_no holds the subject's key
CASE, COMPLAINT, FOLLOWUP = "case", "complaint", "followup"
SUBJECTS = (CASE, COMPLAINT, FOLLOWUP)
SUBJECT_ZH = {CASE: "办件", COMPLAINT: "投诉", FOLLOWUP: "差评回访件"}


def subject_label(subject: str, key: str) -> str:
    """How people read a ticket's subject: 办件 X, 投诉 TS…, 差评回访件 #12."""
    if subject == FOLLOWUP:
        return f"差评回访件 #{key}"
    return f"{SUBJECT_ZH.get(subject, subject)} {key}"


class TicketError(ValueError):
    """An action the ticket's state does not allow; the API answers 409."""


def reply_due(opened: date, reply_days: int, cal: WorkCalendar) -> date:
    """The reply deadline: `reply_days` working days after the day the ticket opened."""
    return cal.add_working_days(opened, reply_days)[0]


def next_level(ladder: list[str], level: str) -> str | None:
    """The level after `level` on the ladder, None at the top. A ticket off the ladder (a 督办
    opened by two yellow cards, or by hand) continues at the ladder's first level."""
    if level not in ladder:
        return ladder[0] if ladder else None
    i = ladder.index(level)
    return ladder[i + 1] if i + 1 < len(ladder) else None


def check_reply(status: str) -> None:
    """A department may reply only to an open ticket."""
    if status != OPEN:
        raise TicketError(
            f"该督办件状态为「{STATUS_ZH.get(status, status)}」，不能回复 "
            f"(ticket is {status}; only open tickets take a reply)"
        )


def check_review(status: str, decision: str) -> None:
    """A supervisor reviews a replied ticket: accept or reject."""
    if decision not in ("accept", "reject"):
        raise TicketError("decision must be accept or reject")
    if status != REPLIED:
        raise TicketError(
            f"该督办件状态为「{STATUS_ZH.get(status, status)}」，不能审核 "
            f"(ticket is {status}; only replied tickets can be reviewed)"
        )


def after_review(decision: str, level: str, ladder: list[str]) -> tuple[str, str | None]:
    """(new status, level to open next or None) after a supervisor's decision."""
    if decision == "accept":
        return "accepted", None
    nxt = next_level(ladder, level)
    return ("escalated", nxt) if nxt else ("final", None)


def is_overdue(status: str, due: date, today: date) -> bool:
    """An open ticket whose reply deadline has passed (end of the due day)."""
    return status == OPEN and today > due


def red_equivalents(yellow_cards: int, red_cards: int, yellow_per_red: int) -> int:
    """Cards on one case as counted for scoring: each red, plus one per `yellow_per_red` yellows."""
    return red_cards + yellow_cards // yellow_per_red
