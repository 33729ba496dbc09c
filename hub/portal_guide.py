"""Service guides (办事指南) for the citizen portal: the catalog's portal-only fields, pinyin
initials and downloadable forms, stored at catalog import beside the signed catalog.

The boxes get the signed CatalogItem only (protocol/models.py); what a citizen reads online
(eligibility, process, fee basis, supervision phone, halls, forms) stays at the hub in
`portal_guide` and `portal_forms`, so a longer guide never grows the catalog the broker carries.
Initials are computed at import (pypinyin loads ~60 MB of dictionaries: the import command
pays that once; the hub's request path never imports pypinyin). docs/portal.md lists the fields.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import Field

from protocol.models import Strict

MIGRATIONS = [
    (
        "portal_0001_guides",
        """
        CREATE TABLE portal_guide (code TEXT PRIMARY KEY, initials TEXT NOT NULL, guide_json TEXT NOT NULL);
        CREATE TABLE portal_forms (name TEXT PRIMARY KEY, media_type TEXT NOT NULL, content BLOB NOT NULL);
    """,
    ),
]
PG_MIGRATIONS = [
    (
        "pg_portal_0001_guides",
        """
        CREATE TABLE portal_guide (code TEXT PRIMARY KEY, initials TEXT NOT NULL, guide_json TEXT NOT NULL);
        CREATE TABLE portal_forms (name TEXT PRIMARY KEY, media_type TEXT NOT NULL, content BYTEA NOT NULL);
    """,
    ),
]

# Chinese column headers of the portal-only fields (English: the field names)
GUIDE_HEADERS = {
    "受理条件": "eligibility",
    "申请条件": "eligibility",
    "办理流程": "process",
    "办理环节": "process",
    "收费依据": "fee_basis",
    "监督电话": "supervision_phone",
    "监督投诉电话": "supervision_phone",
    "办理大厅": "halls",
}
FORM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}\.(pdf|docx?|xlsx?|txt)$")
FORM_TYPES = {
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "txt": "text/plain; charset=utf-8",
}
MAX_FORM_BYTES = 5 * 1024 * 1024
MAX_FORMS_BYTES = 200 * 1024 * 1024  # all forms of one catalog together
MATERIAL = re.compile(r"^(?P<text>.*?)\s*[\[［](?P<file>[^\]］]+)[\]］]\s*$")
SPLIT = re.compile(r"[；;\n]+")


class Guide(Strict):
    """The portal-only fields of one catalog item."""

    eligibility: str | None = Field(None, max_length=4000, description="受理条件: who may apply")
    process: str | None = Field(None, max_length=4000, description="办理流程: steps, separated by ; or new lines")
    fee_basis: str | None = Field(None, max_length=2000, description="收费依据: the legal basis of the fee")
    supervision_phone: str | None = Field(None, max_length=40, description="监督电话")
    halls: str | None = Field(
        None, max_length=2000, description="办理大厅: site codes separated by ; (none: every hall)"
    )


def initials(text: str) -> str:
    """Lower-case pinyin initials (食品经营许可 → spjyxk); letters and digits kept. Import-time only."""
    from pypinyin import Style, lazy_pinyin  # ~60 MB of dictionaries: never in the hub's request path

    out = []
    for part in lazy_pinyin(text, style=Style.FIRST_LETTER, errors=lambda s: list(s)):
        out.extend(c.lower() for c in part if c.isascii() and c.isalnum())
    return "".join(out)[:64]


def split_list(text: str | None) -> list[str]:
    """A ;/；/new-line separated field as its parts."""
    return [p.strip() for p in SPLIT.split(text or "") if p.strip()]


def materials_of(text: str | None) -> list[dict]:
    """Materials as [{"text", "form"}]; a material ending in [file.pdf] names a downloadable form."""
    out = []
    for part in split_list(text):
        m = MATERIAL.match(part)
        if m and FORM_NAME.match(m["file"].strip()):
            out.append({"text": m["text"] or m["file"].strip(), "form": m["file"].strip()})
        else:
            out.append({"text": part, "form": None})
    return out


def read_forms(catalog_path: Path, materials: list[str | None]) -> tuple[dict[str, bytes], list[str]]:
    """The form files the materials name, read from the `forms/` folder beside the catalog:
    ({name: bytes}, problems). Names are checked against FORM_NAME (no paths), sizes bounded."""
    names = sorted({m["form"] for text in materials for m in materials_of(text) if m["form"]})
    folder = Path(catalog_path).parent / "forms"
    forms, problems, total = {}, [], 0
    for name in names:
        f = folder / name
        if not f.is_file():
            problems.append(f"form {name!r}: not found in {folder}")
            continue
        size = f.stat().st_size
        if size > MAX_FORM_BYTES:
            problems.append(f"form {name!r}: {size:,} bytes, at most {MAX_FORM_BYTES:,}")
            continue
        total += size
        forms[name] = f.read_bytes()
    if total > MAX_FORMS_BYTES:
        problems.append(f"forms: {total:,} bytes together, at most {MAX_FORMS_BYTES:,}")
    return forms, problems


def store_guides(conn, items, guides: dict[str, Guide], forms: dict[str, bytes]) -> None:
    """Replace the guides and forms (inside the catalog import's transaction)."""
    conn.execute("DELETE FROM portal_guide")
    conn.execute("DELETE FROM portal_forms")
    rows = []
    for i in items:
        g = guides.get(i.code) or Guide()
        rows.append((i.code, f"{initials(i.name)} {initials(i.department)}", g.model_dump_json(exclude_none=True)))
    conn.executemany("INSERT INTO portal_guide VALUES (?, ?, ?)", rows)
    conn.executemany(
        "INSERT INTO portal_forms VALUES (?, ?, ?)",
        [(n, FORM_TYPES[n.rsplit(".", 1)[1].lower()], data) for n, data in sorted(forms.items())],
    )


def guide_of(raw: str | None) -> dict:
    """A stored guide as a dict (empty when the item has none)."""
    return json.loads(raw) if raw else {}
