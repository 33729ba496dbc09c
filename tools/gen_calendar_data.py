"""Generate protocol/calendar_data.py from the `chinesecalendar` library (工作日历种子数据).

Usage:
    python tools/gen_calendar_data.py            # rewrite protocol/calendar_data.py
    python tools/gen_calendar_data.py --check    # exit 1 if the file differs from a fresh run
    python tools/gen_calendar_data.py --stdout   # print instead of writing

Only used at development time; protocol/ never imports chinese_calendar.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from importlib.metadata import version
from pathlib import Path

YEARS = (2024, 2025, 2026)
TARGET = Path(__file__).resolve().parent.parent / "protocol" / "calendar_data.py"

# Publication dates of the State Council General Office notices (国务院办公厅关于…年部分节假日安排的通知).
NOTICES = {
    2025: "国务院办公厅 2024-11-12 通知",
    2026: "国务院办公厅 2025-11-04 通知",
}

HEADER = '''"""Seeded holiday tables (法定节假日 and 调休 working days), generated — do not edit by hand.

Regenerate with `python tools/gen_calendar_data.py`. Plain literals only: protocol/ must not
import chinese_calendar at runtime. Operators load newer years through `jiancha calendar import`.
"""

'''


def year_days(year: int) -> tuple[list[date], list[date]]:
    """Holidays and 调休 make-up working days of one year from chinese_calendar's tables."""
    from chinese_calendar.constants import holidays, workdays

    hol = sorted(d for d in holidays if d.year == year)
    work = sorted(d for d in workdays if d.year == year)
    return hol, work


def check_against_library(year: int, hol: list[date], work: list[date]) -> None:
    """Cross-check the raw tables against chinese_calendar.is_workday for every day of the year."""
    import chinese_calendar

    hol_set, work_set = set(hol), set(work)
    d = date(year, 1, 1)
    while d.year == year:
        ours = d in work_set or (d.weekday() < 5 and d not in hol_set)
        if ours != chinese_calendar.is_workday(d):
            raise SystemExit(f"mismatch with chinese_calendar.is_workday on {d}")
        d = date.fromordinal(d.toordinal() + 1)


def source_for(year: int, lib: str) -> str:
    """Source note of a year's table."""
    notice = NOTICES.get(year)
    return f"{lib}; {notice}" if notice else lib


def _tuple_literal(days: list[date], indent: str) -> str:
    """A tuple of ISO strings, six per line."""
    if not days:
        return "()"
    items = [f'"{d.isoformat()}"' for d in days]
    lines = [", ".join(items[i : i + 6]) + "," for i in range(0, len(items), 6)]
    inner = "\n".join(f"{indent}    {line}" for line in lines)
    return f"(\n{inner}\n{indent})"


def render() -> str:
    """The full text of protocol/calendar_data.py."""
    lib = f"chinesecalendar {version('chinesecalendar')}"
    parts = [HEADER, f'SOURCE = "{lib}"\n\n', "YEARS: dict[int, dict] = {\n"]
    for year in YEARS:
        hol, work = year_days(year)
        check_against_library(year, hol, work)
        parts.append(f"    {year}: {{\n")
        parts.append(f'        "year": {year},\n')
        parts.append(f'        "holidays": {_tuple_literal(hol, " " * 8)},\n')
        parts.append(f'        "workdays": {_tuple_literal(work, " " * 8)},\n')
        parts.append(f'        "source": "{source_for(year, lib)}",\n')
        parts.append("    },\n")
    parts.append("}\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the file is out of date")
    ap.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = ap.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date; run tools/gen_calendar_data.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
