"""Printable receipts of the clerk's window (受理回执, 补正告知书): what they say, and the QR code.

Receipts are HTML pages with print CSS (agent/templates/receipt.html): one layout for A4 and one
for 80 mm thermal paper, chosen by `paper`. The QR code is an inline SVG (segno) of the public
lookup URL with the case number and query code, so a citizen's phone opens the case's progress.
Decisions in docs/clerk.md.
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import urlencode

from markupsafe import Markup

from protocol.calendar import CST

KINDS = {
    "receipt": "受理回执",  # on registration and acceptance
    "supplement": "补正告知书",  # when a supplement was requested
}
PAPERS = ("a4", "80mm")
QR_ERROR = "m"  # 15 % of the code may be smudged (thermal paper fades)


def lookup_url(base: str | None, case_no: str, query_code: str) -> str | None:
    """The citizen's lookup link of a case, or None when the box has no lookup URL configured."""
    if not base:
        return None
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{urlencode({'case_no': case_no, 'code': query_code})}"


def qr_matrix(url: str) -> tuple[tuple[int, ...], ...]:
    """The QR code's modules (1 dark) as the receipt draws them (tests compare with this)."""
    import segno

    return tuple(tuple(row) for row in segno.make(url, error=QR_ERROR, micro=False).matrix)


def qr_svg(url: str, scale: int = 4) -> Markup:
    """The QR code as an inline SVG element (no XML declaration), safe to place in a template."""
    import segno

    qr = segno.make(url, error=QR_ERROR, micro=False)
    return Markup(qr.svg_inline(scale=scale, border=2, dark="#000", light="#fff", title="办件查询二维码"))


def cn_date(d: date | str | None) -> str:
    """2026年12月4日 (receipts are read by people)."""
    if d is None:
        return ""
    d = date.fromisoformat(d) if isinstance(d, str) else d
    return f"{d.year}年{d.month}月{d.day}日"


def cn_time(t: datetime | str) -> str:
    """2026年11月20日 10:00 in China time."""
    t = datetime.fromisoformat(t) if isinstance(t, str) else t
    t = t.astimezone(CST)
    return f"{cn_date(t.date())} {t:%H:%M}"


def receipt_context(
    kind: str,
    view: dict,
    detail: dict,
    *,
    hall_name: str,
    phone: str | None,
    lookup_base: str | None,
    now: datetime,
) -> dict:
    """Everything the receipt template prints for one case."""
    item = detail["item"]
    url = lookup_url(lookup_base, view["case_no"], view["query_code"])
    supplement = [e for e in detail["events"] if e.type == "request_supplement"]
    promised = view["due_date"] if view["status"] not in ("received", "supplement_requested") else None
    return {
        "kind": kind,
        "title": KINDS[kind],
        "case_no": view["case_no"],
        "query_code": view["query_code"],
        "item_name": item.name,
        "item_code": item.code,
        "department": item.department,
        "applicant": detail["applicant"].name if detail.get("applicant") else "",
        "received": cn_time(view["received_at"]),
        "promised_days": item.promised_days,
        "legal_days": item.legal_days,
        "promised_date": cn_date(promised),
        "acceptance_due": cn_date(view["acceptance_due"]),
        "supplement_items": [
            line.strip() for e in supplement for line in (e.reason or "").splitlines() if line.strip()
        ],
        "window": view.get("window") or "",
        "clerk": view.get("clerk") or "",
        "hall_name": hall_name,
        "phone": phone,
        "url": url,
        "qr": qr_svg(url) if url else None,
        "printed": cn_time(now),
    }
