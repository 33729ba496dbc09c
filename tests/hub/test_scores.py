"""Scores (hub/scores.py) over a small hand-built month (tests/hub/scores_helpers.py), on both
store engines. Every expected number below is worked out by hand from the records and the rules
(default file: seed 003's method; a custom file for caps, ratings and misuse)."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from hub import scores
from hub.scores_rules import load_rules, parse_rules
from iobase.sqlite import transaction
from protocol.calendar import CST, default_calendar
from tests.hub.scores_helpers import GA, MS, SITE, ZR, seed_month

CAL = default_calendar()
AFTER = date(2026, 12, 2)  # computed after the month ended


@pytest.fixture
def month(db):
    with transaction(db):
        seed_month(db)
    return db


def _result(conn, rules=None, period="2026-11", as_of=AFTER):
    res = scores.period_result(conn, rules or load_rules(), scores.parse_period(period), CAL, as_of)
    return json.loads(res["json"]), res


def _entry(result, level, key):
    (e,) = [x for x in result["by"][level] if x["key"] == key]
    return e


def _by_rule(entry) -> dict[str, float]:
    out: dict[str, float] = {}
    for ln in entry["lines"]:
        out[ln["rule"]] = out.get(ln["rule"], 0) + ln["points"]
    return out


# default rules, November 2026, per target: rule id → points (by hand, see scores_helpers.py)
EXPECTED_DEFAULT = {
    ("department", MS): {
        "verified_dissatisfaction": -20,  # 回访#1 (非常不满意), 回访#3 (不满意): −10 each
        "complaint_late": -12,  # TS1: due 11-16, replied 11-19: 11-17, 11-18, 11-19 late, −4 each
        "unattended_window": -10,  # window 1 (MS's cases) on 11-01 01:30 CST and 11-11: −5 each
        "immediate_conversion": 5,  # CC promised 5 → 0, immediate (catalog v2 on 11-15)
        "promise_shortened": 5,  # A promised 10 → 8 (legal 20)
        "written_thanks": 2,
        "yellow_card": -2,  # C1 (11-05), C2 (11-06); C2's October card is not November's
        "red_card": -3,  # C1 once (two alerts, one card)
        "ticket_unanswered": -2,  # 督办#1 due 11-16, no reply; #3 is late only on 12-01
    },
    ("department", ZR): {"not_in_hall": -5, "red_card": -3, "discipline": -5},  # 回访#2 marked 误评: not counted
    ("department", GA): {},
    ("window", f"{SITE}/1"): {
        "verified_dissatisfaction": -20,
        "unattended_window": -10,
        "written_thanks": 2,
        "yellow_card": -2,
        "red_card": -3,
    },  # fmt: skip
    ("window", f"{SITE}/2"): {"not_in_hall": -5, "red_card": -3},
    ("staff", f"{SITE}/张三"): {"staff_dissatisfaction": -4, "written_thanks": 2, "yellow_card": -2, "red_card": -3},
    ("staff", f"{SITE}/李四"): {"red_card": -3, "discipline": -5},
}
SCORES_DEFAULT = {  # 100 + the sum of the rows above
    ("department", MS): 63, ("department", ZR): 87, ("department", GA): 100,
    ("window", f"{SITE}/1"): 67, ("window", f"{SITE}/2"): 92,
    ("staff", f"{SITE}/张三"): 93, ("staff", f"{SITE}/李四"): 92,
}  # fmt: skip


@pytest.mark.parametrize("target", list(EXPECTED_DEFAULT), ids=lambda t: f"{t[0]}:{t[1]}")
def test_default_rules_give_the_hand_computed_points_per_rule(month, target):
    result, _ = _result(month)
    entry = _entry(result, *target)
    assert _by_rule(entry) == EXPECTED_DEFAULT[target]
    assert entry["score"] == SCORES_DEFAULT[target]
    assert {x["key"] for x in result["by"][target[0]]} == {k for lv, k in SCORES_DEFAULT if lv == target[0]}


def test_ranking_and_every_line_names_its_record_and_date(month):
    result, _ = _result(month)
    assert [(x["rank"], x["key"]) for x in result["by"]["department"]] == [(1, GA), (2, ZR), (3, MS)]
    late = [ln for ln in _entry(result, "department", MS)["lines"] if ln["rule"] == "complaint_late"]
    assert [(ln["ref"], ln["date"]) for ln in late] == [
        ("TS1", "2026-11-17"),
        ("TS1", "2026-11-18"),
        ("TS1", "2026-11-19"),
    ]
    unattended = [ln for ln in _entry(result, "window", f"{SITE}/1")["lines"] if ln["rule"] == "unattended_window"]
    assert [ln["date"] for ln in unattended] == ["2026-11-01", "2026-11-11"]  # China dates
    ticket = [ln for ln in _entry(result, "department", MS)["lines"] if ln["rule"] == "ticket_unanswered"]
    assert [(ln["ref"], ln["date"]) for ln in ticket] == [("督办#1", "2026-11-17")]


def test_two_verified_dissatisfactions_within_22_working_days_disqualify(month):
    result, _ = _result(month)
    for level, key in (("department", MS), ("window", f"{SITE}/1"), ("staff", f"{SITE}/张三")):
        (d,) = _entry(result, level, key)["disqualified"]
        assert d["rule"] == "two_complaints_22" and d["refs"] == ["2026-11-09 回访#1", "2026-11-20 回访#3"]
    assert _entry(result, "department", ZR)["disqualified"] == []  # its one 差评 is marked 误评


CUSTOM = """
base: 50
rules:
  - {id: sat, label: 满意评价, kind: satisfied_rating, points: 1, cap: 2, lands_on: [department]}
  - {id: sat_portal, label: 网上满意, kind: satisfied_rating, filter: {channel: portal}, points: 0.5,
     lands_on: [department]}
  - {id: yellow, label: 黄牌, kind: yellow_card, points: -1.5, cap: 2, lands_on: [department]}
disqualify:
  - {id: reds, label: 有红牌, kinds: [red_card], at_least: 1, periods: [month], lands_on: [department]}
"""


def test_caps_satisfied_ratings_misuse_excluded_and_filters(month):
    result, _ = _result(month, parse_rules(CUSTOM))
    ms_entry = _entry(result, "department", MS)
    lines = [(ln["rule"], ln["ref"], ln["points"], ln.get("capped_from")) for ln in ms_entry["lines"]]
    assert lines == [
        ("sat", "C1", 1, None),  # 11-02 非常满意
        ("sat", "C2", 1, None),  # 11-03 满意 (portal)
        ("sat", "C1", 0, 1),  # 11-05: the cap of 2 is reached (the 11-04 press is misuse: not counted)
        ("sat_portal", "C2", 0.5, None),
        ("yellow", "C1", -1.5, None),
        ("yellow", "C2", -0.5, -1.5),  # cap 2: only 0.5 left
    ]
    assert ms_entry["score"] == 50.5
    assert [(x["rank"], x["key"], x["score"]) for x in result["by"]["department"]] == [
        (1, MS, 50.5), (2, GA, 50), (2, ZR, 50)]  # fmt: skip
    assert [d["rule"] for d in ms_entry["disqualified"]] == ["reds"]
    assert [d["rule"] for d in _entry(result, "department", ZR)["disqualified"]] == ["reds"]


def test_quarter_and_year_take_in_october(month):
    q, _ = _result(month, parse_rules(CUSTOM), "2026-Q4")
    yellow = [ln for ln in _entry(q, "department", MS)["lines"] if ln["rule"] == "yellow"]
    assert [(ln["ref"], ln["date"], ln["points"]) for ln in yellow] == [
        ("C2", "2026-10-30", -1.5),
        ("C1", "2026-11-05", -0.5),
    ]  # fmt: skip  (cap 2 per quarter)
    assert _entry(q, "department", MS)["disqualified"] == []  # the 'reds' rule is for months only
    y, _ = _result(month, None, "2026")
    assert [d["rule"] for d in _entry(y, "department", MS)["disqualified"]] == ["two_complaints_22"]  # 1 red: not 3


def test_a_closed_period_is_frozen_byte_for_byte_and_a_late_record_is_reported(month):
    rules, p = load_rules(), scores.parse_period("2026-11")
    with pytest.raises(scores.ScoresError, match="尚未结束"):
        with transaction(month):
            scores.close_period(month, rules, p, CAL, datetime(2026, 11, 30, 23, tzinfo=CST), "sup")
    with transaction(month):
        scores.close_period(month, rules, p, CAL, datetime(2026, 12, 2, 9, tzinfo=CST), "sup")
    before = scores.period_result(month, rules, p, CAL, AFTER)
    assert before["closed"]["actor"] == "sup" and before["inputs_changed"] is False
    values, errors = scores.clean_manual({"day": "2026-11-28", "category": "media_praise", "department": ZR,
                                          "reason": "日报表扬", "attachment": "报道.pdf"})  # fmt: skip
    assert not errors
    with transaction(month):
        scores.add_manual(month, values, "sup", datetime(2026, 12, 3, 9, tzinfo=CST))
    after = scores.period_result(month, rules, p, CAL, date(2026, 12, 3))
    assert after["json"] == before["json"]  # frozen
    assert after["inputs_changed"] is True and after["fingerprint"] != before["closed"]["inputs_sha256"]
    fresh = json.loads(scores.fresh(month, rules, p, CAL, date(2026, 12, 3))[0])
    assert _entry(fresh, "department", ZR)["score"] == 90  # 87 + 3: what reopening would give
    assert _entry(json.loads(after["json"]), "department", ZR)["score"] == 87
    audit = [r[0] for r in month.execute("SELECT action FROM audit_log ORDER BY id")]
    assert audit == ["scores close", "scores manual media_praise"]
    with pytest.raises(scores.ScoresError, match="已封存"):
        with transaction(month):
            scores.close_period(month, rules, p, CAL, datetime(2026, 12, 4, tzinfo=CST), "sup")


def test_an_open_period_counts_only_up_to_as_of(month):
    mid, _ = _result(month, None, "2026-11", date(2026, 11, 18))  # 11-19 and later not yet happened
    late = [ln["date"] for ln in _entry(mid, "department", MS)["lines"] if ln["rule"] == "complaint_late"]
    assert late == ["2026-11-17", "2026-11-18"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: []", "rules.yaml: key rules: Tuple should have at least 1 item"),
        ("rules:\n  - {id: a, label: x, kind: nope, points: 1}", "rule a (rules[0]), key kind: unknown event kind 'nope'"),
        ("rules:\n  - {id: a, label: x, kind: red_card, points: 0}", "rule a (rules[0]), key points: points must not be 0"),
        ("rules:\n  - {id: a, label: x, kind: red_card, points: -1, filter: {channel: x}}",
         "rule a (rules[0]), key (the rule): filter key 'channel' does not apply to red_card"),
        ("rules:\n  - {id: a, label: x, kind: red_card, points: -1, cap: -2}", "rule a (rules[0]), key cap"),
        ("rules:\n  - {id: a, label: x, kind: red_card, points: -1, lands_on: [county]}", "rule a (rules[0]), key lands_on.0"),
        ("rules:\n  - {id: a, label: x, kind: red_card, points: -1, colour: red}", "rule a (rules[0]), key colour: Extra"),
        ("rules:\n  - {id: a, label: x, kind: red_card, points: -1}\n  - {id: a, label: y, kind: red_card, points: 1}",
         "used twice"),
        ("rules:\n  - {id: a, label: x, kind: manual, points: 1, filter: {category: gift}}", "filter category: one of"),
        ("rules: [", "rules.yaml: not valid YAML"),
        ("- 1", "rules.yaml: expected a mapping"),
    ],
)  # fmt: skip
def test_rules_file_errors_name_file_rule_and_key(text, message):
    with pytest.raises(ValueError) as exc:
        parse_rules(text, "rules.yaml")
    assert message in str(exc.value)


def test_manual_item_validation():
    _, errors = scores.clean_manual({"day": "2026-13-01", "category": "gift", "staff": "张三", "reason": "x" * 501})
    assert set(errors) == {"day", "category", "reason", "attachment", "site"}
    assert "过长" in errors["reason"]


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "26", "", "2026-11-01"])
def test_bad_periods_are_refused(text):
    with pytest.raises(scores.ScoresError, match="期间格式"):
        scores.parse_period(text)
