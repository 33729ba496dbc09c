"""What a window's sign says, as values, and how it is laid out in text cells. Pure.

A cell is half a character: ASCII takes one cell, a Chinese character two (in GBK that is
exactly one byte per cell, and on a 16-dot LED font 8 LEDs per cell). `render_lines` wraps
logical lines to the sign's width; `render_pages` cuts them into what the sign shows at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

FREE_FEES = {"", "0", "0元", "0.00", "免费", "不收费", "无"}
MAX_NOTICE_CHARS = 200
MAX_NOTICE_SECONDS = 86400
DEFAULT_NOTICE_SECONDS = 600


class SignCommandError(ValueError):
    """A hub command for a sign is malformed; the message names the field."""


@dataclass(frozen=True)
class SignItem:
    """One service item (事项) as a sign lists it: name, promised limit, fee."""

    name: str
    promised_days: int
    fee: str | None = None
    immediate: bool = False  # 即办件: done while the applicant waits


@dataclass(frozen=True)
class SignContent:
    """Everything one window's sign shows."""

    window: str
    window_name: str
    staff: str | None = None
    items: tuple[SignItem, ...] = ()
    received_today: int = 0
    completed_today: int = 0
    notice: str | None = None  # text pushed by the hub (sign_text command)
    notice_until_mono: float | None = None  # monotonic seconds when the notice ends


def sign_items(catalog: Iterable[Any], codes: Iterable[str] | None = None) -> tuple[SignItem, ...]:
    """SignItems from catalog items (CatalogItem or dicts), optionally only `codes`, in order."""
    rows = [c if isinstance(c, Mapping) else c.model_dump() for c in catalog]
    if codes is not None:
        by_code = {r["code"]: r for r in rows}
        rows = [by_code[c] for c in codes if c in by_code]
    return tuple(
        SignItem(
            name=r["name"],
            promised_days=int(r["promised_days"]),
            fee=r.get("fee"),
            immediate=r.get("case_type") == "immediate",
        )
        for r in rows
    )


def gbk_safe(text: str, encoding: str = "gbk") -> str:
    """Text the card can show: one line, no control codes, every character encodable.

    A backslash becomes a full-width one because controller cards read ``\\C1`` and the like
    as colour and font codes; a character outside the encoding becomes ``?``.
    """
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    text = re.sub(r"\s+", " ", text.replace("\\", "＼")).strip()
    return "".join(ch if _encodable(ch, encoding) else "?" for ch in text)


def _encodable(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
        return True
    except UnicodeEncodeError:
        return False


def cell_width(ch: str) -> int:
    """Cells one character takes: 2 for wide (Chinese, full-width), else 1."""
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_cells(text: str) -> int:
    """Cells a string takes."""
    return sum(cell_width(ch) for ch in text)


def _hard_wrap(word: str, width: int) -> list[str]:
    lines, line, used = [], "", 0
    for ch in word:
        w = cell_width(ch)
        if used + w > width:
            lines.append(line)
            line, used = "", 0
        line, used = line + ch, used + w
    return lines + [line]


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` cells, broken at spaces where possible, else between characters."""
    if width < 2:
        raise ValueError(f"width must be at least 2 cells, got {width}")
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if not word:
            continue
        joined = f"{line} {word}" if line else word
        if text_cells(joined) <= width:
            line = joined
            continue
        if line:
            lines.append(line)
        pieces = _hard_wrap(word, width)
        lines += pieces[:-1]
        line = pieces[-1]
    return lines + [line] if line or not lines else lines


def pad(line: str, width: int) -> str:
    """Pad with spaces to exactly `width` cells (the card's auto-wrap then breaks there)."""
    return line + " " * max(0, width - text_cells(line))


def fee_text(fee: str | None) -> str:
    """'免费' for no fee, '收费:…' for a fee, '' when the catalog does not say."""
    if fee is None:
        return ""
    return "免费" if fee.strip() in FREE_FEES else f"收费:{fee.strip()}"


def item_line(item: SignItem) -> str:
    """One item: name, promised limit (承诺时限) and fee."""
    limit = "即办" if item.immediate or item.promised_days == 0 else f"承诺{item.promised_days}个工作日"
    return " ".join(p for p in (item.name, limit, fee_text(item.fee)) if p)


def render_lines(content: SignContent, width_chars: int, encoding: str = "gbk") -> list[str]:
    """The sign's text as lines of at most `width_chars` cells: header, notice, items, counts."""
    header = content.window_name + (f" 当班:{content.staff}" if content.staff else "")
    logical = [header]
    if content.notice:
        logical.append(f"通知:{content.notice}")
    logical += [item_line(i) for i in content.items]
    logical.append(f"今日受理{content.received_today}件 办结{content.completed_today}件")
    lines: list[str] = []
    for text in logical:
        lines += wrap(gbk_safe(text, encoding), width_chars)
    return lines


def render_pages(
    content: SignContent, width_chars: int, rows: int, encoding: str = "gbk"
) -> tuple[tuple[str, ...], ...]:
    """Pages of `rows` lines; with two or more rows the header line heads every page."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    lines = render_lines(content, width_chars, encoding)
    if rows == 1 or len(lines) <= rows:
        return tuple(tuple(lines[i : i + rows]) for i in range(0, len(lines), rows))
    header, body = lines[0], lines[1:]
    step = rows - 1
    return tuple((header, *body[i : i + step]) for i in range(0, len(body), step))


def expire_notice(content: SignContent, now_mono: float) -> SignContent:
    """The content without its notice once the notice's time is up."""
    if content.notice is not None and content.notice_until_mono is not None and now_mono >= content.notice_until_mono:
        return replace(content, notice=None, notice_until_mono=None)
    return content


def apply_command(content: SignContent, cmd: Mapping[str, Any], now_mono: float) -> SignContent:
    """Apply a hub command {"cmd":"sign_text","window":"3","text":"…","seconds":600}.

    An empty text clears the notice. SignCommandError names the bad field.
    """
    allowed = {"cmd", "window", "text", "seconds"}
    extra = sorted(set(cmd) - allowed)
    if extra:
        raise SignCommandError(f"unknown field(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")
    if cmd.get("cmd") != "sign_text":
        raise SignCommandError(f"cmd: expected 'sign_text', got {cmd.get('cmd')!r}")
    window = cmd.get("window")
    if isinstance(window, bool) or not isinstance(window, (str, int)) or str(window) != content.window:
        raise SignCommandError(f"window: {window!r} is not this sign's window {content.window!r}")
    text = cmd.get("text")
    if not isinstance(text, str):
        raise SignCommandError(f"text: expected a string, got {type(text).__name__}")
    if len(text) > MAX_NOTICE_CHARS:
        raise SignCommandError(f"text: {len(text)} characters, at most {MAX_NOTICE_CHARS}")
    seconds = cmd.get("seconds", DEFAULT_NOTICE_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_NOTICE_SECONDS:
        raise SignCommandError(f"seconds: expected an integer 1..{MAX_NOTICE_SECONDS}, got {seconds!r}")
    text = gbk_safe(text)
    if not text:
        return replace(content, notice=None, notice_until_mono=None)
    return replace(content, notice=text, notice_until_mono=now_mono + seconds)
