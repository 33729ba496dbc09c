"""Generated store contents for the statistics (hub/stats.py): cases with their decision events,
keypad and portal ratings (some misuse, some marked 误评/恶意差评), complaints with their steps.
Rows are written straight into the store's tables (seeded random, no ingest), and returned as
plain Python values so a test can compute the expected figures on its own. bench/stats.py
uses the same generator at scale."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache

from protocol.calendar import CST
from tests import calendar_reference as ref

ITEMS = (  # code, name, department, promised, legal working days
    ("SC001", "食品经营许可", "市场监督管理局", 10, 20),
    ("SC002", "个体工商户登记", "市场监督管理局", 3, 15),
    ("MZ001", "婚姻登记", "民政局", 0, 0),
    ("ZJ001", "建筑工程施工许可", "住房和城乡建设局", 7, 20),
    ("RS001", "就业登记", "人力资源和社会保障局", 5, 10),
)
STATUSES = ("received", "accepted", "suspended", "approved", "completed", "delivered", "denied", "withdrawn")
LIGHTS = ("green", "yellow", "red")
UTC = UTC


@dataclass
class Generated:
    cases: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    votes: list[dict] = field(default_factory=list)
    marks: dict[tuple, str] = field(default_factory=dict)  # (site, seq, channel) → mark
    complaints: list[dict] = field(default_factory=list)
    complaint_events: list[dict] = field(default_factory=list)


@cache
def _add_wd(d: date, n: int) -> date:
    return ref.add_working_days(d, n)


def sites_of(n: int) -> list[str]:
    """n site codes over a few counties: 140702-001, 140703-001, … (round robin)."""
    counties = ("140702", "140703", "140721", "140722")
    return [f"{counties[i % len(counties)]}-{i // len(counties) + 1:03d}" for i in range(n)]


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def generate(first: date, last: date, n_cases: int, *, seed: int = 7, sites: list[str] | None = None,
             votes_per_case: float = 0.6, complaints_per_case: float = 0.02) -> Generated:  # fmt: skip
    """Cases received from 20 days before `first` to `last`; decisions, ratings, complaints."""
    rnd = random.Random(seed)
    sites = sites or sites_of(3)
    g = Generated()
    seqs = {s: 0 for s in sites}
    span = (last - first).days + 21
    start = datetime(first.year, first.month, first.day, tzinfo=CST) - timedelta(days=20)
    for i in range(n_cases):
        site = rnd.choice(sites)
        code, name, dept, promised, legal = rnd.choice(ITEMS)
        recv = start + timedelta(days=rnd.randrange(span), minutes=rnd.randrange(8 * 60, 18 * 60))
        # a few times written with another offset (UTC): they count on their China date
        recv_s = recv.astimezone(UTC).isoformat() if i % 37 == 0 else recv.isoformat()
        rdate = recv.date()
        due = _add_wd(rdate, promised)
        case_no = f"{site}-{i:07d}"
        status = rnd.choice(STATUSES)
        case = {"case_no": case_no, "site": site, "item_code": code, "item_name": name, "department": dept,
                "received_at": recv_s, "received": rdate, "status": status, "light": rnd.choice(LIGHTS),
                "due_date": due.isoformat() if i % 53 else None, "promised_days": promised, "legal_days": legal,
                "yellow_cards": rnd.choice((0, 0, 0, 1, 2)), "closed": 0, "decided": None}  # fmt: skip
        if rnd.random() < 0.75:
            at = recv + timedelta(days=rnd.randrange(0, 25), hours=rnd.randrange(0, 5))
            kinds = [rnd.choice(("approve", "complete", "deny"))]
            if kinds[0] == "approve" and rnd.random() < 0.5:
                kinds.append("complete")  # approve, then complete later: the approval concludes
            for j, kind in enumerate(kinds):
                t = at + timedelta(days=2 * j)
                seqs[site] += 1
                t_s = t.astimezone(UTC).isoformat() if i % 41 == 0 else t.isoformat()
                g.events.append({"site": site, "seq": seqs[site], "case_no": case_no, "type": kind, "at": t_s})
            case["decided"] = at.date()
            case["closed"] = 1
        g.cases.append(case)
        for _ in range(rnd.choice((0, 0, 1, 1, 2)) if rnd.random() < votes_per_case / 0.6 else 0):
            _vote(rnd, g, seqs, case, recv)
        if rnd.random() < complaints_per_case:
            _complaint(rnd, g, case, first, last)
    return g


def _vote(rnd, g: Generated, seqs: dict, case: dict, recv: datetime) -> None:
    site = case["site"]
    channel = "portal" if rnd.random() < 0.3 else "keypad"
    if channel == "portal":
        if g.votes and g.votes[-1]["case_no"] == case["case_no"] and g.votes[-1]["channel"] == "portal":
            return  # one portal rating per case
        seq = -(len(g.votes) + 1)
    else:
        seqs[site] += 1
        seq = seqs[site]
    pressed = recv + timedelta(hours=rnd.randrange(0, 24 * 5))
    level = rnd.choice((1, 1, 1, 2, 2, 3, 4, 5))
    misuse = "repeat" if channel == "keypad" and rnd.random() < 0.05 else None
    g.votes.append({"site": site, "seq": seq, "case_no": case["case_no"], "window": "1", "staff": "李四",
                    "department": case["department"], "level": level, "channel": channel, "misuse": misuse,
                    "pressed_ms": _ms(pressed), "day": pressed.astimezone(CST).date()})  # fmt: skip
    if level >= 4 and rnd.random() < 0.3:
        g.marks[(site, seq, channel)] = rnd.choice(("misuse", "malicious"))


def _complaint(rnd, g: Generated, case: dict, first: date, last: date) -> None:
    cid = len(g.complaints) + 1
    filed = datetime(first.year, first.month, first.day, 10, tzinfo=CST) + timedelta(
        days=rnd.randrange(-3, (last - first).days + 3), minutes=rnd.randrange(0, 300)
    )
    status = "submitted"
    steps = [("file", filed)]
    t = filed
    if rnd.random() < 0.9:
        t += timedelta(days=rnd.randrange(0, 2))
        steps += [("accept", t), ("assign", t + timedelta(minutes=5))]
        status = "assigned"
        for _round in range(1 + (rnd.random() < 0.3)):
            if rnd.random() < 0.8:
                t += timedelta(days=rnd.randrange(0, 12), hours=1)
                steps.append(("reply", t))
                status = "replied"
                if _round == 0 and rnd.random() < 0.4:
                    t += timedelta(days=1)
                    steps.append(("reopen", t))
                    status = "reopened"
            else:
                break
    g.complaints.append({"id": cid, "site": case["site"], "department": case["department"], "status": status,
                         "filed_ms": _ms(filed), "filed": filed.date()})  # fmt: skip
    for action, at in steps:
        g.complaint_events.append({"complaint_id": cid, "at_ms": _ms(at), "action": action, "day": at.date()})


def write(conn, g: Generated, *, batch: int = 20_000) -> None:
    """Insert the generated rows (one transaction per table batch)."""
    from iobase.sqlite import transaction

    def chunks(rows):
        for i in range(0, len(rows), batch):
            yield rows[i : i + batch]

    for part in chunks(g.cases):
        with transaction(conn):
            conn.executemany(
                "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, "
                "reg_seq, reg_json, status, light, due_date, legal_days, promised_days, yellow_cards, closed) "
                "VALUES (?,?,?,?,?,'Q',?,0,'{}',?,?,?,?,?,?,?)",
                [(c["case_no"], c["site"], c["item_code"], c["item_name"], c["department"], c["received_at"],
                  c["status"], c["light"], c["due_date"], c["legal_days"], c["promised_days"], c["yellow_cards"],
                  c["closed"]) for c in part],
            )  # fmt: skip
    for part in chunks(g.events):
        with transaction(conn):
            conn.executemany(
                "INSERT INTO case_events (site, seq, case_no, type, at, body_json) VALUES (?,?,?,?,?,'{}')",
                [(e["site"], e["seq"], e["case_no"], e["type"], e["at"]) for e in part],
            )
    for part in chunks(g.votes):
        with transaction(conn):
            conn.executemany(
                'INSERT INTO votes (site, seq, case_no, "window", staff, department, key, level, level_name, '
                "mapping_version, misuse, pressed_ms, channel) VALUES (?,?,?,?,?,?,'k',?,'x','v1',?,?,?)",
                [(v["site"], v["seq"], v["case_no"], v["window"], v["staff"], v["department"], v["level"],
                  v["misuse"], v["pressed_ms"], v["channel"]) for v in part],
            )  # fmt: skip
    with transaction(conn):
        conn.executemany(
            "INSERT INTO followups (channel, rating_ref, site, seq, level, level_name, rated_ms, opened_ms, "
            "limit_days, due, step, mark) VALUES (?,?,?,?,4,'不满意',0,0,7,'2026-01-01','done',?)",
            [(ch, f"{s}:{q}", s, q, m) for (s, q, ch), m in g.marks.items()],
        )
    for part in chunks(g.complaints):
        with transaction(conn):
            conn.executemany(
                "INSERT INTO complaints (id, complaint_no, query_code, about_kind, about, site, department, text, "
                "contact_name, status, filed_ms, updated_ms) VALUES (?,?,'Q','case','x',?,?,'t','n',?,?,?)",
                [(c["id"], f"TS{c['id']:08d}", c["site"], c["department"], c["status"], c["filed_ms"],
                  c["filed_ms"]) for c in part],
            )  # fmt: skip
    for part in chunks(g.complaint_events):
        with transaction(conn):
            conn.executemany(
                "INSERT INTO complaint_events (complaint_id, at_ms, actor, action) VALUES (?,?,'x',?)",
                [(e["complaint_id"], e["at_ms"], e["action"]) for e in part],
            )
