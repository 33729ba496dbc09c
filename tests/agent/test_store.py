"""The agent's log: hash-chained, durable, never rewritten; case numbers and query codes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime

from agent.store import AgentStore
from protocol.calendar import CST
from protocol.models import CatalogItem, NewCase, NewEvent
from protocol.records import GENESIS, decode_record, record_hash, verify_chain

ITEM = CatalogItem(
    code="XK-001",
    name="食品经营许可",
    department="市场监督管理局",
    item_type="licensing",
    case_type="promised",
    legal_days=20,
    promised_days=10,
)
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)


def _store(path):
    s = AgentStore(path, "S01")
    s.save_config("catalog", 1, 0, {"items": [ITEM.model_dump(mode="json")]}, b"raw")
    return s


def test_log_is_a_hash_chain(tmp_path):
    s = _store(tmp_path / "a.db")
    for _ in range(5):
        c = s.register(NewCase(item_code="XK-001", applicant={"name": "李四"}), NOW)
    s.add_event(c["case_no"], NewEvent(type="accept"), NOW)
    data = s.read_log(1, s.head_seq)
    recs = [(decode_record(d), d) for d in data]
    assert [r.seq for r, _ in recs] == list(range(1, 7))
    assert verify_chain(GENESIS, recs) is None
    assert s.head_hash == record_hash(data[-1])
    assert recs[-1][0].kind == "case.event" and recs[-1][0].body["type"] == "accept"


def test_reopen_continues_the_chain_and_case_numbers(tmp_path):
    s = _store(tmp_path / "a.db")
    s.register(NewCase(item_code="XK-001", applicant={"name": "李四"}), NOW)
    head, h = s.head_seq, s.head_hash
    s.close()
    s2 = AgentStore(tmp_path / "a.db", "S01")
    assert (s2.head_seq, s2.head_hash) == (head, h)
    c = s2.register(NewCase(item_code="XK-001", applicant={"name": "王五"}), NOW)
    assert c["case_no"] == "S01-20261120-0002"
    assert decode_record(s2.read_log(2, 2)[0]).prev == h


def test_acks_never_move_backwards(tmp_path):
    s = _store(tmp_path / "a.db")
    for _ in range(3):
        s.register(NewCase(item_code="XK-001", applicant={"name": "李四"}), NOW)
    s.set_acked(3)
    s.set_acked(1)
    assert s.acked_seq() == 3


def test_committed_case_survives_sigkill(tmp_path):
    """A case acknowledged to the clerk is on disk even if the process dies right after."""
    db = tmp_path / "a.db"
    _store(db).close()
    code = textwrap.dedent(f"""
        import os, signal
        from datetime import datetime
        from agent.store import AgentStore
        from protocol.calendar import CST
        from protocol.models import NewCase
        s = AgentStore({str(db)!r}, "S01")
        c = s.register(NewCase(item_code="XK-001", applicant={{"name": "李四"}}), datetime.now(CST))
        print(c["case_no"], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    case_no = out.stdout.strip()
    assert case_no.startswith("S01-")
    s = AgentStore(db, "S01")
    assert s.head_seq == 1
    assert decode_record(s.read_log(1, 1)[0]).body["case_no"] == case_no


def test_window_views_for_lamps_and_signs(tmp_path):
    """Per window: open cases' lights (lamps), today's counts and the clerk on duty (signs)."""
    s = _store(tmp_path / "a.db")
    a = s.register(NewCase(item_code="XK-001", applicant={"name": "甲"}, window="1", clerk="李四"), NOW)
    s.register(NewCase(item_code="XK-001", applicant={"name": "乙"}, window="1", clerk="王五"), NOW)
    s.register(NewCase(item_code="XK-001", applicant={"name": "丙"}, window="2", clerk="赵六"), NOW)
    s.add_event(a["case_no"], NewEvent(type="accept"), NOW)
    s.add_event(a["case_no"], NewEvent(type="complete"), NOW)
    assert s.staff_on_duty(NOW) == {"1": "王五", "2": "赵六"}
    assert s.today_counts(NOW) == {"1": {"received": 2, "completed": 1}, "2": {"received": 1}}
    assert s.window_lights(NOW) == {"1": ["green"], "2": ["green"]}


def test_window_lights_only_for_windows_with_lamps(tmp_path):
    s = _store(tmp_path / "a.db")
    s.register(NewCase(item_code="XK-001", applicant={"name": "甲"}, window="1"), NOW)
    s.register(NewCase(item_code="XK-001", applicant={"name": "乙"}, window="3号窗口"), NOW)
    assert s.window_lights(NOW, {"1", "2"}) == {"1": ["green"]}
    assert s.window_lights(NOW, set()) == {}
