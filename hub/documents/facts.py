"""DocumentFacts: everything a document template needs about one case, and nothing about the applicant.

The facts carry the case (办件) as supervision sees it — case number, item, handling department,
dates, lateness, violations and the 环节 timeline — plus who the document goes to and who issues
it. There is deliberately no field for the applicant (申请人姓名、证件号码、电话、地址): a document
sent to a department about a late case must not spread the applicant's personal data, and
`facts_from_case` copies only whitelisted keys from a hub case, so an `applicant` there is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from protocol.caseclock_types import EVENT_ZH

Moment = date | datetime  # a date, or an instant (aware datetimes are shown in China time)


def _as_date(v: Any, name: str, *, optional: bool = True) -> date | None:
    """A date from a date, a datetime (its China-time date) or an ISO string."""
    if v is None or v == "":
        if optional:
            return None
        raise ValueError(f"{name} is required")
    if isinstance(v, datetime):
        return _cst(v).date()
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v[:10])
        except ValueError:
            pass
    raise ValueError(f"{name} must be a date (YYYY-MM-DD), got {v!r}")


def _as_moment(v: Any, name: str) -> Moment | None:
    """A datetime (kept as given) or a date; ISO strings are parsed (a 10-char string is a date)."""
    if v is None or v == "":
        return None
    if isinstance(v, (datetime, date)):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v) if len(v) == 10 else datetime.fromisoformat(v)
        except ValueError:
            pass
    raise ValueError(f"{name} must be a date or datetime, got {v!r}")


def _cst(dt: datetime) -> datetime:
    """An aware datetime in China Standard Time; a naive one is taken as already local."""
    from protocol.calendar import CST

    return dt.astimezone(CST) if dt.tzinfo is not None and dt.utcoffset() is not None else dt


def _texts(v: Iterable[Any] | None, name: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        raise ValueError(f"{name} must be a list of strings, not one string")
    out = tuple(str(x).strip() for x in v)
    if any(not x for x in out):
        raise ValueError(f"{name} must not contain empty strings")
    return out


@dataclass(frozen=True)
class DocumentFacts:
    """The facts one supervision document (文书) is rendered from. Plain types only.

    Required: case_no (办件编号), item_name (事项名称), department (承办部门), addressee (主送单位),
    authority (发文机关, printed in the red header and the signature), issue_date (成文日期).
    Lists may be given as lists; they are stored as tuples so facts are hashable and immutable.
    """

    case_no: str
    item_name: str
    department: str
    addressee: str
    authority: str
    issue_date: date
    addressee_head: str = ""  # 单位负责人 of the addressee, e.g. 王某某
    site_name: str = ""  # 办理地点, e.g. 东阳镇便民服务中心
    received_at: Moment | None = None  # 收件时间
    accepted_at: Moment | None = None  # 受理时间
    due_date: date | None = None  # 承诺办结期限 (promised)
    legal_due_date: date | None = None  # 法定办结期限
    days_overdue: int | None = None  # 超期工作日数 (None: not stated)
    light: str = ""  # red / yellow / green (预警状态), optional
    violations: tuple[str, ...] = ()  # codes, e.g. acceptance_timeout
    timeline: tuple[tuple[Moment, str], ...] = ()  # (time, 环节) rows, oldest first
    reply_deadline: date | None = None  # 回复期限; required for duban and order_explain
    requirements: tuple[str, ...] = ()  # overrides the template's default 要求 list
    contact: str = ""  # 联系人及电话 of the issuing authority
    cc: tuple[str, ...] = ()  # 抄送
    red_header: bool = True  # print the red 版头 (authority name + red rule)
    # what the document is about: a case (办件), a complaint (投诉: case_no holds the complaint
    # number) or a 差评 follow-up (回访件: case_no holds its id); see facts_from_complaint
    subject: str = "case"
    subject_rows: tuple[tuple[str, str], ...] = ()  # the facts table of a complaint / follow-up
    problem_texts: tuple[str, ...] = ()  # problems in words, after the violations

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)
        for name in ("case_no", "item_name", "department", "addressee", "authority"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{name} is required (non-empty text)")
            set_(name, v.strip())
        for name in ("addressee_head", "site_name", "light", "contact"):
            v = getattr(self, name)
            if v is None:
                v = ""
            if not isinstance(v, str):
                raise ValueError(f"{name} must be text, got {v!r}")
            set_(name, v.strip())
        set_("issue_date", _as_date(self.issue_date, "issue_date", optional=False))
        for name in ("due_date", "legal_due_date", "reply_deadline"):
            set_(name, _as_date(getattr(self, name), name))
        for name in ("received_at", "accepted_at"):
            set_(name, _as_moment(getattr(self, name), name))
        if self.days_overdue is not None:
            if isinstance(self.days_overdue, bool) or not isinstance(self.days_overdue, int) or self.days_overdue < 0:
                raise ValueError(f"days_overdue must be a non-negative integer, got {self.days_overdue!r}")
        set_("violations", _texts(self.violations, "violations"))
        set_("requirements", _texts(self.requirements, "requirements"))
        set_("cc", _texts(self.cc, "cc"))
        rows = []
        for i, row in enumerate(self.timeline or ()):
            if isinstance(row, Mapping):
                row = (row.get("at"), row.get("step"))
            try:
                at, step = row
            except (TypeError, ValueError):
                raise ValueError(f"timeline row {i + 1} must be (time, 环节), got {row!r}") from None
            at = _as_moment(at, f"timeline row {i + 1} time")
            if at is None or not isinstance(step, str) or not step.strip():
                raise ValueError(f"timeline row {i + 1} needs a time and a 环节 name, got {row!r}")
            rows.append((at, step.strip()))
        set_("timeline", tuple(rows))
        set_("red_header", bool(self.red_header))
        if self.subject not in SUBJECTS:
            raise ValueError(f"subject must be one of {', '.join(SUBJECTS)}, got {self.subject!r}")
        set_("problem_texts", _texts(self.problem_texts, "problem_texts"))
        pairs = []
        for row in self.subject_rows or ():
            if isinstance(row, str) or len(row) != 2:
                raise ValueError(f"subject_rows must be (label, value) pairs, got {row!r}")
            pairs.append((str(row[0]), str(row[1])))
        set_("subject_rows", tuple(pairs))

    def to_dict(self) -> dict:
        """JSON-able form: dates and datetimes as ISO 8601 strings, tuples as lists."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (date, datetime)):
                v = v.isoformat()
            elif f.name == "timeline":
                v = [[at.isoformat(), step] for at, step in v]
            elif f.name == "subject_rows":
                v = [list(r) for r in v]
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DocumentFacts:
        """Inverse of to_dict; unknown keys are an error (so a stray `applicant` cannot slip in)."""
        names = {f.name for f in fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise ValueError(f"unknown fact(s): {', '.join(extra)}")
        return cls(**dict(d))


SUBJECTS = ("case", "complaint", "followup")
SUMMARY_MAX = 200  # characters of a complaint's text quoted in a document
_PHONE = re.compile(r"\+?\d[\d\s-]{5,}\d")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def scrub(text: str, private: Iterable[str] = ()) -> str:
    """A citizen's words fit for a document: each of `private` (the complainant's name, phone,
    e-mail) and anything shaped like a phone number or an e-mail address replaced by ＊＊＊,
    cut to SUMMARY_MAX characters."""
    out = text or ""
    for word in sorted({w for w in private if w and w.strip()}, key=len, reverse=True):
        out = out.replace(word, "＊＊＊")
    out = _EMAIL.sub("＊＊＊", _PHONE.sub("＊＊＊", out))
    out = " ".join(out.split())
    return out if len(out) <= SUMMARY_MAX else out[: SUMMARY_MAX - 1] + "…"


# keys of a complaint row (hub/complaints.py) a document may use: never contact_* nor query_code
COMPLAINT_KEYS = ("complaint_no", "about_kind", "about", "department", "text", "step_due", "filed_ms", "light")
ABOUT_ZH = {"case": "办件", "window": "窗口", "person": "工作人员", "hall": "服务大厅"}


def facts_from_complaint(
    complaint: Mapping[str, Any],
    *,
    authority: str,
    issue_date: date,
    timeline: Iterable[tuple[Moment, str]] = (),
    private: Iterable[str] = (),
    addressee: str | None = None,
    reply_deadline: date | None = None,
    calendar: Any = None,
    site_name: str = "",
    contact: str = "",
) -> DocumentFacts:
    """DocumentFacts about a complaint (投诉) whose department is late with its reply. Only
    COMPLAINT_KEYS are read; the complaint's text is quoted through `scrub` with `private` (the
    caller passes the contact details, so a complainant who wrote their own number or name in
    the text is not named either). `timeline`: (time, 环节) rows already in Chinese."""
    c = {k: complaint.get(k) for k in COMPLAINT_KEYS}
    no, dept = c["complaint_no"] or "", c["department"] or ""
    due = _as_date(c["step_due"], "step_due")
    late = None
    if due is not None and calendar is not None and issue_date > due:
        late = calendar.working_days_between(due, issue_date)
    kind = ABOUT_ZH.get(c["about_kind"] or "", c["about_kind"] or "")
    filed = None
    if c["filed_ms"]:
        from protocol.calendar import CST

        filed = datetime.fromtimestamp(int(c["filed_ms"]) / 1000, CST)
    overdue = f"{late}个工作日" if late else "未超期"
    rows = (
        ("投诉编号", no),
        ("投诉对象", f"{kind}：{scrub(c['about'] or '', private)}"),
        ("承办部门", dept or "—"),
        ("办理地点", site_name or "—"),
        ("投诉时间", _fmt(filed)),
        ("答复期限", _fmt(due)),
        ("超期情况", overdue),
        ("投诉内容摘要", scrub(c["text"] or "", private) or "—"),
    )
    problem = f"投诉答复期限为{_fmt(due)}，逾期未答复" + (f"，已超期{late}个工作日" if late else "")
    return DocumentFacts(
        case_no=no,
        item_name="群众投诉",
        department=dept or "—",
        addressee=addressee or dept or "—",
        authority=authority,
        issue_date=issue_date,
        site_name=site_name,
        received_at=filed,
        due_date=due,
        light=c["light"] or "",
        timeline=tuple(timeline),
        reply_deadline=reply_deadline,
        requirements=(
            "立即核查该投诉反映的问题，依法依规作出答复，不得无故拖延。",
            "对逾期未答复的原因逐项查明，明确责任人员。",
            "答复内容应当具体明确，并告知投诉人办理结果。",
        ),
        contact=contact,
        subject="complaint",
        subject_rows=rows,
        problem_texts=(problem,),
    )


def facts_from_followup(
    followup: Mapping[str, Any],
    *,
    authority: str,
    issue_date: date,
    timeline: Iterable[tuple[Moment, str]] = (),
    addressee: str | None = None,
    reply_deadline: date | None = None,
    calendar: Any = None,
    site_name: str = "",
    contact: str = "",
) -> DocumentFacts:
    """DocumentFacts about a 差评 follow-up (回访件) not done in its limit: the rating's level and
    channel, the case or window, the department and the limit. No citizen's data (a keypad vote
    has none; a portal rating's comment is not quoted)."""
    f = followup
    fid = str(f.get("id") or "")
    due = _as_date(f.get("due"), "due")
    late = None
    if due is not None and calendar is not None and issue_date > due:
        late = calendar.working_days_between(due, issue_date)
    channel = {"keypad": "评价器", "portal": "网上评价"}.get(f.get("channel") or "", f.get("channel") or "")
    where = f"办件 {f['case_no']}" if f.get("case_no") else f"窗口 {f.get('window') or '—'}"
    rated = datetime.fromtimestamp(int(f["rated_ms"]) / 1000, _cst_tz()) if f.get("rated_ms") else None
    dept = f.get("department") or ""
    rows = (
        ("回访件编号", f"#{fid}"),
        ("评价", f"{channel}「{f.get('level_name') or ''}」"),
        ("评价对象", where),
        ("承办部门", dept or "—"),
        ("评价时间", _fmt(rated)),
        ("办理期限", f"{_fmt(due)}（{f.get('limit_days') or '—'}个工作日）"),
        ("超期情况", f"{late}个工作日" if late else "未超期"),
    )
    problem = f"差评回访期限为{_fmt(due)}，逾期未完成核实、整改、回访" + (f"，已超期{late}个工作日" if late else "")
    return DocumentFacts(
        case_no=fid,
        item_name="差评回访",
        department=dept or "—",
        addressee=addressee or dept or "—",
        authority=authority,
        issue_date=issue_date,
        site_name=site_name,
        due_date=due,
        light=f.get("light") or "",
        timeline=tuple(timeline),
        reply_deadline=reply_deadline,
        requirements=(
            "立即核实该差评反映的问题，完成整改并回访评价人。",
            "对逾期未办结的原因逐项查明，明确责任人员。",
        ),
        contact=contact,
        subject="followup",
        subject_rows=rows,
        problem_texts=(problem,),
    )


def _cst_tz():
    from protocol.calendar import CST

    return CST


def _fmt(v) -> str:
    """2026年3月2日 for a date or an instant's day, — for none (the facts table's cells)."""
    if v is None:
        return "—"
    if isinstance(v, datetime):
        v = _cst(v).date()
    return f"{v.year}年{v.month}月{v.day}日"


# keys of a hub case (hub.api get_case / the cases table) that documents may use
CASE_KEYS = (
    "case_no",
    "item_name",
    "department",
    "received_at",
    "due_date",
    "legal_due_date",
    "violations",
    "light",
    "events",
    "status",
    "closed",
)


def facts_from_case(
    case: Mapping[str, Any],
    *,
    authority: str,
    issue_date: date,
    addressee: str | None = None,
    addressee_head: str = "",
    reply_deadline: date | None = None,
    days_overdue: int | None = None,
    calendar: Any = None,
    site_name: str = "",
    requirements: Iterable[str] = (),
    contact: str = "",
    cc: Iterable[str] = (),
    red_header: bool = True,
) -> DocumentFacts:
    """DocumentFacts from a hub case dict (as `GET /api/cases/{case_no}` returns it, or a `cases`
    row plus an `events` list). Only CASE_KEYS are read: `applicant`, `clerk`, `window`,
    `query_code` and event `reason` texts never reach the document.

    `addressee` defaults to the case's department. `days_overdue`, when not given and a
    `calendar` (protocol.calendar.WorkCalendar) is, counts the working days after the promised
    due date up to the completion day (办结), or up to issue_date for an open case.
    """
    c = {k: case.get(k) for k in CASE_KEYS}
    violations = c["violations"] or []
    if isinstance(violations, str):
        violations = json.loads(violations)
    received = _as_moment(c["received_at"], "received_at")
    events = list(c["events"] or [])
    timeline: list[tuple[Moment, str]] = []
    if received is not None:
        timeline.append((received, EVENT_ZH["receive"]))
    accepted_at = None
    completed_on: date | None = None
    for e in events:
        etype, at = e.get("type"), _as_moment(e.get("at"), "event time")
        if at is None or not etype:
            continue
        label = EVENT_ZH.get(etype, etype)
        if etype == "step" and e.get("step"):
            label = f"办理环节：{e['step']}"
        elif etype == "extend" and e.get("days"):
            label = f"延期（{int(e['days'])}个工作日）"
        elif etype == "suspend" and e.get("procedure"):
            label = f"特别程序开始（{e['procedure']}）"
        timeline.append((at, label))
        if etype == "accept" and accepted_at is None:
            accepted_at = at
        if etype == "complete" and completed_on is None:
            completed_on = _as_date(at, "complete time")
    due = _as_date(c["due_date"], "due_date")
    if days_overdue is None and calendar is not None and due is not None:
        end = completed_on or _as_date(issue_date, "issue_date", optional=False)
        days_overdue = max(0, calendar.working_days_between(due, end))
    return DocumentFacts(
        case_no=c["case_no"] or "",
        item_name=c["item_name"] or "",
        department=c["department"] or "",
        addressee=addressee or c["department"] or "",
        addressee_head=addressee_head,
        authority=authority,
        issue_date=issue_date,
        site_name=site_name,
        received_at=received,
        accepted_at=accepted_at,
        due_date=due,
        legal_due_date=_as_date(c["legal_due_date"], "legal_due_date"),
        days_overdue=days_overdue,
        light=c["light"] or "",
        violations=tuple(violations),
        timeline=tuple(timeline),
        reply_deadline=reply_deadline,
        requirements=tuple(requirements),
        contact=contact,
        cc=tuple(cc),
        red_header=red_header,
    )


__all__ = ["DocumentFacts", "facts_from_case", "facts_from_complaint", "facts_from_followup", "CASE_KEYS", "scrub"]
