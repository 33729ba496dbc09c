"""A small month of records (2026-11) for the scores tests, written straight into a hub store,
and the scores expected from it, worked out by hand in tests/hub/test_scores.py.

Departments: 市场监督管理局 (MS), 自然资源局 (ZR), 公安局 (GA, in the catalog, no record).
Site 140702-001: window 1 (MS, clerk 张三), window 2 (ZR, clerk 李四). November 2026 has no
holiday: working days are Monday to Friday.
"""

from __future__ import annotations

import json
from datetime import datetime

from protocol.calendar import CST

SITE = "140702-001"
MS, ZR, GA = "市场监督管理局", "自然资源局", "公安局"


def ms(y, mo, d, h=10, mi=0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=CST).timestamp() * 1000)


def _item(code, name, dept, legal, promised, case_type="promised"):
    return {"code": code, "name": name, "department": dept, "item_type": "licensing", "case_type": case_type,
            "legal_days": legal, "promised_days": promised}  # fmt: skip


CASES = {  # case_no: (department, window, clerk, received, violations)
    "C1": (MS, "1号窗口", "张三", "2026-11-02T09:00:00+08:00", []),
    "C2": (MS, "1号窗口", "张三", "2026-11-03T09:00:00+08:00", []),
    "C3": (ZR, "2号窗口", "李四", "2026-11-04T09:00:00+08:00", ["backdated"]),
}


def seed_month(c) -> None:
    """Write the month's records (see the module docstring and test_scores.py's tables)."""
    for no, (dept, win, clerk, received, viol) in CASES.items():
        reg = {"case_no": no, "window": win, "clerk": clerk, "received_at": received}
        c.execute(
            "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, reg_seq, "
            "reg_json, status, light, violations, case_type) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (no, SITE, "XK-001", "食品经营许可", dept, "12345678", received, 1, json.dumps(reg, ensure_ascii=False),
             "accepted", "red", json.dumps(viol), "promised"),
        )  # fmt: skip
    alerts = [  # (case, kind, at): C1's second red alert is the same card; C2's October yellow is outside
        ("C1", "light_yellow", ms(2026, 11, 5)), ("C1", "light_red", ms(2026, 11, 10)),
        ("C1", "light_red", ms(2026, 11, 11)), ("C2", "light_yellow", ms(2026, 11, 6)),
        ("C3", "light_red", ms(2026, 11, 12)), ("C2", "light_yellow", ms(2026, 10, 30)),
    ]  # fmt: skip
    for case, kind, at in alerts:
        c.execute("INSERT INTO alerts (at_ms, site, case_no, kind, light) VALUES (?,?,?,?,?)",
                  (at, SITE, case, kind, kind.removeprefix("light_")))  # fmt: skip
    tickets = [  # (id, case, dept, reply_due, reply at): T1 late on 11-17; T2 answered on its day; T3 late in December
        (1, "C1", MS, "2026-11-16", None), (2, "C3", ZR, "2026-11-18", ms(2026, 11, 18, 15)),
        (3, "C2", MS, "2026-11-30", None),
    ]  # fmt: skip
    for tid, case, dept, due, reply in tickets:
        c.execute("INSERT INTO tickets (id, case_no, site, department, level, status, opened_ms, reply_due, actor) "
                  "VALUES (?,?,?,?,'duban','open',?,?,'监察员')", (tid, case, SITE, dept, ms(2026, 11, 9), due))  # fmt: skip
        if reply:
            c.execute("INSERT INTO ticket_events (ticket_id, at_ms, actor, action, text) VALUES (?,?,?,?,?)",
                      (tid, reply, "部门", "reply", "已整改"))  # fmt: skip
    followups = [  # (id, channel, case, window, staff, dept, level, rated, mark)
        (1, "keypad", "C1", "1", "张三", MS, 5, ms(2026, 11, 9), None),
        (2, "portal", "C3", "2", "李四", ZR, 4, ms(2026, 11, 13), "misuse"),
        (3, "keypad", "C2", "1", "张三", MS, 4, ms(2026, 11, 20), None),
    ]
    for fid, channel, case, win, staff, dept, level, rated, mark in followups:
        names = {4: "不满意", 5: "非常不满意"}
        c.execute(
            'INSERT INTO followups (id, channel, rating_ref, site, seq, case_no, "window", staff, department, level, '
            "level_name, rated_ms, opened_ms, limit_days, due, step, mark) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,7,?,?,?)",
            (fid, channel, f"r{fid}", SITE, 100 + fid, case, win, staff, dept, level, names[level], rated, rated,
             "2026-11-30", "verify", mark),
        )  # fmt: skip
    votes = [  # (seq, case, level, channel, misuse, pressed)
        (1, "C1", 1, "keypad", None, ms(2026, 11, 2)), (2, "C2", 2, "portal", None, ms(2026, 11, 3)),
        (3, "C2", 1, "keypad", "repeat", ms(2026, 11, 4)), (4, "C1", 1, "keypad", None, ms(2026, 11, 5)),
        (5, "C1", 3, "keypad", None, ms(2026, 11, 6)),
    ]  # fmt: skip
    level_names = {1: "非常满意", 2: "满意", 3: "基本满意"}
    for seq, case, level, channel, misuse, pressed in votes:
        c.execute(
            'INSERT INTO votes (site, seq, case_no, "window", staff, department, key, level, level_name, '
            "mapping_version, misuse, pressed_ms, channel) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (SITE, seq, case, "1", "张三", MS, "k", level, level_names[level], "v1", misuse, pressed, channel),
        )
    complaints = [  # (id, no, dept, [(action, at)]): K1 10 working days from 11-02 → due 11-16, replied 11-19
        (1, "TS1", MS, [("assign", ms(2026, 11, 2)), ("reply", ms(2026, 11, 19, 16))]),
        (2, "TS2", ZR, [("assign", ms(2026, 11, 20))]),  # due 12-04: not late in November
    ]
    for cid, no, dept, steps in complaints:
        c.execute(
            "INSERT INTO complaints (id, complaint_no, query_code, about_kind, about, site, department, text, "
            "contact_name, status, filed_ms, updated_ms) VALUES (?,?,'ABCDEFGH','window','1号窗口',?,?,'t','王五',"
            "?,?,?)",
            (cid, no, SITE, dept, "replied" if len(steps) > 1 else "assigned", steps[0][1], steps[-1][1]),
        )
        for action, at in steps:
            c.execute("INSERT INTO complaint_events (complaint_id, at_ms, actor, action, text) VALUES (?,?,?,?,?)",
                      (cid, at, "x", action, ""))  # fmt: skip
    for seq, at in ((1, "2026-11-11T02:00:00+00:00"), (2, "2026-10-31T17:30:00+00:00")):  # the second: 11-01 01:30 CST
        c.execute(
            'INSERT INTO device_events (site, seq, device, event, "window", at, detail_json) VALUES (?,?,?,?,?,?,?)',
            (SITE, 1000 + seq, "win1", "window_unattended", "1", at, json.dumps({"unattended_s": 1800})),
        )
    v1 = [
        _item("A", "食品经营许可", MS, 20, 10),
        _item("B", "采矿许可", ZR, 20, 15),
        _item("CC", "营业执照", MS, 10, 5),
    ]
    v2 = [_item("A", "食品经营许可", MS, 20, 8), v1[1], _item("CC", "营业执照", MS, 10, 0, "immediate"),
          _item("G", "户籍证明", GA, 5, 5)]  # fmt: skip
    for version, items, at in ((1, v1, ms(2026, 10, 1)), (2, v2, ms(2026, 11, 15))):
        c.execute("INSERT INTO catalog_versions VALUES (?, ?, ?)",
                  (version, json.dumps({"items": items}, ensure_ascii=False), at))  # fmt: skip
    for it in v2:
        c.execute("INSERT INTO catalog (code, name, department, item_json) VALUES (?,?,?,?)",
                  (it["code"], it["name"], it["department"], json.dumps(it, ensure_ascii=False)))  # fmt: skip
    manual = [  # (day, category, dept, site, window, staff)
        ("2026-11-25", "thanks", MS, SITE, "1", "张三"),
        ("2026-11-26", "discipline", ZR, SITE, None, "李四"),
    ]
    for day, cat, dept, site, win, staff in manual:
        c.execute(
            'INSERT INTO score_manual (day, category, department, site, "window", staff, reason, attachment, actor, '
            "at_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (day, cat, dept, site, win, staff, "事由", "附件.pdf", "sup", ms(2026, 11, 27)),
        )
