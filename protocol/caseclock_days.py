"""Fast working-day arithmetic for the case clock (a memoised view of a WorkCalendar).

`evaluate` runs for up to a million cases at the hub, so the few working-day sums per case
must cost well under a microsecond each. `Days` flattens the calendar's working days over a
window of years into one sorted list of ordinals and answers with one `bisect`. Results are
exactly those of `WorkCalendar.add_working_days` / `working_days_between` (a property test
checks this); for years outside the window it falls back to the calendar itself.

Pure: no I/O, no clocks. The memo (one `Days` per calendar object, a few at most) only caches
values derived from the immutable calendar.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date

from protocol.calendar import WorkCalendar

_FAST_YEARS = (1901, 2199)  # window the flat list may cover; beyond it the calendar answers
_MEMO: dict[int, tuple[WorkCalendar, Days]] = {}
_MEMO_MAX = 8


def _year_ordinals(cal: WorkCalendar, year: int) -> tuple[int, ...]:
    """Working-day ordinals of one year: the loaded table, else Monday–Friday (as WorkCalendar)."""
    table = cal.table(year)
    if table is not None:
        return table.working_ordinals()
    first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
    return tuple(o for o in range(first, last + 1) if (o - 1) % 7 < 5)  # ordinal 1 is a Monday


class Days:
    """Working-day sums over one immutable WorkCalendar."""

    __slots__ = ("cal", "loaded", "_state")

    def __init__(self, cal: WorkCalendar) -> None:
        """Empty window; it grows on demand around the years asked for."""
        self.cal = cal
        self.loaded = frozenset(cal.years())
        self._state: tuple[int, int, list[int], frozenset[int]] = (0, -1, [], frozenset())

    def _window(self, lo: int, hi: int) -> tuple[int, int, list[int], frozenset[int]]:
        """The flat state covering years lo..hi (rebuilt, larger, when needed)."""
        state = self._state
        if state[0] <= lo and hi <= state[1]:
            return state
        if state[1] >= state[0]:
            lo, hi = min(lo, state[0]), max(hi, state[1])
        lo, hi = max(lo - 1, _FAST_YEARS[0]), min(hi + 1, _FAST_YEARS[1])
        ords: list[int] = []
        for y in range(lo, hi + 1):
            ords.extend(_year_ordinals(self.cal, y))
        state = (lo, hi, ords, frozenset(ords))
        self._state = state  # one assignment: concurrent readers see the old or the new window
        return state

    def provisional(self, a: date, b: date) -> bool:
        """True when some year from a to b (either order) has no loaded table."""
        ya, yb = a.year, b.year
        if ya == yb:
            return ya not in self.loaded
        if ya > yb:
            ya, yb = yb, ya
        return any(y not in self.loaded for y in range(ya, yb + 1))

    def is_working(self, d: date) -> bool:
        """True for a working day."""
        y = d.year
        if not _FAST_YEARS[0] < y < _FAST_YEARS[1]:
            return self.cal.is_working_day(d)
        return d.toordinal() in self._window(y, y)[3]

    def add(self, start: date, n: int) -> date:
        """The n-th working day after start (n == 0: start or the next working day; n < 0: before)."""
        y = start.year
        if not _FAST_YEARS[0] + 2 < y < _FAST_YEARS[1] - 2 or not -2000 < n < 2000:
            return self.cal.add_working_days(start, n)[0]
        span = n // 240 + 1 if n >= 0 else n // 240 - 1  # ~245+ working days a year
        ords = self._window(min(y, y + span), max(y, y + span))[2]
        o = start.toordinal()
        if n == 0:
            i = bisect_left(ords, o)
        elif n > 0:
            i = bisect_right(ords, o) + n - 1
        else:
            i = bisect_left(ords, o) + n
        if 0 <= i < len(ords):  # the window is contiguous, so any index in it is the answer
            return date.fromordinal(ords[i])
        return self.cal.add_working_days(start, n)[0]  # fell off the window: let the calendar answer

    def add_p(self, start: date, n: int) -> tuple[date, bool]:
        """add() with the provisional flag, as WorkCalendar.add_working_days returns it."""
        d = self.add(start, n)
        if n == 0 and d == start:
            return d, start.year not in self.loaded
        return d, self.provisional(start, d)

    def between(self, a: date, b: date) -> int:
        """Working days d with a < d <= b; negative when b < a."""
        if a == b:
            return 0
        ya, yb = a.year, b.year
        if not (_FAST_YEARS[0] < ya < _FAST_YEARS[1] and _FAST_YEARS[0] < yb < _FAST_YEARS[1]):
            return self.cal.working_days_between(a, b)
        ords = self._window(min(ya, yb), max(ya, yb))[2]
        return bisect_right(ords, b.toordinal()) - bisect_right(ords, a.toordinal())


def days_of(cal: WorkCalendar) -> Days:
    """The memoised Days of a calendar object (keyed by identity; a strong reference is kept)."""
    hit = _MEMO.get(id(cal))
    if hit is not None and hit[0] is cal:
        return hit[1]
    fast = Days(cal)
    if len(_MEMO) >= _MEMO_MAX:
        try:
            _MEMO.pop(next(iter(_MEMO), None), None)  # drop the oldest entry
        except RuntimeError:  # another thread changed the memo meanwhile; it is only a cache
            pass
    _MEMO[id(cal)] = (cal, fast)
    return fast
