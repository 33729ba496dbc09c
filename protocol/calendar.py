"""Working-day calendar (工作日历): statutory holidays and 调休 make-up days, one year at a time.

Pure code: no I/O, no clocks. Administrative Licensing Law Art. 82: "期限以工作日计算，不含法定节假日".
A year without a table is computed with weekends only; results touching such a year are
reported as provisional so callers can recompute them once the State Council notice is loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
MIN_YEAR = 2000
MAX_YEAR = 2100
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TABLE_KEYS = frozenset({"year", "holidays", "workdays", "source"})


class CalendarError(ValueError):
    """Invalid calendar data (日历数据错误); the message names the offending field."""


def local_date(dt: datetime) -> date:
    """Calendar date in China Standard Time (北京时间) of an aware datetime."""
    if not isinstance(dt, datetime):
        raise TypeError(f"expected datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no time zone")
    return dt.astimezone(CST).date()


def cst_midnight(d: date) -> datetime:
    """The instant 00:00 China time at the start of day `d`."""
    return datetime(d.year, d.month, d.day, tzinfo=CST)


def _parse_day(value: Any, fieldname: str) -> date:
    """One date from an ISO string (YYYY-MM-DD) or a date object, else CalendarError."""
    if isinstance(value, datetime):
        raise CalendarError(f"{fieldname}: expected a date, got datetime {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise CalendarError(f"{fieldname}: invalid date {value!r} ({exc})") from None
    raise CalendarError(f"{fieldname}: expected a YYYY-MM-DD date, got {value!r}")


def _parse_days(values: Any, fieldname: str) -> list[date]:
    """A list of dates; duplicates are an error (a typo in an operator's file)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, set, frozenset)):
        raise CalendarError(f"{fieldname}: expected a list of dates, got {type(values).__name__}")
    days = [_parse_day(v, f"{fieldname}[{i}]") for i, v in enumerate(values)]
    seen: set[date] = set()
    for i, d in enumerate(days):
        if d in seen:
            raise CalendarError(f"{fieldname}[{i}]: duplicate date {d.isoformat()}")
        seen.add(d)
    return days


def _check_table(year: Any, holidays: Iterable[date], workdays: Iterable[date], source: Any) -> None:
    """Validate a year table's content; raise CalendarError naming the field."""
    if isinstance(year, bool) or not isinstance(year, int):
        raise CalendarError(f"year: expected an integer, got {year!r}")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise CalendarError(f"year: {year} outside {MIN_YEAR}..{MAX_YEAR}")
    if not isinstance(source, str):
        raise CalendarError(f"source: expected a string, got {type(source).__name__}")
    for name, days in (("holidays", holidays), ("workdays", workdays)):
        for d in sorted(days):
            if isinstance(d, datetime) or not isinstance(d, date):
                raise CalendarError(f"{name}: expected dates, got {d!r}")
            if d.year != year:
                raise CalendarError(f"{name}: {d.isoformat()} is not in year {year}")
    for d in sorted(workdays):
        if d.weekday() < 5:
            raise CalendarError(f"workdays: {d.isoformat()} is a weekday, not a Saturday/Sunday 调休 day")
    both = sorted(set(holidays) & set(workdays))
    if both:
        raise CalendarError(f"workdays: {both[0].isoformat()} is also listed in holidays")


@dataclass(frozen=True)
class YearTable:
    """One year's holidays (法定节假日, all listed days off) and 调休 make-up working days."""

    year: int
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)
    source: str = ""

    def __post_init__(self) -> None:
        """Coerce the day sets to frozensets and validate them."""
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "workdays", frozenset(self.workdays))
        _check_table(self.year, self.holidays, self.workdays, self.source)

    def to_dict(self) -> dict:
        """JSON-able form with sorted ISO dates."""
        return {
            "year": self.year,
            "holidays": [d.isoformat() for d in sorted(self.holidays)],
            "workdays": [d.isoformat() for d in sorted(self.workdays)],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> YearTable:
        """Strictly parse the to_dict() form (dates may also be date objects, as YAML gives)."""
        if not isinstance(d, dict):
            raise CalendarError(f"table: expected an object, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _TABLE_KEYS)
        if unknown:
            raise CalendarError(f"{unknown[0]}: unknown field")
        for key in ("year", "holidays", "workdays"):
            if key not in d:
                raise CalendarError(f"{key}: missing")
        return cls(
            year=d["year"],
            holidays=frozenset(_parse_days(d["holidays"], "holidays")),
            workdays=frozenset(_parse_days(d["workdays"], "workdays")),
            source=d.get("source", ""),
        )

    def working_ordinals(self) -> tuple[int, ...]:
        """Sorted ordinals of every working day of the year under this table."""
        first, last = date(self.year, 1, 1).toordinal(), date(self.year, 12, 31).toordinal()
        hol = {d.toordinal() for d in self.holidays}
        work = {d.toordinal() for d in self.workdays}
        return tuple(
            o
            for o in range(first, last + 1)
            if o in work or ((o - 1) % 7 < 5 and o not in hol)  # ordinal 1 is a Monday
        )


@lru_cache(maxsize=256)
def _weekday_ordinals(year: int) -> tuple[int, ...]:
    """Sorted ordinals of Monday–Friday of a year with no holiday table (weekends only)."""
    first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
    return tuple(o for o in range(first, last + 1) if (o - 1) % 7 < 5)


class WorkCalendar:
    """Immutable working-day calendar over the loaded year tables."""

    __slots__ = ("_tables", "_days", "_fp")

    def __init__(self, tables: Iterable[YearTable] = ()) -> None:
        """Build from year tables; a later table for the same year replaces an earlier one."""
        by_year: dict[int, YearTable] = {}
        for t in tables:
            if not isinstance(t, YearTable):
                raise TypeError(f"expected YearTable, got {type(t).__name__}")
            by_year[t.year] = t
        self._tables: dict[int, YearTable] = dict(sorted(by_year.items()))
        self._days: dict[int, tuple[int, ...]] = {y: t.working_ordinals() for y, t in self._tables.items()}
        self._fp: str | None = None

    def __repr__(self) -> str:
        """Short description with the loaded years and fingerprint."""
        return f"WorkCalendar(years={self.years()}, fingerprint={self.fingerprint()!r})"

    def __eq__(self, other: object) -> bool:
        """Equal when the loaded tables are equal."""
        return isinstance(other, WorkCalendar) and self._tables == other._tables

    def __hash__(self) -> int:
        """Hash of the fingerprint."""
        return hash(self.fingerprint())

    def with_year(self, table: YearTable) -> WorkCalendar:
        """A new calendar with `table`'s year added or replaced."""
        return WorkCalendar([*self._tables.values(), table])

    def tables(self) -> tuple[YearTable, ...]:
        """The loaded year tables, by year."""
        return tuple(self._tables.values())

    def table(self, year: int) -> YearTable | None:
        """The table of one year, or None when not loaded."""
        return self._tables.get(year)

    def years(self) -> tuple[int, ...]:
        """Loaded years, ascending."""
        return tuple(self._tables)

    def is_loaded(self, year: int) -> bool:
        """True when a holiday table for `year` is loaded."""
        return year in self._tables

    def all_loaded(self, start: date, end: date) -> bool:
        """True when every year from start to end (either order) is loaded."""
        lo, hi = sorted((start.year, end.year))
        return all(y in self._tables for y in range(lo, hi + 1))

    def _ords(self, year: int) -> tuple[int, ...]:
        """Working-day ordinals of a year (table, or weekends-only when not loaded)."""
        days = self._days.get(year)
        if days is not None:
            return days
        if not 1 <= year <= 9999:
            raise CalendarError(f"year: {year} is out of range")
        return _weekday_ordinals(year)

    def is_working_day(self, d: date) -> bool:
        """True for a working day (工作日): a weekday not off, or a 调休 make-up day."""
        t = self._tables.get(d.year)
        if t is None:
            return d.weekday() < 5
        return d in t.workdays or (d.weekday() < 5 and d not in t.holidays)

    def add_working_days(self, start: date, n: int) -> tuple[date, bool]:
        """The n-th working day after `start` (start not counted); n == 0: start or the next working day.

        Negative n gives the |n|-th working day before start. Returns (day, provisional), provisional
        when any examined year is not loaded.
        """
        if n == 0:
            if self.is_working_day(start):
                return start, not self.is_loaded(start.year)
            n = 1
        result = self._forward(start, n) if n > 0 else self._backward(start, -n)
        return result, not self.all_loaded(start, result)

    def _forward(self, start: date, n: int) -> date:
        """The n-th (n >= 1) working day after start."""
        year = start.year
        days = self._ords(year)
        i = bisect_right(days, start.toordinal())
        while i + n > len(days):
            n -= len(days) - i
            year += 1
            days, i = self._ords(year), 0
        return date.fromordinal(days[i + n - 1])

    def _backward(self, start: date, n: int) -> date:
        """The n-th (n >= 1) working day before start."""
        year = start.year
        days = self._ords(year)
        i = bisect_left(days, start.toordinal()) - 1
        while i - n + 1 < 0:
            n -= i + 1
            year -= 1
            days = self._ords(year)
            i = len(days) - 1
        return date.fromordinal(days[i - n + 1])

    def working_days_between(self, start: date, end: date) -> int:
        """Working days d with start < d <= end; negative (reversed count) when end < start."""
        if end == start:
            return 0
        if end < start:
            return -self._count(end, start)
        return self._count(start, end)

    def _count(self, a: date, b: date) -> int:
        """Working days in the half-open range (a, b], a < b."""
        ao, bo = a.toordinal(), b.toordinal()
        total = 0
        for year in range(a.year, b.year + 1):
            days = self._ords(year)
            lo = bisect_right(days, ao) if year == a.year else 0
            hi = bisect_right(days, bo) if year == b.year else len(days)
            total += hi - lo
        return total

    def next_working_day(self, d: date) -> date:
        """First working day strictly after d."""
        return self._forward(d, 1)

    def fingerprint(self) -> str:
        """Short stable hash of the loaded days (years, holidays, workdays; not the source text)."""
        if self._fp is None:
            body = [[y, t.to_dict()["holidays"], t.to_dict()["workdays"]] for y, t in self._tables.items()]
            raw = json.dumps(body, separators=(",", ":")).encode()
            self._fp = hashlib.sha256(raw).hexdigest()[:16]
        return self._fp

    def to_list(self) -> list[dict]:
        """JSON-able list of the loaded tables (for pushing to agents)."""
        return [t.to_dict() for t in self._tables.values()]

    @classmethod
    def from_list(cls, items: list) -> WorkCalendar:
        """Strictly parse to_list() output; duplicate years are an error."""
        if not isinstance(items, list):
            raise CalendarError(f"tables: expected a list, got {type(items).__name__}")
        tables = []
        for i, item in enumerate(items):
            try:
                tables.append(YearTable.from_dict(item))
            except CalendarError as exc:
                raise CalendarError(f"tables[{i}].{exc}") from None
        years = [t.year for t in tables]
        dup = next((y for y in years if years.count(y) > 1), None)
        if dup is not None:
            raise CalendarError(f"tables: year {dup} listed twice")
        return cls(tables)


@lru_cache(maxsize=1)
def default_calendar() -> WorkCalendar:
    """The seeded calendar (2024–2026) from protocol.calendar_data."""
    from protocol.calendar_data import YEARS

    return WorkCalendar(YearTable.from_dict(dict(t)) for t in YEARS.values())
