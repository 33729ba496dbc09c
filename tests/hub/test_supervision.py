"""Supervision: yellow → reminder, red → 督办 ticket with reply deadline, reply/review,
no reply → escalation up the ladder; cards counted (two yellows = one red)."""

from __future__ import annotations

import time
from datetime import date, datetime

import pytest

from hub import tickets as tk
from hub.config import HubConfig, Supervision
from hub.documents import DocumentStore
from hub.docworker import DocumentWorker
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.store import open_db
from hub.supervision import Supervisor, card_summary, ticket_view
from iobase.config import load_config
from protocol import topics
from protocol.calendar import CST, default_calendar
from protocol.records import Record, encode_record, record_hash
from provisioning.setup import add_site, init_hub
from tests.craft import SiteSigner, chain, registration, trust_item


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def world(tmp_path, store_url):
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    add_site(root, code="S01", name="S01")
    cfg = load_config(root / "hub.yaml", HubConfig)
    conn = open_db(store_url)  # SQLite, then PostgreSQL (tests/hub/conftest.py)
    trust_item(conn)
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=CST))
    notes = []
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda *a: None, now=clock)
    sup = Supervisor(
        Supervision(),
        calendar=lambda: ing.calendar,
        notify=lambda c, dept, roles, tpl, facts, key: notes.append((dept, tuple(roles), tpl, key)),
    )
    ing.supervisor = sup
    signer = SiteSigner(root, "S01")
    # one case received Mon 2026-11-02, XK-001: promised 10, yellow 2 → due 2026-11-16
    recs, _ = chain("S01", 1, body=lambda s: registration("S01", s, datetime(2026, 11, 2, 9, 0, tzinfo=CST)))
    ing.process_group([(topics.site_batch("S01"), signer.seal(recs, 1))])
    yield ing, sup, conn, clock, notes
    conn.close()


def _at(clock, ing, y, m, d, h=0, mi=1):
    clock.t = datetime(y, m, d, h, mi, tzinfo=CST)
    ing.sweep()


def test_yellow_reminder_then_red_ticket_then_escalation(world):
    ing, sup, conn, clock, notes = world
    case_no = "S01-20261120-0001"
    light = lambda: conn.execute("SELECT light FROM cases WHERE case_no=?", (case_no,)).fetchone()[0]
    # acceptance due 11/09; not accepted → deemed accepted + procedural red at 11/10 00:00
    _at(clock, ing, 2026, 11, 6, 10)
    assert light() == "yellow"  # 1 working day left on the acceptance clock
    assert notes[-1][2] == "yellow" and notes[-1][1] == ("handler", "head")
    _at(clock, ing, 2026, 11, 10)
    assert light() == "red"
    (t,) = [ticket_view(conn, r[0]) for r in conn.execute("SELECT id FROM tickets")]
    assert t["level"] == "order_explain" and t["status"] == "open"
    assert t["reply_due"] == "2026-11-13"  # 3 working days after Tue 11/10
    assert [d["kind"] for d in t["documents"]] == ["duban", "order_explain"]
    assert {n[2] for n in notes} >= {"yellow", "red", "ticket"}
    # no reply by the deadline → 监察建议书, then → 监察决定书 (final)
    _at(clock, ing, 2026, 11, 14)
    assert [r[0] for r in conn.execute("SELECT status FROM tickets ORDER BY id")] == ["escalated", "open"]
    _at(clock, ing, 2026, 11, 20)
    rows = conn.execute("SELECT level, status FROM tickets ORDER BY id").fetchall()
    assert rows == [("order_explain", "escalated"), ("suggestion", "escalated"), ("decision", "open")]
    _at(clock, ing, 2026, 11, 27)
    assert conn.execute("SELECT status FROM tickets ORDER BY id DESC").fetchone()[0] == "final"
    # a second sweep at the same time changes nothing (idempotent)
    n = conn.execute("SELECT count(*) FROM ticket_events").fetchone()[0]
    _at(clock, ing, 2026, 11, 27)
    assert conn.execute("SELECT count(*) FROM ticket_events").fetchone()[0] == n


def test_reply_accepted_closes_rejected_escalates(world):
    ing, sup, conn, clock, notes = world
    _at(clock, ing, 2026, 11, 10)
    tid = conn.execute("SELECT id FROM tickets").fetchone()[0]
    now = datetime(2026, 11, 11, 10, 0, tzinfo=CST)
    with pytest.raises(LookupError):
        sup.reply(conn, tid, "科长", "理由", now, department="别的部门")  # not their ticket
    with pytest.raises(tk.TicketError):
        sup.review(conn, tid, "accept", "监察员", "", now)  # nothing to review yet
    sup.reply(conn, tid, "王科长", "系统故障导致未及时受理", now, department="市场监督管理局")
    with pytest.raises(tk.TicketError):
        sup.reply(conn, tid, "王科长", "again", now)
    t = sup.review(conn, tid, "reject", "监察员李", "理由不成立", now)
    assert t["status"] == "escalated"
    nxt = conn.execute("SELECT id, level, parent_id FROM tickets WHERE status='open'").fetchone()
    assert nxt[1:] == ("suggestion", tid)
    sup.reply(conn, nxt[0], "王科长", "已整改", now)
    assert sup.review(conn, nxt[0], "accept", "监察员李", "同意", now)["status"] == "accepted"
    actions = [e["action"] for e in ticket_view(conn, tid)["events"]]
    assert actions == ["open", "reply", "reject"]


def test_queued_documents_are_issued_once_with_consecutive_numbers(world, store_url, tmp_path):
    ing, sup, conn, clock, notes = world
    _at(clock, ing, 2026, 11, 10)  # red → 责令说明理由: 督办通知书 and 责令说明理由通知书 queued
    worker = DocumentWorker(
        store_url, files_dir=tmp_path / "documents", authority="测试", prefix="测试监察", calendar=lambda: ing.calendar
    )
    store = DocumentStore(conn, files_dir=worker.files_dir)
    now = datetime(2026, 11, 10, 9, 0, tzinfo=CST)
    assert worker.run_once(conn, store, now) == 2
    (tid,) = conn.execute("SELECT id FROM tickets").fetchone()
    docs = ticket_view(conn, tid)["documents"]
    assert [(d["kind"], d["status"], d["error"]) for d in docs] == [
        ("duban", "issued", None),
        ("order_explain", "issued", None),
    ]
    issued = store.list("S01-20261120-0001")
    assert [(d["number"], d["ticket_id"]) for d in issued] == [
        ("测试监察〔2026〕1号", tid),
        ("测试监察〔2026〕2号", tid),
    ]
    assert [d["document_id"] for d in docs] == [d["id"] for d in issued]
    # issued before a crash but the queue rows were not marked: the same documents, no new number
    conn.execute("UPDATE document_queue SET status='pending', document_id=NULL")
    assert worker.run_once(conn, store, now) == 0
    assert [d["document_id"] for d in ticket_view(conn, tid)["documents"]] == [d["id"] for d in issued]
    assert len(store.list()) == 2


def test_two_yellow_cards_open_a_duban_and_count_as_one_red(world):
    ing, sup, conn, clock, notes = world
    case_no = "S01-20261120-0001"
    ev = {"case_no": case_no, "type": "accept", "at": "2026-11-02T09:30:00+08:00"}
    signer = SiteSigner(ing.sites.path.parent, "S01")
    r = Record(
        seq=2,
        prev=conn.execute("SELECT acked_hash FROM sites WHERE code='S01'").fetchone()[0],
        kind="case.event",
        wall_ms=int(time.time() * 1000),
        mono_ns=1,
        boot_id="b",
        clock="ntp",
        body=ev,
    )
    ing.process_group([(topics.site_batch("S01"), signer.seal([encode_record(r)], 2))])
    # accepted 11/02, promised 10 → due 11/16; yellow (2 days) from 11/12
    _at(clock, ing, 2026, 11, 12, 10)
    assert conn.execute("SELECT light, yellow_cards FROM cases").fetchone() == ("yellow", 1)
    # an extension (with approver) makes it green again; nearing the new date → second yellow
    ext = {
        "case_no": case_no,
        "type": "extend",
        "at": "2026-11-12T11:00:00+08:00",
        "days": 10,
        "reason": "需现场核查",
        "approver": "局长",
    }
    r3 = Record(
        seq=3,
        prev=record_hash(encode_record(r)),
        kind="case.event",
        wall_ms=int(time.time() * 1000),
        mono_ns=2,
        boot_id="b",
        clock="ntp",
        body=ext,
    )
    ing.process_group([(topics.site_batch("S01"), signer.seal([encode_record(r3)], 3))])
    assert conn.execute("SELECT light FROM cases").fetchone()[0] == "green"
    _at(clock, ing, 2026, 11, 26, 10)
    assert conn.execute("SELECT light, yellow_cards FROM cases").fetchone() == ("yellow", 2)
    t = conn.execute("SELECT level, reason FROM tickets").fetchone()
    assert t[0] == "duban" and "第2次黄牌" in t[1]
    (summary,) = card_summary(conn, 2)
    assert summary["yellow_cards"] == 2 and summary["red_equivalents"] == 1


def test_card_summary_orders_departments_alike_on_both_engines(db):
    rows = [("乙局", 3, 0), (None, 1, 1), ("甲局", 2, 1), ("A局", 0, 2), ("甲局", 1, 0)]
    for i, (dept, yellow, red) in enumerate(rows):
        db.execute(
            "INSERT INTO cases (case_no, site, item_code, department, query_code, received_at, reg_seq, reg_json, "
            "status, light, yellow_cards, red_cards) VALUES (?, 'S01', 'XK-001', ?, '1', '2026-11-02', ?, '{}', "
            "'received', 'green', ?, ?)",
            (f"S01-20261102-{i:04d}", dept, i + 1, yellow, red),
        )
    got = card_summary(db, 2)
    assert [(c["department"], c["yellow_cards"], c["red_cards"], c["red_equivalents"], c["cases"]) for c in got] == [
        (None, 1, 1, 1, 1),
        ("A局", 0, 2, 2, 1),
        ("乙局", 3, 0, 1, 1),  # 乙 (U+4E59) before 甲 (U+7532): code points, not a collation
        ("甲局", 3, 1, 2, 2),  # 2 // 2 + 1 // 2 + 1: yellows count per case
    ]
    assert all(type(v) is int for c in got for k, v in c.items() if k != "department")
    assert card_summary(db, 2, "甲局") == [got[-1]]


@pytest.mark.parametrize(
    "opened,days,expected",
    [
        (date(2026, 2, 13), 3, date(2026, 2, 25)),  # Fri before 春节: 2/14 (调休 Sat), 2/24, 2/25
        (date(2026, 9, 30), 3, date(2026, 10, 10)),  # before 国庆: 10/8, 10/9, 10/10 (调休 Sat)
    ],
)
def test_reply_deadlines_count_working_days(opened, days, expected):
    assert tk.reply_due(opened, days, default_calendar()) == expected


def test_ladder_rules():
    ladder = ["order_explain", "suggestion", "decision"]
    assert tk.next_level(ladder, "order_explain") == "suggestion"
    assert tk.next_level(ladder, "decision") is None
    assert tk.next_level(ladder, "duban") == "order_explain"  # a yellow-card 督办 joins the ladder
    assert tk.after_review("accept", "suggestion", ladder) == ("accepted", None)
    assert tk.after_review("reject", "suggestion", ladder) == ("escalated", "decision")
    assert tk.after_review("reject", "decision", ladder) == ("final", None)
    assert tk.red_equivalents(5, 1, 2) == 3
    assert tk.is_overdue("open", date(2026, 11, 13), date(2026, 11, 14))
    assert not tk.is_overdue("replied", date(2026, 11, 13), date(2026, 11, 14))


def test_red_card_takes_over_a_yellow_card_duban(world):
    ing, sup, conn, clock, notes = world
    now = datetime(2026, 11, 5, 10, 0, tzinfo=CST)
    tid = sup.open_ticket(conn, "S01-20261120-0001", "duban", "监察员", now, reason="两次黄牌")
    _at(clock, ing, 2026, 11, 10)  # acceptance timeout → red
    rows = conn.execute("SELECT id, level, status FROM tickets ORDER BY id").fetchall()
    assert rows[0] == (tid, "duban", "escalated") and rows[1][1:] == ("order_explain", "open")


def test_calendar_imported_while_the_hub_was_stopped_is_applied_at_start(world):
    from hub.admin import store_calendar_year
    from hub.configpush import ConfigPusher
    from protocol.calendar import YearTable
    from protocol.crypto import generate_ed25519

    ing, sup, conn, clock, notes = world
    calls = []
    p = ConfigPusher(conn, ing.sites, generate_ed25519(), lambda *a: None, on_calendar_change=lambda: calls.append(1))
    p.tick()
    assert calls == []  # nothing new
    conn.execute("BEGIN")
    store_calendar_year(
        conn, YearTable.from_dict({"year": 2027, "holidays": ["2027-01-01"], "workdays": []}), "test", "x"
    )
    conn.execute("COMMIT")
    # "restart": a new pusher sees a calendar newer than what the cases were projected with
    p2 = ConfigPusher(conn, ing.sites, generate_ed25519(), lambda *a: None, on_calendar_change=lambda: calls.append(2))
    p2.tick()
    assert calls == [2]
    p3 = ConfigPusher(conn, ing.sites, generate_ed25519(), lambda *a: None, on_calendar_change=lambda: calls.append(3))
    p3.tick()
    assert calls == [2]  # applied once, remembered
