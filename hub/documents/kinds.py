"""Document kinds (文书种类), violation and event labels, document numbers (发文字号), Chinese dates."""

from __future__ import annotations

import re
from datetime import date, datetime

from protocol.caseclock import VIOLATION_ZH, violation_zh  # noqa: F401 - re-exported

# code → Chinese title (文书名称). The order is the escalation ladder of the seeds:
# 督办 → 责令说明理由 → 问询 → 整改 → 监察建议 → 监察决定.
KINDS: dict[str, str] = {
    "duban": "督办通知书",
    "order_explain": "责令说明理由通知书",
    "inquiry": "电子监察问询书",
    "rectify": "电子监察整改通知书",
    "suggestion": "监察建议书",
    "decision": "监察决定书",
}

# violation code → Chinese text: one table, in protocol (the hub's pages and tickets use it too)
VIOLATIONS_ZH = VIOLATION_ZH

# case event type → 环节 label (same wording as the hub's case view).

LIGHT_ZH: dict[str, str] = {"red": "红牌（超期或违规）", "yellow": "黄牌（临近期限）", "green": "绿灯（正常）"}

_NUMBER_RE = re.compile(r"^(?P<prefix>.+)〔(?P<year>\d{4})〕(?P<n>[1-9]\d*)号$")


# reports numbered in the same sequence but not about one case (no template, their own renderer):
# the monthly statistics bulletin (hub/stats_bulletin.py)
REPORTS: dict[str, str] = {"bulletin": "月度通报"}


def kind_title(kind: str) -> str:
    """Chinese title of a document kind; ValueError naming the known kinds otherwise."""
    try:
        return KINDS[kind] if kind in KINDS else REPORTS[kind]
    except KeyError:
        raise ValueError(f"unknown document kind {kind!r}; known: {', '.join(KINDS)}") from None


def check_prefix(prefix: str) -> str:
    """An issuing authority prefix (机关代字), e.g. 晋中监察: non-empty, no brackets or spaces."""
    if not isinstance(prefix, str) or not prefix.strip():
        raise ValueError("document number prefix (机关代字) must be a non-empty string, e.g. 晋中监察")
    if prefix != prefix.strip() or any(c in prefix for c in "〔〕[]（）()号 \u3000\n\r\t"):
        raise ValueError(f"document number prefix {prefix!r} must not contain brackets, 号 or spaces")
    return prefix


def format_number(prefix: str, year: int, n: int) -> str:
    """发文字号 per GB/T 9704: 机关代字〔年份〕序号号, e.g. format_number('晋中监察', 2026, 12)
    == '晋中监察〔2026〕12号'. Full-width 〔〕, four-digit year, sequence without leading zeros."""
    check_prefix(prefix)
    if isinstance(year, bool) or not isinstance(year, int) or not 1000 <= year <= 9999:
        raise ValueError(f"year must be a four-digit integer, got {year!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"sequence number must be a positive integer, got {n!r}")
    return f"{prefix}〔{year}〕{n}号"


def parse_number(number: str) -> tuple[str, int, int]:
    """Inverse of format_number: '晋中监察〔2026〕12号' → ('晋中监察', 2026, 12)."""
    m = _NUMBER_RE.match(number or "")
    if not m:
        raise ValueError(f"not a document number like 晋中监察〔2026〕12号: {number!r}")
    return m["prefix"], int(m["year"]), int(m["n"])


def chinese_date(d: date | datetime) -> str:
    """2026年11月21日 (Arabic numerals, no zero padding, as GB/T 9704-2012 prescribes)."""
    if isinstance(d, datetime):
        d = d.date()
    return f"{d.year}年{d.month}月{d.day}日"
