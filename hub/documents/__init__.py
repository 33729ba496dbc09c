"""Supervision documents (监察文书): numbered, template-driven PDFs with an embedded Chinese font.

    from hub.documents import KINDS, DocumentFacts, render_pdf, format_number, DocumentStore

See docs/documents.md for the kinds, the numbering rule, the fonts and how to add a template.
"""

from hub.documents.facts import (
    CASE_KEYS,
    DocumentFacts,
    facts_from_case,
    facts_from_complaint,
    facts_from_followup,
    scrub,
)
from hub.documents.kinds import KINDS, VIOLATIONS_ZH, chinese_date, format_number, parse_number, violation_zh
from hub.documents.render import render_pdf
from hub.documents.store import MIGRATIONS, DocumentIntegrityError, DocumentStore
from hub.documents.templates import TemplateError
from iobase.fonts import ENV_VAR as FONT_ENV_VAR
from iobase.fonts import FontNotFoundError, FontSpec, find_cjk_font
from protocol.caseclock_types import EVENT_ZH

__all__ = [
    "KINDS",
    "VIOLATIONS_ZH",
    "EVENT_ZH",
    "DocumentFacts",
    "facts_from_case",
    "facts_from_complaint",
    "facts_from_followup",
    "scrub",
    "CASE_KEYS",
    "render_pdf",
    "format_number",
    "parse_number",
    "chinese_date",
    "violation_zh",
    "DocumentStore",
    "DocumentIntegrityError",
    "MIGRATIONS",
    "TemplateError",
    "FontNotFoundError",
    "FontSpec",
    "find_cjk_font",
    "FONT_ENV_VAR",
]
