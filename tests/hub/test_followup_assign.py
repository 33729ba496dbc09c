"""A 差评 follow-up without a department, on both store engines: a supervisor in scope assigns
it (POST /api/followups/{id}/assign; the actor from the session, audited, the department told
through the outbox); refusals for the wrong role, another county, bad input and a second
assignment. Once late it is on the wall (GET /api/wall `late_followups`) with its reason in
Chinese. The site page's votes count keypad and portal apart, with a total (hand-counted)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import aiohttp
import pytest

from hub.db import connect
from hub.notify.directory import Department, Directory, Person, save_directory
from hub.votes import site_votes
from hub.wall import change_marker
from protocol.calendar import CST
from tests.hub.accounts_helpers import cookie_headers, open_session
from tests.hub.case_helpers import DEPT, NOW, SITE_A, SITE_B, make_world
from tests.hub.hubapp import close, served
from tests.hub.test_followups import call, send_vote, vote_body


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    directory = Directory(departments=(Department(name=DEPT, head=Person(name="王局长", phone="13800138000")),))
    w[0].write(lambda c: save_directory(c, directory, now_ms=1))
    w[0].notifier.channels = {"sms": object()}  # queued only: no gateway in this test
    yield w
    close(w[0])


def unassigned(hub, feed) -> int:
    """A keypad 不满意 at window 7 with neither a case nor the window's department."""
    at = NOW - timedelta(minutes=5)
    send_vote(feed, vote_body(4, None, at, window="7", staff="钱七", dept=None), at)
    ((fid, dept),) = hub.reader.execute("SELECT id, department FROM followups").fetchall()
    assert dept is None
    return fid


def test_a_supervisor_assigns_a_followup_without_a_department(world):
    hub, a, _case, _ = world
    fid = unassigned(hub, a)
    p = f"/api/followups/{fid}/assign"
    assert call(hub, "dept", "GET", f"/api/followups/{fid}")[0] == 404  # nobody's yet
    assert call(hub, "dept", "POST", p, {"department": DEPT})[0] == 403  # not a department's step
    assert call(hub, "wall", "POST", p, {"department": DEPT})[0] == 403
    assert call(hub, "sup-b", "POST", p, {"department": DEPT})[0] == 404  # another county's site
    assert call(hub, "sup", "POST", "/api/followups/999/assign", {"department": DEPT})[0] == 404
    for bad in ({}, {"department": ""}, {"department": "局" * 101}, {"department": DEPT, "who": "x"},
                {"department": DEPT, "text": "x" * 2001}):  # fmt: skip
        st, body = call(hub, "sup", "POST", p, bad)
        assert st in (400, 422) and body["error"], (bad, st, body)
    st, f = call(hub, "sup", "POST", p, {"department": f"  {DEPT} ", "text": "7号窗口属市场监管窗口"})
    assert st == 201 and f["department"] == DEPT and f["step"] == "verify"
    last = f["events"][-1]
    assert (last["actor"], last["action"], last["action_zh"]) == ("sup", "assign", "分派承办部门")
    assert last["text"] == f"分派至{DEPT}：7号窗口属市场监管窗口"
    # a retried form is answered, not recorded twice; another department is refused
    st, f = call(hub, "sup", "POST", p, {"department": DEPT})
    assert st == 201 and [e["action"] for e in f["events"]] == ["open", "assign"]
    st, body = call(hub, "sup", "POST", p, {"department": "税务局"})
    assert st == 409 and "已由「市场监督管理局」承办" in body["error"]
    # the department now sees it, and was told through the outbox
    assert call(hub, "dept", "GET", f"/api/followups/{fid}")[0] == 200
    keys = [r[0] for r in hub.reader.execute("SELECT dedupe_key FROM notifications ORDER BY id")]
    assert f"followup:{fid}:assign|sms|13800138000" in keys
    audit = hub.reader.execute(
        "SELECT actor, action, target, result FROM audit_log WHERE action = 'followup.assign' ORDER BY id"
    ).fetchall()
    target = f"followup {fid} -> {DEPT}"
    assert [tuple(r) for r in audit] == [  # refusals are recorded too, with the actor from the session
        ("sup-b", "followup.assign", target, "404"),
        ("sup", "followup.assign", f"followup 999 -> {DEPT}", "404"),
        ("sup", "followup.assign", target, "201"),
        ("sup", "followup.assign", target, "201"),
        ("sup", "followup.assign", f"followup {fid} -> 税务局", "409"),
    ]


def test_a_red_followup_is_on_the_wall_with_its_reason(world):
    hub, a, _case, _ = world
    fid = unassigned(hub, a)  # opened Wed 14 Oct 2026: 7 working days → due Fri 23 Oct
    assert hub.reader.execute("SELECT due FROM followups").fetchone()[0] == "2026-10-23"
    hub.ingest.now = lambda: datetime(2026, 10, 26, 10, 0, tzinfo=CST)  # Mon: red
    hub.ingest.sweep()
    hub.ingest.now = lambda: datetime(2026, 10, 27, 10, 0, tzinfo=CST)  # Tue: two working days late
    st, wall = call(hub, "sup", "GET", "/api/wall")
    assert st == 200
    (late,) = wall["late_followups"]
    assert (late["id"], late["site"], late["window"], late["department"]) == (fid, SITE_A, "7", None)
    assert late["rating_zh"] == "评价器「不满意」" and late["reasons_zh"] == ["差评回访逾期未办结"]
    assert (late["due_date"], late["days_overdue"], late["light_zh"]) == ("2026-10-23", 2, "红牌")
    tid = late["ticket_id"]
    assert hub.reader.execute("SELECT subject, case_no FROM tickets WHERE id=?", (tid,)).fetchone() == (
        "followup",
        str(fid),
    )
    # scope: another county's supervisor does not see it; the department only once it is theirs
    assert call(hub, "sup-b", "GET", "/api/wall")[1]["late_followups"] == []
    assert call(hub, "dept", "GET", "/api/wall")[1]["late_followups"] == []
    assert call(hub, "sup", "POST", f"/api/followups/{fid}/assign", {"department": DEPT})[0] == 201
    assert [f["id"] for f in call(hub, "dept", "GET", "/api/wall")[1]["late_followups"]] == [fid]
    # the open 督办 went along to the department
    assert hub.reader.execute("SELECT department FROM tickets WHERE id=?", (tid,)).fetchone()[0] == DEPT
    # done: off the wall, and the wall's change counter moved (its cached answer is recomputed)
    for action, text in (("verify", "已核实"), ("rectify", "已整改")):
        assert call(hub, "dept", "POST", f"/api/followups/{fid}/{action}", {"text": text})[0] == 201
    before = change_marker(hub.reader)
    assert call(hub, "dept", "POST", f"/api/followups/{fid}/callback", {"text": "已回访"})[0] == 201
    assert change_marker(hub.reader) > before
    assert call(hub, "sup", "GET", "/api/wall")[1]["late_followups"] == []


def _vote(c, seq, level, channel, window="3", staff="李四", at=datetime(2026, 10, 12, 10, tzinfo=CST)):
    names = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
    c.execute(
        'INSERT INTO votes (site, seq, case_no, "window", staff, department, key, level, level_name, '
        "mapping_version, misuse, pressed_ms, channel) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (SITE_B, seq, None, window, staff, DEPT, "k", level, names[level - 1], "v1", None,
         int(at.timestamp() * 1000), channel),
    )  # fmt: skip


def test_the_site_votes_count_keypad_and_portal_apart_with_a_total(world):
    hub, *_ = world

    def write(c):
        for seq, level in enumerate([1, 1, 2, 4, 5], start=1):  # keypad: 3 satisfied of 5
            _vote(c, seq, level, "keypad")
        _vote(c, -1, 5, "portal")  # online: one 非常不满意, one 满意 (window 3) and one at window 9
        _vote(c, -2, 2, "portal")
        _vote(c, -3, 3, "portal", window="9", staff="周八")

    hub.write(write)
    day = datetime(2026, 10, 12).date()
    v = site_votes(hub.reader, SITE_B, day, day)
    ch = {c["channel"]: c for c in v["by_channel"]}
    assert [c["channel_zh"] for c in v["by_channel"]] == ["评价器", "网上评价"]
    assert ch["keypad"]["levels"] == [2, 1, 0, 1, 1] and ch["keypad"]["satisfaction"] == 0.6
    assert ch["portal"]["levels"] == [0, 1, 1, 0, 1] and ch["portal"]["satisfaction"] == 0.6667
    assert v["total"] == {"levels": [2, 2, 1, 1, 2], "total": 8, "bad": 3, "satisfaction": 0.625}
    assert [(w["window"], w["total"], w["portal"]) for w in v["by_window"]] == [("3", 7, 2), ("9", 1, 1)]
    st, body = call(hub, "sup", "GET", f"/api/sites/{SITE_B}/votes?from=2026-10-12&to=2026-10-12")
    assert st == 200 and [(c["channel"], c["total"]) for c in body["by_channel"]] == [("keypad", 5), ("portal", 3)]
    # a site with no online rating still lists both channels, the portal at zero
    v = site_votes(hub.reader, SITE_A, day, day)
    assert [(c["channel"], c["total"], c["satisfaction"]) for c in v["by_channel"]] == [
        ("keypad", 0, None),
        ("portal", 0, None),
    ]


def test_the_department_lists_and_downloads_its_complaint_tickets_document(world):
    from hub import complaints as cp
    from hub.documents import DocumentStore

    hub, *_ = world
    cfg, cal = hub.cfg.complaints, hub.ingest.calendar
    values, errors = cp.clean({"about_kind": "hall", "about": "政务大厅", "text": "排队无人引导",
                               "contact_name": "王五", "contact_phone": "13912345678"})  # fmt: skip
    assert not errors

    def file(c):
        no, _ = cp.file_complaint(c, values, cfg, cal, NOW)
        cp.act(c, no, "accept", "sup", "", cfg, cal, NOW)
        cp.act(c, no, "assign", "sup", "", cfg, cal, NOW, department=DEPT)
        return no

    no = hub.write(file)
    late = datetime(2026, 10, 29, 10, 0, tzinfo=CST)  # reply due Wed 28 Oct
    hub.ingest.now = lambda: late
    hub.ingest.sweep()
    store = DocumentStore(hub.reader, ensure_schema=False, files_dir=hub.docs.files_dir)
    conn = connect(hub.store_url)  # the document worker's own connection, as in its thread
    try:
        hub.docs.run_once(conn, DocumentStore(conn, files_dir=hub.docs.files_dir), late)  # the world's cases' too
    finally:
        conn.close()
    ((doc_id, kind),) = hub.reader.execute("SELECT id, kind FROM documents WHERE case_no=?", (no,)).fetchall()
    assert kind == "duban" and store.get(doc_id)[0]["case_no"] == no
    st, listed = call(hub, "dept", "GET", f"/api/documents?case_no={no}")
    assert st == 200 and [d["id"] for d in listed] == [doc_id]
    pdf = f"/api/documents/{doc_id}.pdf"
    assert pdf_status(hub, "dept", pdf) == (200, "application/pdf")
    # a complaint about a hall has no site: a county supervisor does not see it, the city's does
    assert pdf_status(hub, "sup-b", pdf)[0] == 404
    assert call(hub, "sup-b", "GET", f"/api/documents?case_no={no}")[1] == []
    assert pdf_status(hub, "sup", pdf) == (200, "application/pdf")


def pdf_status(hub, login: str, path: str) -> tuple[int, str]:
    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            async with s.get(base + path, headers=cookie_headers(open_session(hub, login), base)) as r:
                await r.read()
                return r.status, r.content_type

    return asyncio.run(go())
