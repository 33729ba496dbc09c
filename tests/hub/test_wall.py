"""The wall's data (GET /api/wall) and the site page's votes (GET /api/sites/{code}/votes), on
both store engines: late cases first with days overdue, window, clerk, head and the reasons in
Chinese; scope for a county supervisor and a department officer; votes by window and staff."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime

import aiohttp
import pytest

from hub.notify.directory import Department, Directory, Person, save_directory
from hub.wall import days_overdue, late_reasons
from protocol.calendar import CST, default_calendar
from tests.craft import registration
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.hubapp import close, provisioned_hub, served

SITE_A, SITE_A2, SITE_B = "140702-001", "140702-002", "140703-001"  # two counties
DEPT_A, DEPT_B = "市场监督管理局", "自然资源局"
NOW = datetime(2026, 12, 9, 10, 0, tzinfo=CST)  # a Wednesday


def _case(c, n, site, dept, light, due, *, status="accepted", closed=0, violations=(), window="3号窗口", clerk="李四"):
    reg = registration(site, n)
    reg.update(window=window, clerk=clerk)
    c.execute(
        "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, reg_seq, "
        "reg_json, status, light, due_date, legal_due_date, violations, closed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (reg["case_no"], site, "XK-001", "食品经营许可", dept, reg["query_code"], reg["received_at"], n,
         json.dumps(reg, ensure_ascii=False), status, light, due, None, json.dumps(list(violations)), closed),
    )  # fmt: skip
    return reg["case_no"]


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=(SITE_A, SITE_A2, SITE_B), store_url=store_url)
    h.ingest.now = lambda: NOW
    for login, role, scope in (
        ("admin1", "admin", None),
        ("sup-a", "supervisor", "140702"),
        ("dept-a", "department", DEPT_A),
        ("wall-a", "viewer", "140702"),
    ):
        make_user(h, login, role, scope)
    yield h
    close(h)


def seed(hub) -> dict[str, str]:
    def write(c):
        cases = {
            "yellow_a": _case(c, 1, SITE_A, DEPT_A, "yellow", "2026-12-10"),
            "red_late_a": _case(c, 2, SITE_A, DEPT_A, "red", "2026-12-02", window="5号窗口", clerk="王五"),
            "red_rule_b": _case(
                c, 3, SITE_B, DEPT_B, "red", "2026-12-01", status="received", violations=["acceptance_timeout"]
            ),
            "green_a2": _case(c, 4, SITE_A2, DEPT_B, "green", "2026-12-30"),
            "closed_red_a": _case(c, 5, SITE_A, DEPT_A, "red", "2026-11-20", status="completed", closed=1),
        }
        c.execute("INSERT INTO sites (code, online, last_seen_ms) VALUES (?, 1, ?)", (SITE_A, 1_796_000_000_000))
        directory = Directory(departments=(Department(name=DEPT_A, head=Person(name="王局长", phone="13800138000")),))
        save_directory(c, directory, now_ms=1)
        return cases

    return hub.write(write)


def _get(hub, login: str, paths: list[str]):
    async def go():
        out = []
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, login), base)
            for p in paths:
                async with s.get(base + p, headers=h) as r:
                    out.append((r.status, await r.json()))
        return out

    return asyncio.run(go())


def test_days_overdue_count_working_days_after_the_due_day():
    cal = default_calendar()
    assert days_overdue(date(2026, 12, 2), date(2026, 12, 9), cal) == 5  # Thu Fri Mon Tue Wed
    assert days_overdue(date(2026, 12, 9), date(2026, 12, 9), cal) == 0
    assert days_overdue(None, date(2026, 12, 9), cal) == 0
    assert days_overdue(date(2026, 9, 30), date(2026, 10, 8), cal) == 1  # 国庆 1-7 Oct off, the 8th a working day


def test_late_reasons_are_chinese_and_name_every_cause():
    today = date(2026, 12, 9)
    assert late_reasons("accepted", "red", [], date(2026, 12, 2), None, today) == ["逾期未办结"]
    assert late_reasons("accepted", "red", ["second_extension"], date(2026, 12, 2), date(2026, 12, 3), today) == [
        "逾期未办结",
        "超过法定时限",
        "重复延期",
    ]
    assert late_reasons("received", "red", ["acceptance_timeout"], date(2026, 12, 1), None, today) == [
        "逾期未受理（视为受理）"
    ]
    assert late_reasons("accepted", "yellow", [], date(2026, 12, 10), None, today) == ["临近办理期限"]
    assert late_reasons("accepted", "red", ["a_new_code"], None, None, today) == ["其他程序违规"]


def test_the_wall_lists_late_cases_first_with_days_window_clerk_head_and_reason(hub):
    cases = seed(hub)
    [(status, wall)] = _get(hub, "admin1", ["/api/wall"])
    assert status == 200
    assert wall["counts"] == {"green": 1, "yellow": 1, "red": 2} and wall["late_total"] == 3
    late = wall["late"]
    assert [c["case_no"] for c in late] == [cases["red_rule_b"], cases["red_late_a"], cases["yellow_a"]]
    rule, overdue, soon = late
    assert overdue["days_overdue"] == 5 and overdue["reasons_zh"] == ["逾期未办结"]
    assert overdue["window"] == "5号窗口" and overdue["clerk"] == "王五" and overdue["head"] == "王局长"
    assert overdue["site_name"] == f"{SITE_A}便民服务中心" and overdue["light_zh"] == "红牌"
    assert rule["reasons_zh"] == ["逾期未受理（视为受理）"] and rule["head"] is None and rule["days_overdue"] == 6
    assert soon["days_overdue"] == 0 and soon["remaining_days"] == 1 and soon["reasons_zh"] == ["临近办理期限"]
    assert "applicant" not in json.dumps(wall, ensure_ascii=False) and "王五" not in str(
        [c for c in late if c is not overdue]
    )
    # sites by name, worst first; every known site listed (with nothing open it shows zeros)
    sites = {s["code"]: s for s in wall["sites"]}
    assert wall["sites"][0]["code"] in (SITE_A, SITE_B)
    assert sites[SITE_A]["name"] == f"{SITE_A}便民服务中心" and sites[SITE_A]["online"] is True
    assert (sites[SITE_A]["red"], sites[SITE_A]["yellow"], sites[SITE_A]["green"]) == (1, 1, 0)
    assert sites[SITE_A2]["green"] == 1 and sites[SITE_A2]["online"] is False
    deps = {d["department"]: d for d in wall["departments"]}
    assert deps[DEPT_A] == {"department": DEPT_A, "head": "王局长", "green": 0, "yellow": 1, "red": 1}
    assert deps[DEPT_B]["red"] == 1 and deps[DEPT_B]["green"] == 1 and deps[DEPT_B]["head"] is None
    assert wall["today"] == "2026-12-09"


def test_a_county_supervisor_and_a_viewer_see_only_their_county(hub):
    cases = seed(hub)
    for login in ("sup-a", "wall-a"):
        [(status, wall)] = _get(hub, login, ["/api/wall"])
        assert status == 200
        assert [c["case_no"] for c in wall["late"]] == [cases["red_late_a"], cases["yellow_a"]]
        assert {s["code"] for s in wall["sites"]} == {SITE_A, SITE_A2}
        assert wall["counts"] == {"green": 1, "yellow": 1, "red": 1}
        assert {d["department"] for d in wall["departments"]} == {DEPT_A, DEPT_B}  # DEPT_B's case at SITE_A2


def test_a_department_officer_sees_only_its_department(hub):
    cases = seed(hub)
    [(status, wall)] = _get(hub, "dept-a", ["/api/wall"])
    assert status == 200
    assert [c["case_no"] for c in wall["late"]] == [cases["red_late_a"], cases["yellow_a"]]
    assert [d["department"] for d in wall["departments"]] == [DEPT_A]
    assert [s["code"] for s in wall["sites"]] == [SITE_A]  # only where its cases are
    assert "online" not in wall["sites"][0]  # site health is for the sites' supervisors
    assert wall["counts"] == {"green": 0, "yellow": 1, "red": 1}


def test_wall_limit_is_bounded_and_checked(hub):
    seed(hub)
    got = _get(hub, "admin1", ["/api/wall?limit=1", "/api/wall?limit=abc", "/api/wall?limit=999999"])
    assert got[0][0] == 200 and len(got[0][1]["late"]) == 1 and got[0][1]["late_total"] == 3
    assert got[1][0] == 400 and "limit" in got[1][1]["error"]
    assert got[2][0] == 200 and len(got[2][1]["late"]) == 3


def _vote(c, site, seq, window, staff, level, pressed: datetime, misuse=None):
    names = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
    c.execute(
        'INSERT INTO votes (site, seq, case_no, "window", staff, department, key, level, level_name, '
        "mapping_version, misuse, pressed_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (site, seq, None, window, staff, DEPT_A, "k", level, names[level - 1], "v1", misuse,
         int(pressed.timestamp() * 1000)),
    )  # fmt: skip


def test_site_votes_by_window_and_staff_over_a_period(hub):
    def write(c):
        inside = datetime(2026, 12, 1, 10, tzinfo=CST)
        for seq, (window, staff, level) in enumerate(
            [("3", "李四", 1), ("3", "李四", 2), ("3", "李四", 4), ("10", "王五", 5), ("3", "赵六", 3)], start=1
        ):
            _vote(c, SITE_A, seq, window, staff, level, inside)
        _vote(c, SITE_A, 10, "3", "李四", 5, datetime(2026, 11, 30, 23, 59, tzinfo=CST))  # the day before
        _vote(c, SITE_A, 11, "3", "李四", 5, inside, misuse="repeat")  # flagged: not counted
        _vote(c, SITE_B, 1, "3", "李四", 5, inside)  # another site

    hub.write(write)
    got = _get(
        hub,
        "admin1",
        [
            f"/api/sites/{SITE_A}/votes?from=2026-12-01&to=2026-12-09",
            f"/api/sites/{SITE_A}/votes?from=2026-12-09&to=2026-12-01",
            f"/api/sites/{SITE_A}/votes?from=2025-01-01&to=2026-12-09",
            f"/api/sites/{SITE_A}/votes?from=12/01/2026",
            f"/api/sites/{SITE_A}/votes",  # the last 30 days up to the hub's today
        ],
    )
    status, v = got[0]
    assert status == 200 and v["name"] == f"{SITE_A}便民服务中心"
    assert v["total"] == {"levels": [1, 1, 1, 1, 1], "total": 5, "bad": 2, "satisfaction": 0.6}
    assert v["misuse"] == 1 and v["level_names"][0] == "非常满意"
    assert [(w["window"], w["levels"], w["satisfaction"]) for w in v["by_window"]] == [
        ("3", [1, 1, 1, 1, 0], 0.75),
        ("10", [0, 0, 0, 0, 1], 0.0),
    ]
    staff = {(s["staff"], s["window"]): s for s in v["by_staff"]}
    assert staff[("李四", "3")]["levels"] == [1, 1, 0, 1, 0] and staff[("李四", "3")]["satisfaction"] == 0.6667
    assert staff[("赵六", "3")]["total"] == 1 and staff[("王五", "10")]["bad"] == 1
    assert got[1][0] == 400 and "开始日期不能晚于结束日期" in got[1][1]["error"]
    assert got[2][0] == 400 and "366" in got[2][1]["error"]
    assert got[3][0] == 400 and "YYYY-MM-DD" in got[3][1]["error"]
    assert got[4][0] == 200 and got[4][1]["from"] == "2026-11-10" and got[4][1]["to"] == "2026-12-09"
    assert got[4][1]["total"]["total"] == 6  # 30 Nov's vote is inside the default period


def test_site_votes_are_not_for_another_county(hub):
    got = _get(hub, "sup-a", [f"/api/sites/{SITE_B}/votes", f"/api/sites/{SITE_A}/votes"])
    assert got[0][0] == 404 and got[1][0] == 200 and got[1][1]["total"]["satisfaction"] is None


def test_the_wall_cache_holds_while_the_change_counter_stands():
    from hub.api_wall import WallCache

    c = WallCache(entries=2, max_age_s=30)
    c.put(("a",), 5, "2026-12-09", 100.0, b"A")
    assert c.get(("a",), 5, "2026-12-09", 120.0) == b"A"
    assert c.get(("a",), 6, "2026-12-09", 120.0) is None  # something changed
    assert c.get(("a",), 5, "2026-12-10", 120.0) is None  # a new day: days overdue move
    assert c.get(("a",), 5, "2026-12-09", 131.0) is None  # older than max_age_s
    c.put(("b",), 5, "2026-12-09", 100.0, b"B")
    c.put(("c",), 5, "2026-12-09", 100.0, b"C")
    assert c.get(("a",), 5, "2026-12-09", 101.0) is None and len(c.data) == 2  # the oldest went
