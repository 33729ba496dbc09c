"""投诉 rules and store on both engines (hub/complaints.py): every transition and refusal, the
working-day limits (against tests/calendar_reference.py, with `now` passed in), the sweep's
yellow/red/督办 and auto-close, the notifications in the outbox, nothing deleted."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from hub import complaints as cp
from hub.config import Complaints, Supervision
from hub.notify import Notifier
from hub.notify.config import NotifyConfig
from hub.notify.directory import Department, Directory, Person, save_directory
from hub.store import load_calendar
from hub.supervision import Supervisor
from protocol.calendar import CST
from tests.calendar_reference import is_working_day

NOW = datetime(2026, 9, 28, 10, 0, tzinfo=CST)  # Monday before the National Day holidays
DEPT = "市场监督管理局"
CFG = Complaints()
FILING = {"about_kind": "window", "about": "3号窗口", "text": "窗口人员态度生硬", "contact_name": "王五",
          "contact_phone": "13912345678", "contact_email": "wang5@example.cn", "department": ""}  # fmt: skip


def ref_add(start: date, n: int) -> date:
    """The n-th working day after start, by the independent reference."""
    d = start
    while n:
        d += timedelta(days=1)
        n -= is_working_day(d)
    return d


def tx(conn, fn):
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


def new(db, now=NOW, **over):
    values, errors = cp.clean({**FILING, **over})
    assert not errors
    return tx(db, lambda c: cp.file_complaint(c, values, CFG, load_calendar(c), now))


def step(db, no, action, now=NOW, text="", **kw):
    return tx(db, lambda c: cp.act(c, no, action, "监察员甲", text, CFG, load_calendar(c), now, **kw))


def events(db, no):
    return [
        r[0]
        for r in db.execute(
            "SELECT e.action FROM complaint_events e JOIN complaints c ON c.id = e.complaint_id "
            "WHERE c.complaint_no=? ORDER BY e.id",
            (no,),
        )
    ]


@pytest.mark.parametrize(
    "start", [date(2026, 9, 28), date(2026, 9, 30), date(2026, 10, 1), date(2026, 12, 31), date(2027, 2, 5)]
)
@pytest.mark.parametrize("status", ["submitted", "assigned", "reopened", "replied"])
def test_step_limits_are_working_days_from_hub_yaml(db, start, status):
    n = cp.step_limit_days(status, CFG)
    assert cp.step_due(status, start, CFG, load_calendar(db)) == ref_add(start, n)


def test_the_whole_walk_records_every_step_and_deletes_nothing(db):
    no, code = new(db)
    assert no.startswith("TS20260928") and len(code) == cp.CODE_LEN
    c = step(db, no, "accept")
    assert c["status"] == "accepted" and c["step_due"] is None
    c = step(db, no, "assign", department=DEPT)
    assert c["status"] == "assigned" and c["department"] == DEPT
    assert c["step_due"] == ref_add(NOW.date(), CFG.reply_days).isoformat()
    later = NOW + timedelta(days=20)
    c = step(db, no, "reply", later, text="已批评教育当事人")
    assert c["status"] == "replied" and c["step_due"] == ref_add(later.date(), CFG.confirm_days).isoformat()
    c = step(db, no, "reopen", later, text="态度仍然不好")
    assert c["status"] == "reopened" and c["reopened"] == 1
    c = step(db, no, "reply", later, text="已调离窗口")
    c = step(db, no, "confirm", later)
    assert c["status"] == "closed"
    assert events(db, no) == ["file", "accept", "assign", "reply", "reopen", "reply", "confirm"]
    view = cp.complaint_view(db, no, private=True)
    assert [e["text"] for e in view["events"]][3:6] == ["已批评教育当事人", "态度仍然不好", "已调离窗口"]
    assert view["events"][1]["actor"] == "监察员甲" and view["events"][1]["at_ms"] == int(NOW.timestamp() * 1000)


@pytest.mark.parametrize(
    "path, action",
    [
        ((), "assign"),
        ((), "reply"),
        ((), "confirm"),
        ((), "reopen"),
        (("accept",), "accept"),
        (("accept",), "refuse"),
        (("refuse",), "accept"),
        (("accept", "assign"), "confirm"),
        (("accept", "assign", "reply", "confirm"), "reopen"),
    ],
)
def test_steps_out_of_order_are_refused_in_chinese(db, path, action):
    no, _ = new(db)
    for a in path:
        step(db, no, a, text="理由", department=DEPT)
    before = events(db, no)
    with pytest.raises(cp.ComplaintError, match="不能"):
        step(db, no, action, text="理由", department=DEPT)
    assert events(db, no) == before


def test_refusal_needs_a_reason_and_is_final(db):
    no, _ = new(db)
    with pytest.raises(cp.ComplaintError, match="不予受理的理由"):
        step(db, no, "refuse")
    c = step(db, no, "refuse", text="不属于政务服务事项")
    assert c["status"] == "refused" and c["step_due"] is None
    assert cp.complaint_view(db, no, private=False)["events"][-1]["text"] == "不属于政务服务事项"


def test_reopening_is_bounded_and_texts_are_bounded(db):
    no, _ = new(db)
    step(db, no, "accept")
    step(db, no, "assign", department=DEPT)
    with pytest.raises(cp.ComplaintError, match="过长"):
        step(db, no, "reply", text="字" * (cp.TEXT_MAX + 1))
    for _ in range(CFG.max_reopen):
        step(db, no, "reply", text="答复")
        step(db, no, "reopen", text="不满意")
    step(db, no, "reply", text="答复")
    with pytest.raises(cp.ComplaintError, match="不能再次"):
        step(db, no, "reopen", text="不满意")


@pytest.mark.parametrize(
    "over, field",
    [
        ({"about_kind": "mayor"}, "about_kind"),
        ({"text": ""}, "text"),
        ({"text": "长" * 2001}, "text"),
        ({"contact_phone": "", "contact_email": ""}, "contact_phone"),
        ({"contact_phone": "12345"}, "contact_phone"),
        ({"contact_email": "not-mail"}, "contact_email"),
        ({"contact_name": "名" * 51}, "contact_name"),
        ({"about": ""}, "about"),
    ],
)
def test_filing_is_validated_field_by_field(over, field):
    _values, errors = cp.clean({**FILING, **over})
    assert field in errors and errors[field]


def _sweep(db, now):
    sup = Supervisor(Supervision(), calendar=lambda: load_calendar(db))
    sup.complaints_cfg = CFG
    return tx(db, lambda c: sup.sweep(c, now))


def _row(db, no):
    cur = db.execute("SELECT status, light, ticket_id FROM complaints WHERE complaint_no=?", (no,))
    return cur.fetchone()


def test_the_sweep_lights_yellow_then_red_and_opens_one_duban_per_round(db):
    no, _ = new(db)
    step(db, no, "accept")
    step(db, no, "assign", department=DEPT)
    due = ref_add(NOW.date(), CFG.reply_days)
    at = lambda d: datetime.combine(d, NOW.timetz())
    _sweep(db, at(ref_add(NOW.date(), 1)))
    assert _row(db, no)[1] == "green"
    day_before = due - timedelta(days=1)
    while not is_working_day(day_before):
        day_before -= timedelta(days=1)
    _sweep(db, at(day_before))
    assert _row(db, no)[1] == "yellow"  # one working day left (complaints.yellow_days)
    _sweep(db, at(due))
    assert _row(db, no)[1] == "yellow"  # the due day itself is still in time
    _sweep(db, at(due + timedelta(days=1)))
    status, light, tid = _row(db, no)
    assert (status, light) == ("assigned", "red") and tid is not None
    t = db.execute(
        "SELECT case_no, department, level, status, reason, subject FROM tickets WHERE id=?", (tid,)
    ).fetchone()
    assert t[:4] == (no, DEPT, "duban", "open") and no in t[4] and due.isoformat() in t[4]
    assert t[5] == "complaint"
    # later sweeps: no second 督办 for the same round; the ticket left unanswered climbs the
    # ladder as a case's does (督办 is off the ladder: its first rung, 责令说明理由, comes next)
    _sweep(db, at(due + timedelta(days=40)))
    rows = db.execute("SELECT level, status, subject, case_no, parent_id FROM tickets ORDER BY id").fetchall()
    assert rows == [("duban", "escalated", "complaint", no, None), ("order_explain", "open", "complaint", no, tid)]
    assert events(db, no)[-1] == "ticket"
    # a reply, a reopening: a new round, late again → a new 督办 of its own
    late = at(due + timedelta(days=41))
    step(db, no, "reply", late, text="已整改")
    step(db, no, "reopen", late, text="没有整改")
    _sweep(db, late + timedelta(days=60))
    levels = [r[0] for r in db.execute("SELECT level FROM tickets ORDER BY id")]
    assert levels == ["duban", "order_explain", "suggestion", "duban"]


def test_a_late_acceptance_turns_red_without_a_ticket(db):
    no, _ = new(db)
    due = ref_add(NOW.date(), CFG.accept_days)
    _sweep(db, datetime.combine(due + timedelta(days=1), NOW.timetz()))
    assert _row(db, no) == ("submitted", "red", None)


def test_after_the_confirm_window_the_complaint_closes_itself(db):
    no, _ = new(db)
    step(db, no, "accept")
    step(db, no, "assign", department=DEPT)
    c = step(db, no, "reply", text="已答复")
    due = date.fromisoformat(c["step_due"])
    assert due == ref_add(NOW.date(), CFG.confirm_days)
    _sweep(db, datetime.combine(due, NOW.timetz()))
    assert _row(db, no)[0] == "replied"
    _sweep(db, datetime.combine(due + timedelta(days=1), NOW.timetz()))
    assert _row(db, no)[0] == "closed" and events(db, no)[-1] == "auto_close"
    with pytest.raises(cp.ComplaintError):
        step(db, no, "reopen", text="晚了")


def test_assignment_tells_the_department_and_the_reply_tells_the_citizen(db):
    tx(
        db,
        lambda c: save_directory(
            c,
            Directory(departments=(Department(name=DEPT, head=Person(name="王局长", phone="13800000001")),)),
            now_ms=1,
        ),
    )
    n = Notifier(NotifyConfig(), conn=db, channels={"sms": object(), "email": object()}, clock=lambda: 1)
    no, _ = new(db)
    step(db, no, "accept", notifier=n)
    step(db, no, "assign", department=DEPT, notifier=n)
    step(db, no, "reply", text="已答复", notifier=n)
    rows = db.execute("SELECT channel, to_addr, template, text FROM notifications ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("sms", "13800000001", "complaint_assigned"),
        ("sms", "13912345678", "complaint_replied"),
        ("email", "wang5@example.cn", "complaint_replied"),
    ]
    assert no in rows[0][3] and ref_add(NOW.date(), CFG.reply_days).isoformat() in rows[0][3]
    assert no in rows[1][3] and "王五" not in rows[0][3]


def test_contact_details_are_private(db):
    no, code = new(db)
    public = cp.complaint_view(db, no, private=False)
    text = repr(public)
    assert "13912345678" not in text and "wang5" not in text and "王五" not in text and code not in text
    assert cp.complaint_view(db, no, private=True)["contact_phone"] == "13912345678"
