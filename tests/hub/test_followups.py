"""The 差评 loop (hub/followups.py, docs/ratings.md), on both store engines: a keypad 不满意 through
the real ingest path opens one follow-up (ingested twice: still one); limits per region in
working days, checked against chinese_calendar (tests/calendar_reference.py); the sweep's yellow,
red and 督办 ticket with the clock moved; steps and refusals over the API; an appeal upheld (误评:
out of the site page's rate, shown apart) or rejected (still counted)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import aiohttp
import pytest

from hub.config import Ratings
from protocol import topics
from protocol.calendar import CST
from protocol.models import VoteCast
from protocol.records import Record, encode_record, record_hash
from tests import calendar_reference as ref
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.case_helpers import DEPT, NOW, SITE_A, SITE_B, fetch, make_world, ms
from tests.hub.hubapp import close, served

LEVELS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}


@pytest.fixture
def world(tmp_path, store_url):
    w = make_world(tmp_path, store_url)
    make_user(w[0], "dept-other", "department", "自然资源局")
    yield w
    close(w[0])


def vote_body(level: int, case_no: str | None, at: datetime, *, window="3", staff="赵六", misuse=None, dept=None):
    body = {"case_no": case_no, "window": window, "staff": staff, "key": str(level), "level": level,
            "level_name": LEVELS[level], "mapping_version": "v1", "pressed_wall_ms": ms(at),
            "department": dept, "misuse": misuse}  # fmt: skip
    return VoteCast.model_validate(body).model_dump(mode="json", exclude_none=True)


def send_vote(feed, body: dict, at: datetime, *, twice: bool = False) -> int:
    """One signed, chained vote record through the hub's ingest (the same batch twice if asked)."""
    feed.seq += 1
    rec = Record(feed.seq, feed.prev, "vote", ms(at), 1, "boot", "ntp", body)
    enc = encode_record(rec)
    feed.prev = record_hash(enc)
    msg = (topics.site_batch(feed.site), feed.signer.seal([enc], feed.seq))
    for _ in range(2 if twice else 1):
        feed.hub.ingest.process_group([msg])
    return feed.seq


def rows(hub, sql="SELECT id, site, seq, case_no, department, level, due, step, light FROM followups ORDER BY id"):
    return [tuple(r) for r in hub.reader.execute(sql).fetchall()]


def call(hub, login: str, method: str, path: str, body=None):
    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, login), base)
            async with s.request(method, base + path, json=body, headers=h, allow_redirects=False) as r:
                return r.status, await (r.json() if r.content_type == "application/json" else r.text())

    return asyncio.run(go())


def test_a_keypad_bad_vote_opens_one_followup_even_when_ingested_twice(world):
    hub, a, case, _ = world
    at = NOW - timedelta(hours=1)
    seq = send_vote(a, vote_body(5, case, at), at, twice=True)
    send_vote(a, vote_body(1, case, at), at)  # 非常满意: nothing to follow up
    send_vote(a, vote_body(4, case, at, misuse="repeat"), at)  # a flagged press: not a rating
    due = ref.add_working_days(NOW.date(), 7)  # the documented default, from the day it opened
    assert rows(hub) == [(1, SITE_A, seq, case, DEPT, 5, due.isoformat(), "verify", "green")]
    assert hub.reader.execute("SELECT count(*) FROM followup_events").fetchone()[0] == 1
    # the case page and its JSON show the follow-up beside the votes
    status, body = call(hub, "sup", "GET", f"/api/cases/{case}")
    assert status == 200 and [(f["id"], f["channel_zh"], f["step_zh"]) for f in body["followups"]] == [
        (1, "评价器", "待核实")
    ]
    status, html = call(hub, "sup", "GET", f"/cases/{case}")
    assert status == 200 and "差评回访" in html and 'data-followup="1"' in html and "评价器" in html


def test_a_vote_without_a_case_goes_to_the_windows_department(world):
    hub, a, _case, _ = world
    at = NOW - timedelta(minutes=5)
    send_vote(a, vote_body(4, None, at, window="7", staff="钱七", dept="税务局"), at)
    ((fid, site, _seq, case_no, dept, level, _due, step, _),) = rows(hub)
    assert (site, case_no, dept, level, step) == (SITE_A, None, "税务局", 4, "verify")
    st, body = call(hub, "sup", "GET", f"/api/followups/{fid}")
    assert st == 200 and body["window"] == "7" and body["staff"] == "钱七" and body["step_zh"] == "待核实"
    assert body["events"][0]["action_zh"] == "差评生成回访件"
    st, _ = call(hub, "dept", "GET", f"/api/followups/{fid}")  # another department's: as if unknown
    assert st == 404


def test_limits_per_region_prefix_in_working_days(world):
    hub, a, case, other = world
    hub.ingest.ratings = Ratings(default_days=7, limits={"1407": 15, "140702": 5})
    at = NOW - timedelta(hours=2)
    send_vote(a, vote_body(4, case, at), at)
    from tests.hub.case_helpers import Feed

    b = Feed(hub, hub.cfg.registry.parent, SITE_B)
    b.seq, b.prev = 1, bytes(hub.reader.execute("SELECT hash FROM records WHERE site=?", (SITE_B,)).fetchone()[0])
    send_vote(b, vote_body(5, other, at), at)
    got = {r[1]: r[6] for r in rows(hub)}
    assert got == {
        SITE_A: ref.add_working_days(NOW.date(), 5).isoformat(),  # the longest prefix wins
        SITE_B: ref.add_working_days(NOW.date(), 15).isoformat(),
    }
    with pytest.raises(ValueError):
        Ratings(limits={"14a": 5})
    with pytest.raises(ValueError):
        Ratings(limits={"14": 31})


def test_the_sweep_turns_it_yellow_then_red_and_opens_a_duban_ticket(world):
    hub, a, case, _ = world
    at = NOW - timedelta(hours=1)
    send_vote(a, vote_body(5, case, at), at)
    due = ref.add_working_days(NOW.date(), 7)
    before = due - timedelta(days=1)
    while not ref.is_working_day(before):
        before -= timedelta(days=1)

    def sweep_at(day):
        hub.ingest.now = lambda: datetime(day.year, day.month, day.day, 10, tzinfo=CST)
        hub.ingest.sweep()
        return rows(hub, "SELECT light, ticket_id FROM followups")[0]

    assert sweep_at(NOW.date()) == ("green", None)
    before_prev = before - timedelta(days=1)
    while not ref.is_working_day(before_prev):
        before_prev -= timedelta(days=1)
    assert sweep_at(before_prev) == ("green", None)  # two working days left
    assert sweep_at(before) == ("yellow", None)  # one working day left (supervision.yellow_days = 1)
    assert sweep_at(due) == ("yellow", None)
    light, tid = sweep_at(due + timedelta(days=1))
    assert light == "red" and tid is not None
    key, subject, level, reason = hub.reader.execute(
        "SELECT case_no, subject, level, reason FROM tickets WHERE id=?", (tid,)
    ).fetchone()
    # the ticket's subject is the follow-up itself (its id as the key), not the case
    assert (key, subject, level) == ("1", "followup", "duban") and "差评回访件 #1" in reason
    assert sweep_at(due + timedelta(days=2)) == ("red", tid)  # one ticket, not one a sweep
    actions = [r[0] for r in hub.reader.execute("SELECT action FROM followup_events ORDER BY id")]
    assert actions == ["open", "yellow", "red", "duban"]


def test_steps_in_order_refusals_and_a_retry_recorded_once(world):
    hub, a, case, _ = world
    at = NOW - timedelta(hours=1)
    send_vote(a, vote_body(4, case, at), at)
    p = "/api/followups/1"
    assert call(hub, "dept", "POST", p + "/rectify", {"text": "已整改"})[0] == 409  # 核实 first
    assert call(hub, "sup", "POST", p + "/verify", {"text": "核实"})[0] == 403  # not a supervisor's step
    assert call(hub, "dept", "POST", p + "/misuse", {"text": "x"})[0] == 403  # not a department's decision
    assert call(hub, "dept-other", "POST", p + "/verify", {"text": "x"})[0] == 404
    assert call(hub, "dept", "POST", p + "/verify", {"text": ""})[0] in (400, 422)
    assert call(hub, "dept", "POST", p + "/verify", {"text": "x" * 2001})[0] in (400, 422)
    st, f = call(hub, "dept", "POST", p + "/verify", {"text": "经调取录像，窗口人员答复不够耐心"})
    assert st == 201 and f["step"] == "rectify"
    st, f = call(hub, "dept", "POST", p + "/verify", {"text": "经调取录像，窗口人员答复不够耐心"})  # a retry
    assert st == 201 and [e["action"] for e in f["events"]] == ["open", "verify"]
    assert call(hub, "sup", "POST", p + "/reject", {"text": "x"})[0] == 409  # no appeal pending
    call(hub, "dept", "POST", p + "/rectify", {"text": "已批评教育，组织服务礼仪培训"})
    st, f = call(hub, "dept", "POST", p + "/callback", {"text": "电话回访，群众表示满意"})
    assert st == 201 and f["step"] == "done" and f["closed_ms"] is not None
    assert call(hub, "dept", "POST", p + "/appeal", {"text": "误评"})[0] == 409  # done: no appeal
    actors = {e["actor"] for e in f["events"][1:]}
    assert actors == {"dept"}  # from the session, never from the body
    st, listed = call(hub, "dept", "GET", "/api/followups?status=closed")
    assert st == 200 and [x["id"] for x in listed["followups"]] == [1]
    assert call(hub, "dept-other", "GET", "/api/followups?status=all")[1]["followups"] == []


def _site_votes(hub):
    day = NOW.date().isoformat()
    ((st, body, _),) = fetch(hub, "admin1", f"/api/sites/{SITE_A}/votes?from={day}&to={day}")
    assert st == 200
    return body


def test_an_upheld_appeal_takes_the_vote_out_of_the_rate_and_shows_it_apart(world):
    hub, a, case, _ = world
    at = NOW - timedelta(hours=1)
    send_vote(a, vote_body(1, case, at), at)
    send_vote(a, vote_body(5, case, at), at)
    v = _site_votes(hub)
    assert (v["total"]["total"], v["total"]["satisfaction"], v["marked"]) == (2, 0.5, 0)
    st, f = call(hub, "dept", "POST", "/api/followups/1/appeal", {"text": "评价人当场表示按错键"})
    assert st == 201 and f["step"] == "appealed" and f["resume_step"] == "verify"
    assert call(hub, "dept", "POST", "/api/followups/1/appeal", {"text": "再次申诉"})[0] == 409
    assert call(hub, "dept", "POST", "/api/followups/1/verify", {"text": "x"})[0] == 409  # paused
    st, f = call(hub, "sup", "POST", "/api/followups/1/misuse", {"text": "录像显示评价人误按"})
    assert st == 201 and (f["step"], f["mark"], f["mark_zh"]) == ("excluded", "misuse", "误评")
    assert f["events"][-1]["actor"] == "sup" and f["events"][-1]["text"] == "录像显示评价人误按"
    v = _site_votes(hub)
    assert (v["total"]["total"], v["total"]["satisfaction"], v["marked"]) == (1, 1.0, 1)
    assert hub.reader.execute("SELECT count(*) FROM votes").fetchone()[0] == 2  # kept
    ((_, page, _),) = fetch(hub, "sup", "/followups?status=all")
    assert "误评·不计入满意率" in page and "录像显示评价人误按" in page


def test_a_rejected_appeal_keeps_the_vote_counted_and_the_steps_resume(world):
    hub, a, case, _ = world
    at = NOW - timedelta(hours=1)
    send_vote(a, vote_body(4, case, at), at)
    call(hub, "dept", "POST", "/api/followups/1/verify", {"text": "已核实"})
    call(hub, "dept", "POST", "/api/followups/1/appeal", {"text": "恶意差评"})
    st, f = call(hub, "sup", "POST", "/api/followups/1/reject", {"text": "证据不足"})
    assert st == 201 and (f["step"], f["appeal"], f["mark"]) == ("rectify", "rejected", None)
    assert call(hub, "dept", "POST", "/api/followups/1/appeal", {"text": "再申诉"})[0] == 409  # once
    v = _site_votes(hub)
    assert (v["total"]["total"], v["total"]["bad"], v["marked"]) == (1, 1, 0)


def test_one_site_cannot_open_follow_ups_without_bound(world, monkeypatch):
    from hub import followups
    from hub.store import counter_totals

    hub, a, case, _ = world
    monkeypatch.setattr(followups, "PER_SITE_DAY", 2)
    at = NOW - timedelta(hours=1)
    for i in range(3):
        send_vote(a, vote_body(5, case, at + timedelta(minutes=i)), at + timedelta(minutes=i))
    assert len(rows(hub)) == 2
    assert counter_totals(hub.reader).get("followups_capped") == 1
    assert hub.reader.execute("SELECT count(*) FROM votes").fetchone()[0] == 3  # every vote is kept
    with pytest.raises(ValueError):
        hub.write(lambda c: followups.open_followup_for_rating(
            c, channel="sms", rating_ref="1", level=5, level_name="非常不满意", rated_ms=0, now=NOW,
            calendar=hub.ingest.calendar))  # fmt: skip
