"""An answer key for working days that is not the code under test: `chinese_calendar` (a
community table of the State Council's holiday notices, already the reference of
tests/protocol/test_calendar.py), with weekends only for years it does not cover — what the
product documents for years whose table is not loaded (docs/case-rules.md). Plain loops over
days, no shared code with protocol.calendar."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar


def is_working_day(d: date, years=None, days_off=frozenset()) -> bool:
    """A working day (工作日): Monday–Friday unless a holiday, or a 调休 make-up weekend day.
    `years`: only these years' holidays count (the others weekends only, as for a year whose
    table is not loaded); `days_off`: extra holidays (a table a test loads)."""
    if d in days_off:
        return False
    if years is not None and d.year not in years:
        return d.weekday() < 5
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:  # a year the reference does not know: weekends only
        return d.weekday() < 5


def is_covered(year: int) -> bool:
    """Whether the reference knows that year's holidays."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
        return True
    except NotImplementedError:
        return False


def add_working_days(start: date, n: int, years=None, days_off=frozenset()) -> date:
    """The n-th working day after `start` (the start day itself not counted); n = 0 is `start`
    if it is a working day, else the next working day. `years`, `days_off`: is_working_day."""
    d = start
    if n == 0:
        while not is_working_day(d, years, days_off):
            d += timedelta(days=1)
        return d
    step = 1 if n > 0 else -1
    left = abs(n)
    while left:
        d += timedelta(days=step)
        left -= is_working_day(d, years, days_off)
    return d


def add_weekdays(start: date, n: int) -> date:
    """The n-th Monday–Friday after `start`: a calendar with no holidays at all."""
    return add_working_days(start, n, years=())


def working_days_between(a: date, b: date) -> int:
    """Working days d with a < d <= b; negative (the same count) when b is before a."""
    if b < a:
        return -working_days_between(b, a)
    return sum(is_working_day(a + timedelta(days=i)) for i in range(1, (b - a).days + 1))
