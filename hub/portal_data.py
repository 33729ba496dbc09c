"""What the citizen portal shows (门户数据), computed once for a page and its JSON twin:
guide search and item pages (办事指南), case progress (办件查询), monthly on-time rates per
department (按时办结率). Reads only; no personal data ever leaves these functions."""

from __future__ import annotations

import json
import re
from datetime import date

from hub.portal_guide import guide_of, materials_of, split_list
from hub.ratings import RATABLE, ratings_of_case
from protocol.caseclock_types import EVENT_ZH
from protocol.models import CASE_TYPE_LABELS, ITEM_TYPE_LABELS

MAX_QUERY = 50  # characters of a guide search
MAX_RESULTS = 50
MAX_MONTHS = 12  # months on the results page
CASE_NO = re.compile(r"^[A-Za-z0-9\-]{1,64}$")
QUERY_CODE = re.compile(r"^[A-Za-z0-9]{1,32}$")
ITEM_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
ITEM_TYPE_ZH = {v: k for k, v in reversed(ITEM_TYPE_LABELS.items()) if len(k) > 2}
CASE_TYPE_ZH = {v: k for k, v in reversed(CASE_TYPE_LABELS.items()) if k.endswith("件")}
STAGES = ("收件", "受理", "办理", "办结")
DONE = ("approve", "deny", "complete")  # the events that finish a case (办结)
STAGE_OF = {
    "received": 0,
    "supplement_requested": 0,
    "accepted": 1,
    "suspended": 2,
    **dict.fromkeys(("approved", "denied", "rejected", "completed", "delivered", "withdrawn", "transferred"), 3),
}


def _norm(text: str) -> str:
    return "".join(text.lower().split())


def search_index(conn, cache: dict | None = None) -> list[tuple[str, str, str, str, str, list[str]]]:
    """(code, name, department, normalized name, normalized department, initials) of every item;
    kept in `cache` (one per app) until the hub signs a new catalog version."""
    version = conn.execute("SELECT max(version) FROM catalog_versions").fetchone()[0]
    if cache is not None and cache.get("version") == version and "rows" in cache:
        return cache["rows"]
    rows = [
        (code, name, dept, _norm(name), _norm(dept), (ini or "").split(" "))
        for code, name, dept, ini in conn.execute(
            "SELECT c.code, c.name, c.department, g.initials FROM catalog c "
            "LEFT JOIN portal_guide g ON g.code = c.code ORDER BY c.department, c.code"
        ).fetchall()
    ]
    if cache is not None:
        cache.update(version=version, rows=rows)
    return rows


def search_items(conn, q: str, cache: dict | None = None) -> list[dict]:
    """Catalog items whose name, department or code contain `q`, or whose name's initials contain
    it, or whose department's initials start with it (empty: all, up to MAX_RESULTS)."""
    q = _norm(q)[:MAX_QUERY]
    out = []
    for code, name, dept, n_name, n_dept, ini in search_index(conn, cache):
        if (
            not q
            or q in n_name
            or q in n_dept
            or q in code.lower()
            or q in ini[0]
            or (len(ini) > 1 and ini[1].startswith(q))  # the department's initials: scjd
        ):
            out.append({"code": code, "name": name, "department": dept})
            if len(out) >= MAX_RESULTS:
                break
    return out


def halls(conn, wanted: list[str]) -> list[dict]:
    """The halls (sites) handling an item: the ones named, or every hall."""
    rows = conn.execute("SELECT code, name FROM sites ORDER BY code").fetchall()
    if wanted:
        rows = [r for r in rows if r[0] in wanted]
    return [{"code": c, "name": n or c} for c, n in rows]


def item_detail(conn, code: str) -> dict | None:
    """One item's guide (办事指南), or None when the catalog has no such item."""
    if not ITEM_CODE.match(code):
        return None
    row = conn.execute(
        "SELECT c.item_json, g.guide_json FROM catalog c LEFT JOIN portal_guide g ON g.code = c.code WHERE c.code=?",
        (code,),
    ).fetchone()
    if row is None:
        return None
    item, guide = json.loads(row[0]), guide_of(row[1])
    forms = {n for (n,) in conn.execute("SELECT name FROM portal_forms").fetchall()}
    materials = [{**m, "form_url": f"/public/forms/{m['form']}" if m["form"] in forms else None}
                 for m in materials_of(item.get("materials"))]  # fmt: skip
    return {
        "code": item["code"],
        "name": item["name"],
        "department": item["department"],
        "item_type": item["item_type"],
        "item_type_zh": ITEM_TYPE_ZH.get(item["item_type"], item["item_type"]),
        "case_type": item["case_type"],
        "case_type_zh": CASE_TYPE_ZH.get(item["case_type"], item["case_type"]),
        "eligibility": guide.get("eligibility"),
        "materials": materials,
        "process": split_list(guide.get("process")),
        "promised_days": item["promised_days"],
        "legal_days": item["legal_days"],
        "fee": item.get("fee"),
        "fee_basis": guide.get("fee_basis"),
        "legal_basis": item.get("basis"),
        "phone": item.get("phone"),
        "supervision_phone": guide.get("supervision_phone"),
        "halls": halls(conn, split_list(guide.get("halls"))),
    }


def case_progress(conn, case_no: str, code: str, same) -> dict | None:
    """A case's public progress (no personal data), or None when number and query code do not
    match (`same`: a constant-time comparison)."""
    if not CASE_NO.match(case_no) or not QUERY_CODE.match(code):
        return None
    cur = conn.execute(
        "SELECT c.case_no, c.site, c.item_code, c.item_name, c.department, c.query_code, c.received_at, "
        "c.status, c.due_date, c.due_provisional, c.legal_due_date, s.name FROM cases c "
        "LEFT JOIN sites s ON s.code = c.site WHERE c.case_no=?",
        (case_no,),
    )
    row = cur.fetchone()
    if row is None or not same(row[5], code):
        return None
    r = dict(zip([d[0] for d in cur.description], row))
    from hub.api import STATUS_ZH  # the one table of status labels

    evs = conn.execute("SELECT type, at FROM case_events WHERE case_no=? ORDER BY seq", (case_no,)).fetchall()
    timeline = [{"type": "receive", "type_zh": EVENT_ZH["receive"], "at": r["received_at"]}]
    timeline += [{"type": t, "type_zh": EVENT_ZH.get(t, t), "at": at} for t, at in evs if t != "receive"]
    stage = STAGE_OF.get(r["status"], 0)
    if stage == 1 and any(t == "step" for t, _ in evs):
        stage = 2
    ratings = ratings_of_case(conn, case_no)
    return {
        "case_no": case_no,
        "item_code": r["item_code"],
        "item_name": r["item_name"],
        "department": r["department"],
        "hall": {"code": r["site"], "name": r["name"] or r["site"]},
        "status": r["status"],
        "status_zh": STATUS_ZH.get(r["status"], r["status"]),
        "progress": {"stage": stage, "stages": list(STAGES)},
        "received_on": r["received_at"][:10],
        "due_date": r["due_date"],
        "due_provisional": bool(r["due_provisional"]),
        "legal_due_date": r["legal_due_date"],
        "events": timeline,
        "ratable": r["status"] in RATABLE and not any(x["channel"] == "portal" for x in ratings),
        "ratings": ratings,
    }


def month_range(until: date, months: int) -> list[str]:
    """The `months` months ending with `until`'s, oldest first, as YYYY-MM."""
    y, m = until.year, until.month
    out = []
    for _ in range(months):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def on_time_rates(conn, until: date, months: int = 6) -> dict:
    """按时办结率 per department and month: cases finished (批准, 不予许可 or 办结: the first of
    these events) in the month, and how many by their promised date. Event times are China time
    (the boxes write +08:00), so the month and date are the text's first 7 and 10 characters."""
    ms = month_range(until, months)
    start, end = ms[0] + "-01", _next_month(ms[-1]) + "-01"
    rows = conn.execute(
        "SELECT c.department, substr(f.done, 1, 7), count(*), "
        "sum(CASE WHEN c.due_date IS NULL OR substr(f.done, 1, 10) <= c.due_date THEN 1 ELSE 0 END) "
        "FROM (SELECT case_no, min(at) AS done FROM case_events WHERE type IN (?, ?, ?) GROUP BY case_no) f "
        "JOIN cases c ON c.case_no = f.case_no WHERE f.done >= ? AND f.done < ? "
        "GROUP BY c.department, substr(f.done, 1, 7)",
        (*DONE, start, end),
    ).fetchall()
    by_dept: dict[str, dict[str, dict]] = {}
    for dept, month, n, ok in rows:
        by_dept.setdefault(dept or "—", {})[month] = {"finished": int(n), "on_time": int(ok)}
    departments = []
    for dept in sorted(by_dept):
        cells = []
        for m in ms:
            got = by_dept[dept].get(m, {"finished": 0, "on_time": 0})
            rate = round(100 * got["on_time"] / got["finished"], 1) if got["finished"] else None
            cells.append({"month": m, **got, "rate": rate})
        departments.append({"department": dept, "months": cells})
    return {"months": ms, "departments": departments}


def _next_month(ym: str) -> str:
    y, m = int(ym[:4]), int(ym[5:7])
    return f"{y + 1:04d}-01" if m == 12 else f"{y:04d}-{m + 1:02d}"
