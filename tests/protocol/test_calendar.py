"""Working-day calendar: seeded tables against chinese_calendar and the State Council notices."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import calendar_data
from protocol.calendar import (
    CST,
    CalendarError,
    WorkCalendar,
    YearTable,
    default_calendar,
    local_date,
)

CAL = default_calendar()
D = date.fromisoformat
ROOT = Path(__file__).resolve().parents[2]


def all_days(year: int):
    """Every date of a year."""
    d = date(year, 1, 1)
    while d.year == year:
        yield d
        d += timedelta(days=1)


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_every_day_matches_chinese_calendar(year):
    mismatches = [d for d in all_days(year) if CAL.is_working_day(d) != chinese_calendar.is_workday(d)]
    assert mismatches == []


def test_default_calendar_years_and_sources():
    assert CAL.years() == (2024, 2025, 2026)
    assert all(CAL.is_loaded(y) for y in (2024, 2025, 2026))
    assert not CAL.is_loaded(2027)
    assert "chinesecalendar" in CAL.table(2026).source


# The 调休 make-up working days named in law-and-calendar.md (all weekend days).
MAKEUP_2025 = ["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"]
MAKEUP_2026 = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]


@pytest.mark.parametrize("day", MAKEUP_2025 + MAKEUP_2026)
def test_makeup_weekend_days_are_working_days(day):
    d = D(day)
    assert d.weekday() >= 5
    assert CAL.is_working_day(d)


def test_makeup_lists_are_exact():
    assert sorted(CAL.table(2025).workdays) == [D(x) for x in MAKEUP_2025]
    assert sorted(CAL.table(2026).workdays) == [D(x) for x in MAKEUP_2026]


def _span(a: str, b: str) -> list[date]:
    """Inclusive list of dates."""
    out, d = [], D(a)
    while d <= D(b):
        out.append(d)
        d += timedelta(days=1)
    return out


@pytest.mark.parametrize(
    "first,last",
    [
        ("2025-01-01", "2025-01-01"),
        ("2025-01-28", "2025-02-04"),
        ("2025-04-04", "2025-04-06"),
        ("2025-05-01", "2025-05-05"),
        ("2025-05-31", "2025-06-02"),
        ("2025-10-01", "2025-10-08"),
        ("2026-01-01", "2026-01-03"),
        ("2026-02-15", "2026-02-23"),
        ("2026-04-04", "2026-04-06"),
        ("2026-05-01", "2026-05-05"),
        ("2026-06-19", "2026-06-21"),
        ("2026-09-25", "2026-09-27"),
        ("2026-10-01", "2026-10-07"),
    ],
)
def test_holiday_blocks_from_notices(first, last):
    days = _span(first, last)
    assert all(not CAL.is_working_day(d) for d in days)
    assert set(days) <= CAL.table(days[0].year).holidays
    # each block is bounded by working days (a make-up day or an ordinary weekday)
    assert CAL.is_working_day(days[0] - timedelta(days=1)) or (days[0] - timedelta(days=1)).weekday() >= 5


def test_holiday_counts_match_notices():
    assert len(CAL.table(2025).holidays) == 1 + 8 + 3 + 5 + 3 + 8
    assert len(CAL.table(2026).holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7


# add_working_days around 春节 2026 (off 2/15–23; work Sat 2/14 and Sat 2/28)
@pytest.mark.parametrize(
    "start,n,expected",
    [
        ("2026-02-12", 1, "2026-02-13"),
        ("2026-02-13", 1, "2026-02-14"),  # Saturday make-up day
        ("2026-02-13", 2, "2026-02-24"),  # the whole holiday skipped
        ("2026-02-14", 1, "2026-02-24"),
        ("2026-02-15", 0, "2026-02-24"),  # n == 0 on a holiday: next working day
        ("2026-02-14", 0, "2026-02-14"),  # n == 0 on a working Saturday: itself
        ("2026-02-18", 1, "2026-02-24"),
        ("2026-02-24", 3, "2026-02-27"),
        ("2026-02-24", 4, "2026-02-28"),  # Saturday make-up day
        ("2026-02-24", 5, "2026-03-02"),
        ("2026-02-10", 5, "2026-02-24"),
        ("2026-02-10", 20, "2026-03-16"),
        ("2026-02-24", -1, "2026-02-14"),
        ("2026-02-14", -1, "2026-02-13"),
    ],
)
def test_add_working_days_spring_festival_2026(start, n, expected):
    assert CAL.add_working_days(D(start), n) == (D(expected), False)


# 国庆 2026 (off 10/1–7; work Sun 9/20 and Sat 10/10); 中秋 9/25–27
@pytest.mark.parametrize(
    "start,n,expected",
    [
        ("2026-09-18", 1, "2026-09-20"),  # Sunday make-up day
        ("2026-09-24", 1, "2026-09-28"),  # 中秋 9/25–27 skipped
        ("2026-09-29", 1, "2026-09-30"),
        ("2026-09-29", 2, "2026-10-08"),
        ("2026-09-30", 1, "2026-10-08"),
        ("2026-10-08", 2, "2026-10-10"),  # Saturday make-up day
        ("2026-10-08", 3, "2026-10-12"),
        ("2026-09-28", 5, "2026-10-10"),
        ("2026-09-28", 20, "2026-10-30"),
    ],
)
def test_add_working_days_national_day_2026(start, n, expected):
    assert CAL.add_working_days(D(start), n) == (D(expected), False)


@pytest.mark.parametrize(
    "start,end,count",
    [
        ("2026-02-13", "2026-02-24", 2),
        ("2026-02-14", "2026-02-23", 0),
        ("2026-02-15", "2026-02-23", 0),
        ("2026-02-12", "2026-03-02", 8),
        ("2026-02-24", "2026-02-12", -3),
        ("2026-09-19", "2026-10-11", 11),
        ("2026-09-30", "2026-10-08", 1),
        ("2026-10-08", "2026-09-30", -1),
        ("2026-10-07", "2026-10-07", 0),
        ("2025-12-31", "2026-01-05", 2),  # 1/1–3 off, Sun 1/4 worked
        ("2026-01-01", "2026-12-31", 248),
        ("2024-12-31", "2025-12-31", 248),
    ],
)
def test_working_days_between(start, end, count):
    assert CAL.working_days_between(D(start), D(end)) == count


def test_year_totals_match_chinese_calendar():
    for y in (2024, 2025, 2026):
        expected = len(chinese_calendar.get_workdays(date(y, 1, 1), date(y, 12, 31)))
        assert CAL.working_days_between(date(y - 1, 12, 31), date(y, 12, 31)) == expected


def test_provisional_for_unloaded_2027():
    day, prov = CAL.add_working_days(D("2026-12-28"), 5)
    assert (day, prov) == (D("2027-01-04"), True)  # weekends only in 2027
    assert CAL.add_working_days(D("2026-12-21"), 5) == (D("2026-12-28"), False)
    assert CAL.add_working_days(D("2027-03-01"), 0) == (D("2027-03-01"), True)
    assert CAL.is_working_day(D("2027-01-01"))  # unknown holiday: a weekday counts
    assert not CAL.is_working_day(D("2027-01-02"))


def test_loading_a_year_recomputes():
    t2027 = YearTable(2027, frozenset({D("2027-01-01")}), frozenset(), "test")
    cal = CAL.with_year(t2027)
    assert cal.years() == (2024, 2025, 2026, 2027)
    assert cal.add_working_days(D("2026-12-28"), 5) == (D("2027-01-05"), False)
    assert cal.fingerprint() != CAL.fingerprint()
    assert CAL.years() == (2024, 2025, 2026)  # immutable: the original is unchanged
    assert cal.with_year(t2027) == cal
    replaced = cal.with_year(YearTable(2027, frozenset(), frozenset(), "other"))
    assert replaced.is_working_day(D("2027-01-01"))


def test_fingerprint_is_stable_and_ignores_source():
    again = WorkCalendar(reversed(CAL.tables()))
    assert again.fingerprint() == CAL.fingerprint()
    relabelled = [YearTable(t.year, t.holidays, t.workdays, "x") for t in CAL.tables()]
    assert WorkCalendar(relabelled).fingerprint() == CAL.fingerprint()
    assert len(CAL.fingerprint()) == 16


def test_to_dict_round_trip():
    for t in CAL.tables():
        d = t.to_dict()
        assert d["year"] == t.year and d["holidays"] == sorted(d["holidays"])
        assert YearTable.from_dict(d) == t
    assert WorkCalendar.from_list(CAL.to_list()) == CAL


def test_from_dict_accepts_date_objects_from_yaml():
    t = YearTable.from_dict({"year": 2027, "holidays": [date(2027, 1, 1)], "workdays": []})
    assert t.holidays == {date(2027, 1, 1)} and t.source == ""


GOOD = {"year": 2026, "holidays": ["2026-01-01"], "workdays": ["2026-01-04"], "source": "s"}


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"year": 1999}, "year"),
        ({"year": 2101}, "year"),
        ({"year": "2026"}, "year"),
        ({"year": True}, "year"),
        ({"holidays": ["2025-12-31"]}, "holidays"),
        ({"holidays": ["2026-13-01"]}, "holidays[0]"),
        ({"holidays": ["20260101"]}, "holidays[0]"),
        ({"holidays": "2026-01-01"}, "holidays"),
        ({"holidays": ["2026-01-01", "2026-01-01"]}, "holidays[1]"),
        ({"workdays": ["2026-01-05"]}, "workdays"),  # a Monday is not a 调休 day
        ({"workdays": ["2027-01-02"]}, "workdays"),
        ({"holidays": ["2026-01-04"], "workdays": ["2026-01-04"]}, "workdays"),
        ({"source": 3}, "source"),
        ({"extra": 1}, "extra"),
    ],
)
def test_from_dict_errors_name_the_field(patch, field):
    bad = {**GOOD, **patch}
    with pytest.raises(CalendarError) as exc:
        YearTable.from_dict(bad)
    assert str(exc.value).startswith(field)


@pytest.mark.parametrize("missing", ["year", "holidays", "workdays"])
def test_from_dict_missing_field(missing):
    bad = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(CalendarError, match=f"^{missing}: missing"):
        YearTable.from_dict(bad)


def test_from_list_rejects_duplicate_years():
    with pytest.raises(CalendarError, match="year 2026 listed twice"):
        WorkCalendar.from_list([GOOD, GOOD])
    with pytest.raises(CalendarError, match=r"^tables\[1\]\.year"):
        WorkCalendar.from_list([GOOD, {**GOOD, "year": 1990}])


def test_local_date():
    assert local_date(datetime(2026, 1, 31, 16, 30, tzinfo=UTC)) == D("2026-02-01")
    assert local_date(datetime(2026, 2, 1, 0, 0, tzinfo=CST)) == D("2026-02-01")
    with pytest.raises(ValueError):
        local_date(datetime(2026, 2, 1))


def test_calendar_data_is_plain_literals_without_chinese_calendar():
    src = (ROOT / "protocol" / "calendar_data.py").read_text(encoding="utf-8")
    tree = ast.parse(src)
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
    assert set(calendar_data.YEARS) == {2024, 2025, 2026}
    for mod in ("calendar.py", "caseclock.py"):
        assert "chinese_calendar" not in (ROOT / "protocol" / mod).read_text(encoding="utf-8")


def test_generator_agrees_with_checked_in_file():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", ROOT / "tools" / "gen_calendar_data.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for year in gen.YEARS:  # compare days, not the version string, so a newer library still passes
        hol, work = gen.year_days(year)
        assert CAL.table(year).holidays == frozenset(hol)
        assert CAL.table(year).workdays == frozenset(work)
    assert "SOURCE = " in gen.render()


# -- properties ------------------------------------------------------------------------
days = st.dates(min_value=date(2023, 6, 1), max_value=date(2028, 6, 1))
counts = st.integers(min_value=0, max_value=400)


@settings(max_examples=300, deadline=None)
@given(days, st.integers(min_value=1, max_value=400))
def test_add_then_between_round_trips(start, n):
    end, _ = CAL.add_working_days(start, n)
    assert CAL.is_working_day(end)
    assert CAL.working_days_between(start, end) == n


@settings(max_examples=300, deadline=None)
@given(days, counts)
def test_add_is_monotone_in_n(start, n):
    a, _ = CAL.add_working_days(start, n)
    b, _ = CAL.add_working_days(start, n + 1)
    assert a <= b
    if n >= 1:
        assert a < b and CAL.next_working_day(a) == b


@settings(max_examples=300, deadline=None)
@given(days, days)
def test_between_is_antisymmetric(a, b):
    assert CAL.working_days_between(a, b) == -CAL.working_days_between(b, a)


@settings(max_examples=200, deadline=None)
@given(days, days)
def test_between_matches_day_by_day_count(a, b):
    lo, hi = sorted((a, b))
    if (hi - lo).days > 120:
        hi = lo + timedelta(days=120)
    slow = sum(CAL.is_working_day(lo + timedelta(days=i)) for i in range(1, (hi - lo).days + 1))
    assert CAL.working_days_between(lo, hi) == slow


@settings(max_examples=200, deadline=None)
@given(days, st.integers(min_value=1, max_value=300))
def test_negative_n_inverts_on_working_days(start, n):
    if not CAL.is_working_day(start):
        start = CAL.next_working_day(start)
    back, _ = CAL.add_working_days(start, -n)
    assert CAL.add_working_days(back, n)[0] == start


@settings(max_examples=200, deadline=None)
@given(days, counts)
def test_provisional_iff_an_unloaded_year_is_touched(start, n):
    end, prov = CAL.add_working_days(start, n)
    assert prov == any(not CAL.is_loaded(y) for y in range(start.year, end.year + 1))
