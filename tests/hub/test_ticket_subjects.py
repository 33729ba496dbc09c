"""督办 tickets about a complaint (投诉) or a 差评 follow-up (回访件), on both store engines: the
ticket names its subject, climbs the ladder on a rejected reply and on no reply, and gets its
documents (督办通知书 …) from the subject's summary — the complaint's number, never the
complainant's name, phone or e-mail (pdftotext). Expectations are worked out by hand from the
calendar: November 2026 has no public holiday."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from hub import complaints as cp
from hub import followups as fu
from hub.config import Complaints, Ratings, Supervision
from hub.documents import DocumentStore
from hub.docworker import DocumentWorker
from hub.store import all_migrations, load_calendar
from hub.supervision import Supervisor, ticket_view
from iobase.sqlite import migrate
from protocol.calendar import CST
from tests.hub.documents.pdftools import flat

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=CST)  # Monday 2 November 2026
DEPT = "市场监督管理局"
CFG = Complaints()  # reply_days 10: assigned on Mon 2 Nov → due Mon 16 Nov
NAME, PHONE, MAIL = "王五", "13912345678", "wang5@example.cn"
FILING = {"about_kind": "window", "about": "3号窗口", "contact_name": NAME, "contact_phone": PHONE,
          "contact_email": MAIL, "department": "",
          "text": f"窗口人员态度生硬，拒不说明原因。我叫{NAME}，电话 {PHONE}，邮箱 {MAIL}，另一号码 0931-8765432"}  # fmt: skip


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=CST)


def tx(conn, fn):
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


@pytest.fixture
def sup(db):
    notes = []
    s = Supervisor(
        Supervision(),  # ladder 责令说明理由 → 监察建议 → 监察决定, reply_days 3
        calendar=lambda: load_calendar(db),
        notify=lambda c, dept, roles, tpl, facts, key: notes.append((dept, tpl, dict(facts), key)),
    )
    s.complaints_cfg = CFG
    s.notes = notes
    return s


def late_complaint(db, sup) -> tuple[str, int]:
    """A complaint assigned on 2 Nov and not answered: the sweep of 17 Nov opens its 督办."""
    values, errors = cp.clean(FILING)
    assert not errors
    cal = load_calendar(db)
    no, _code = tx(db, lambda c: cp.file_complaint(c, values, CFG, cal, NOW))
    tx(db, lambda c: cp.act(c, no, "accept", "监察员甲", "", CFG, cal, NOW))
    tx(db, lambda c: cp.act(c, no, "assign", "监察员甲", "", CFG, cal, NOW, department=DEPT))
    tx(db, lambda c: sup.sweep(c, at(16)))  # the due day itself: still in time
    assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
    tx(db, lambda c: sup.sweep(c, at(17)))
    (tid,) = db.execute("SELECT ticket_id FROM complaints WHERE complaint_no=?", (no,)).fetchone()
    return no, tid


def test_a_complaint_ticket_is_replied_rejected_escalates_with_the_reason_and_climbs_on_no_reply(db, sup):
    no, tid = late_complaint(db, sup)
    t = ticket_view(db, tid)
    assert (t["subject"], t["case_no"], t["department"], t["level"], t["status"]) == (
        "complaint", no, DEPT, "duban", "open")  # fmt: skip
    assert t["reply_due"] == "2026-11-20"  # three working days after Tue 17 Nov
    assert t["subject_label"] == f"投诉 {no}" and t["subject_zh"] == "投诉"
    # the department's head hears of it, worded for a complaint (no case number to give)
    assert (DEPT, "ticket_subject", f"ticket:{tid}") in [(d, tpl, k) for d, tpl, _f, k in sup.notes]
    facts = next(f for _d, tpl, f, _k in sup.notes if tpl == "ticket_subject")
    assert facts["subject"] == f"投诉 {no}" and facts["title"] == "督办通知"

    tx(db, lambda c: sup.reply(c, tid, "王科长", "已联系投诉人说明情况", at(18), department=DEPT))
    with pytest.raises(LookupError):  # another department cannot reply to it
        tx(db, lambda c: sup.reply(c, tid, "x", "x", at(18), department="税务局"))
    tx(db, lambda c: sup.review(c, tid, "reject", "监察员李", "答复未说明逾期原因", at(18)))
    rows = db.execute(
        "SELECT id, subject, case_no, level, status, parent_id, reason, reply_due FROM tickets ORDER BY id"
    ).fetchall()
    assert [tuple(r[1:6]) for r in rows] == [
        ("complaint", no, "duban", "escalated", None),
        ("complaint", no, "order_explain", "open", tid),  # 督办 is off the ladder: its first rung next
    ]
    second = rows[1][0]
    assert rows[1][6] == "对督办通知的回复不予采纳：答复未说明逾期原因"
    assert rows[1][7] == "2026-11-23"  # Wed 18 → Thu 19, Fri 20, Mon 23
    # no reply to the 责令说明理由 by Mon 23: the sweep of Tue 24 climbs to 监察建议
    tx(db, lambda c: sup.sweep(c, at(24)))
    rows = db.execute("SELECT subject, level, status, parent_id, reason FROM tickets ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("complaint", "duban", "escalated"),
        ("complaint", "order_explain", "escalated"),
        ("complaint", "suggestion", "open"),
    ]
    assert rows[2][3] == second and rows[2][4] == "责令说明理由逾期未回复"
    # one 督办 per reply round: the complaint itself is not ticketed again
    assert db.execute("SELECT ticket_id FROM complaints WHERE complaint_no=?", (no,)).fetchone()[0] == tid


def test_a_complaint_tickets_documents_name_the_complaint_and_never_the_complainant(db, sup, store_url, tmp_path):
    no, tid = late_complaint(db, sup)
    worker = DocumentWorker(
        store_url, files_dir=tmp_path / "documents", authority="天水市政务服务电子监察中心", prefix="天监",
        calendar=lambda: load_calendar(db),
    )  # fmt: skip
    store = DocumentStore(db, files_dir=worker.files_dir)
    assert worker.run_once(db, store, at(17, 11)) == 1
    (doc,) = ticket_view(db, tid)["documents"]
    assert (doc["kind"], doc["status"], doc["error"]) == ("duban", "issued", None)
    meta, pdf = store.get(doc["document_id"])
    assert meta["number"] == "天监〔2026〕1号" and meta["case_no"] == no and meta["ticket_id"] == tid
    text = flat(pdf, tmp_path)
    assert "督办通知书" in text and "天监〔2026〕1号" in text
    assert f"承办的群众投诉（投诉编号：{no}）" in text
    assert f"投诉编号{no}" in text  # the facts table
    assert "投诉对象窗口：3号窗口" in text
    assert "答复期限2026年11月16日" in text and "超期情况1个工作日" in text  # Mon 16 → Tue 17
    assert "投诉答复期限为2026年11月16日，逾期未答复，已超期1个工作日" in text
    assert "请你单位于2026年11月20日前" in text
    assert "立即核查该投诉反映的问题" in text
    assert "窗口人员态度生硬" in text  # the summary of what the citizen said …
    for private in (NAME, PHONE, MAIL, "8765432", "wang5"):  # … without who they are
        assert private not in text
    assert re.search(r"办理环节.*提交投诉.*受理.*交办.*逾期未答复，发起督办", text)
    # the stored facts carry no contact detail either
    row = db.execute("SELECT facts_json FROM documents WHERE id=?", (doc["document_id"],)).fetchone()
    assert all(p not in row[0] for p in (NAME, PHONE, MAIL, "8765432"))

    # a rejected reply: 责令说明理由 opens with its two documents, numbered on
    tx(db, lambda c: sup.reply(c, tid, "王科长", "已答复", at(18), department=DEPT))
    tx(db, lambda c: sup.review(c, tid, "reject", "监察员李", "答复未说明逾期原因", at(18)))
    assert worker.run_once(db, store, at(18, 11)) == 2
    numbers = sorted(d["number"] for d in store.list(no))
    assert numbers == ["天监〔2026〕1号", "天监〔2026〕2号", "天监〔2026〕3号"]
    order = next(d for d in store.list(no) if d["kind"] == "order_explain")
    text = flat(store.get(order["id"])[1], tmp_path)
    assert "责令说明理由通知书" in text and f"投诉编号：{no}" in text and "现责令你单位说明理由" in text
    assert NAME not in text and PHONE not in text


def test_the_ticket_subject_migration_keeps_old_rows_as_cases_and_finds_complaint_tickets(store_url, tmp_path, request):
    from hub.db import connect, engine

    if store_url.startswith("postgresql"):  # an empty database on the test's own server
        conn = connect(request.getfixturevalue("pg_server").create_db("subj"))
    else:
        conn = connect(f"sqlite:{tmp_path / 'old.db'}")
    steps = all_migrations(engine(conn))
    (at,) = [i for i, (name, _) in enumerate(steps) if name.endswith("0102_ticket_subject")]
    migrate(conn, steps[:at])  # a store from before the column
    tx(conn, lambda c: c.execute(
        "INSERT INTO complaints (complaint_no, query_code, about_kind, about, text, contact_name, status, "
        "filed_ms, updated_ms) VALUES ('TS20261102123456', 'X', 'hall', '大厅', 't', 'n', 'assigned', 1, 1)"))  # fmt: skip
    for key in ("S01-20261120-0001", "TS20261102123456"):
        tx(conn, lambda c, key=key: c.execute(
            "INSERT INTO tickets (case_no, level, status, opened_ms, reply_due, actor) "
            "VALUES (?, 'duban', 'open', 1, '2026-11-05', 'system')", (key,)))  # fmt: skip
    migrate(conn, steps)
    got = conn.execute("SELECT case_no, subject FROM tickets ORDER BY id").fetchall()
    assert [tuple(r) for r in got] == [("S01-20261120-0001", "case"), ("TS20261102123456", "complaint")]
    conn.close()


def test_a_late_followup_tells_the_department_and_gets_a_ticket_and_document_of_its_own(db, sup, store_url, tmp_path):
    cal = load_calendar(db)
    ratings = Ratings(default_days=5)  # opened Mon 2 Nov → due Mon 9 Nov; yellow from Fri 6 Nov
    fid = tx(db, lambda c: fu.open_followup_for_rating(
        c, channel="keypad", rating_ref="S01:7", level=5, level_name="非常不满意", rated_ms=int(NOW.timestamp() * 1000),
        now=NOW, calendar=cal, ratings=ratings, site="S01", seq=7, window="3", staff="赵六", department=DEPT,
        notify=sup.notify))  # fmt: skip
    assert db.execute("SELECT due FROM followups WHERE id=?", (fid,)).fetchone()[0] == "2026-11-09"
    sweep = lambda day: tx(db, lambda c: fu.sweep(c, at(day), cal, ratings, sup))
    sweep(5)  # Thu: two working days left
    sweep(6)  # Fri: one left → yellow
    sweep(9)  # the due day: still yellow
    sweep(10)  # Tue: red → 督办
    got = [(d, tpl, k) for d, tpl, _f, k in sup.notes]
    assert got == [
        (DEPT, "followup_opened", f"followup:{fid}:open"),
        (DEPT, "followup_yellow", f"followup:{fid}:yellow"),
        (DEPT, "followup_red", f"followup:{fid}:red"),
        (DEPT, "ticket_subject", "ticket:1"),
    ]
    opened = sup.notes[0][2]
    assert opened == {"followup_id": str(fid), "level_name": "非常不满意", "where": "窗口 3（赵六）",
                      "due_date": "2026-11-09"}  # fmt: skip
    (tid,) = db.execute("SELECT ticket_id FROM followups WHERE id=?", (fid,)).fetchone()
    t = ticket_view(db, tid)
    assert (t["subject"], t["case_no"], t["department"], t["site"], t["level"]) == (
        "followup", str(fid), DEPT, "S01", "duban")  # fmt: skip
    assert t["subject_label"] == f"差评回访件 #{fid}" and "逾期未办结（期限 2026-11-09）" in t["reason"]
    worker = DocumentWorker(
        store_url, files_dir=tmp_path / "d", authority="测试监察中心", prefix="测监", calendar=lambda: cal
    )
    store = DocumentStore(db, files_dir=worker.files_dir)
    assert worker.run_once(db, store, at(10, 11)) == 1
    doc_id = ticket_view(db, tid)["documents"][0]["document_id"]
    text = flat(store.get(doc_id)[1], tmp_path)
    assert f"承办的差评回访件（编号：#{fid}）" in text and "评价器「非常不满意」" in text
    assert "差评回访期限为2026年11月9日，逾期未完成核实、整改、回访，已超期1个工作日" in text
    # the ticket climbs like a case's: no reply by Fri 13 → 责令说明理由 on Mon 16
    tx(db, lambda c: sup.sweep(c, at(16)))
    levels = [tuple(r) for r in db.execute("SELECT subject, level, status FROM tickets ORDER BY id")]
    assert levels == [("followup", "duban", "escalated"), ("followup", "order_explain", "open")]
