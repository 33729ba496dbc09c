"""Render a supervision document (文书) to PDF bytes with an embedded CJK font subset (fpdf2).

Layout after GB/T 9704-2012 (党政机关公文格式), simplified for 文书: A4; optional red 版头 (the
issuing authority's name in red over a red rule); the title centered; the 发文字号 right-aligned
under it; 主送 line; body paragraphs indented two characters; the 办件基本情况 and 办理过程
tables; the signature block (发文机关署名 and 成文日期) at the bottom right with a seal
placeholder （印章）; 版记 (抄送, 联系人, 印发) at the foot of the last page; page numbers "— N —".
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import date, datetime

from hub.documents import templates as tpl
from hub.documents.facts import DocumentFacts, _cst
from hub.documents.kinds import LIGHT_ZH, chinese_date, kind_title, violation_zh
from iobase.fonts import find_cjk_fonts

RED = (204, 0, 0)
BLACK = (0, 0, 0)
GRAY = (242, 242, 242)
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 28.0, 26.0, 30.0, 25.0
BODY_PT, TABLE_PT, TITLE_PT, HEADER_PT = 15.0, 11.0, 22.0, 28.0
LINE = 8.2  # body line height, mm
NUMERALS = "一二三四五六七八九十"


def chinese_numeral(n: int) -> str:
    """1 → 一, 10 → 十, 12 → 十二, 21 → 二十一 (1..99)."""
    if not 1 <= n <= 99:
        return str(n)
    tens, ones = divmod(n, 10)
    s = "" if tens == 0 else ("十" if tens == 1 else NUMERALS[tens - 1] + "十")
    return s + (NUMERALS[ones - 1] if ones else "")


def fmt_moment(v: date | datetime | None) -> str:
    """2026年3月2日 09:30 (China time) for an instant, 2026年3月2日 for a date, — for none."""
    if v is None:
        return "—"
    if isinstance(v, datetime):
        v = _cst(v)
        return f"{chinese_date(v)} {v:%H:%M}"
    return chinese_date(v)


def problems(facts: DocumentFacts) -> list[str]:
    """The problems a document lists: violations in Chinese, then lateness."""
    out = [violation_zh(v) for v in facts.violations]
    out += list(facts.problem_texts)
    if facts.days_overdue and facts.subject == "case":
        out.append(f"超过承诺办结期限{facts.days_overdue}个工作日")
    return out


def template_values(kind: str, number: str, facts: DocumentFacts) -> dict[str, str]:
    """The ${name} values a template can use."""
    probs = problems(facts)
    if facts.days_overdue and facts.due_date:
        overdue = f"该办件承诺办结期限为{chinese_date(facts.due_date)}，已超期{facts.days_overdue}个工作日。"
    elif facts.days_overdue:
        overdue = f"该办件已超期{facts.days_overdue}个工作日。"
    else:
        overdue = ""
    head = f"（负责人：{facts.addressee_head}）" if facts.addressee_head else ""
    site_clause = f"（{facts.site_name}）" if facts.site_name else ""
    if facts.subject == "complaint":  # a complaint's number, never the complainant (facts_from_complaint)
        subject_clause, this = f"{site_clause}承办的群众投诉（投诉编号：{facts.case_no}）", "该投诉"
        overdue = ""
    elif facts.subject == "followup":
        subject_clause, this = f"{site_clause}承办的差评回访件（编号：#{facts.case_no}）", "该回访件"
        overdue = ""
    else:
        subject_clause = f"{site_clause}办理的“{facts.item_name}”事项（办件编号：{facts.case_no}）"
        this = "该办件"
    return {
        "title": kind_title(kind),
        "number": number,
        "case_no": facts.case_no,
        "item_name": facts.item_name,
        "department": facts.department,
        "addressee": facts.addressee,
        "addressee_head": facts.addressee_head,
        "addressee_line": f"{facts.addressee}{head}：",
        "authority": facts.authority,
        "issue_date": chinese_date(facts.issue_date),
        "site_name": facts.site_name,
        "site_clause": site_clause,
        "subject_clause": subject_clause,  # 办理的“事项”（办件编号：…） / 承办的群众投诉（投诉编号：…）
        "subject_this": this,  # 该办件 / 该投诉 / 该回访件
        "received_at": fmt_moment(facts.received_at),
        "accepted_at": fmt_moment(facts.accepted_at),
        "due_date": fmt_moment(facts.due_date),
        "legal_due_date": fmt_moment(facts.legal_due_date),
        "days_overdue": str(facts.days_overdue or 0),
        "overdue_sentence": overdue,
        "reply_deadline": fmt_moment(facts.reply_deadline),
        "problems_text": "、".join(probs) if probs else "需要核实",
        "violations_text": "、".join(violation_zh(v) for v in facts.violations) or "无",
        "light": LIGHT_ZH.get(facts.light, facts.light) or "—",
        "contact": facts.contact,
    }


def _fact_rows(facts: DocumentFacts, values: dict[str, str]) -> list[tuple[str, ...]]:
    if facts.subject != "case":  # a complaint's or follow-up's own table: two pairs a row,
        rows: list[tuple[str, ...]] = []  # a long value (the complaint's summary) on a row of its own
        pairs = list(facts.subject_rows)
        while pairs:
            label, value = pairs.pop(0)
            if len(value) > 16 or not pairs or len(pairs[0][1]) > 16:
                rows.append((label, value))
            else:
                nxt = pairs.pop(0)
                rows.append((label, value, *nxt))
        return rows
    overdue = f"{facts.days_overdue}个工作日" if facts.days_overdue else ("未超期" if facts.days_overdue == 0 else "—")
    return [
        ("办件编号", facts.case_no, "事项名称", facts.item_name),
        ("承办部门", facts.department, "办理地点", facts.site_name or "—"),
        ("收件时间", values["received_at"], "受理时间", values["accepted_at"]),
        ("承诺办结期限", values["due_date"], "法定办结期限", values["legal_due_date"]),
        ("超期情况", overdue, "预警状态", values["light"]),
    ]


class _Doc:
    """fpdf2 document with the project's CJK font and 公文 helpers."""

    def __init__(self, title: str, number: str, facts: DocumentFacts, texts: list[str]) -> None:
        try:
            from fpdf import FPDF
            from fpdf.enums import WrapMode
        except ImportError as e:  # pragma: no cover - an install problem, said plainly
            raise RuntimeError("rendering documents needs the PyPI package fpdf2 (pip install 'fpdf2>=2.8')") from e

        self.wrap = WrapMode.CHAR
        fonts = find_cjk_fonts()
        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_margins(MARGIN_L, MARGIN_T, MARGIN_R)
        pdf.set_auto_page_break(True, MARGIN_B)
        pdf.add_font("cjk", "", str(fonts[0].path), collection_font_number=fonts[0].index)
        # a fallback face only when the main one lacks characters this document uses
        cmap = pdf.fonts["cjk"].cmap
        missing = {c for t in texts for c in t if not c.isspace() and ord(c) not in cmap}
        if missing and len(fonts) > 1:
            names = []
            for i, f in enumerate(fonts[1:], 1):
                pdf.add_font(f"cjk{i}", "", str(f.path), collection_font_number=f.index)
                names.append(f"cjk{i}")
            pdf.set_fallback_fonts(names, exact_match=False)
        pdf.set_title(f"{title} {number}")
        pdf.set_author(facts.authority)
        pdf.set_subject(
            {"complaint": f"投诉编号 {facts.case_no}", "followup": f"差评回访件 #{facts.case_no}"}.get(
                facts.subject, f"办件编号 {facts.case_no}"
            )
        )
        pdf.set_creator("Jiancha 政务服务电子监察系统")
        pdf.set_lang("zh-CN")
        # deterministic bytes: the same facts and number always give the same PDF (and hash)
        from protocol.calendar import CST

        d = facts.issue_date
        pdf.set_creation_date(datetime(d.year, d.month, d.day, tzinfo=CST))
        pdf.alias_nb_pages()
        self.pdf = pdf
        pdf.footer = self._footer  # type: ignore[method-assign]
        pdf.add_page()

    # the signature block: two blank lines, then 署名 and 日期 under a 42 mm seal circle
    SIGNATURE_H = 2 * LINE + LINE + 21.0 + 2.0

    # -- primitives ---------------------------------------------------------------------------
    def fits(self, h: float) -> bool:
        return self.pdf.get_y() + h <= self.pdf.h - MARGIN_B

    def para_height(self, s: str) -> float:
        """Height of a body paragraph (dry run)."""
        pdf = self.pdf
        pdf.set_font("cjk", size=BODY_PT)
        return pdf.multi_cell(0, LINE, "\u3000\u3000" + s, wrapmode=self.wrap, dry_run=True, output="HEIGHT")

    @property
    def width(self) -> float:
        return self.pdf.w - MARGIN_L - MARGIN_R

    def _footer(self) -> None:
        pdf = self.pdf
        pdf.set_y(-18)
        pdf.set_font("cjk", size=12)
        pdf.set_text_color(*BLACK)
        pdf.cell(0, 6, f"— {pdf.page_no()} —", align="C")

    def text(
        self,
        s: str,
        *,
        size: float = BODY_PT,
        align: str = "J",
        h: float = LINE,
        bold: bool = False,
        color: tuple[int, int, int] = BLACK,
        x: float | None = None,
        w: float = 0,
    ) -> None:
        pdf = self.pdf
        pdf.set_font("cjk", size=size)
        if x is not None:
            pdf.set_x(x)
        with pdf.local_context(
            text_color=color,
            draw_color=color,
            text_mode="FILL_STROKE" if bold else "FILL",
            line_width=size * 0.012 if bold else pdf.line_width,
        ):
            pdf.multi_cell(w, h, s, align=align, wrapmode=self.wrap, new_x="LMARGIN", new_y="NEXT")

    def fit_size(self, s: str, size: float, width: float) -> float:
        """Largest size ≤ size at which s fits on one line of width."""
        pdf = self.pdf
        while size > 10:
            pdf.set_font("cjk", size=size)
            if pdf.get_string_width(s) <= width:
                break
            size -= 1
        return size

    def gap(self, mm: float) -> None:
        self.pdf.ln(mm)

    # -- blocks -------------------------------------------------------------------------------
    def red_header(self, authority: str) -> None:
        pdf = self.pdf
        size = self.fit_size(authority, HEADER_PT, self.width)
        self.text(authority, size=size, align="C", h=size * 0.5, bold=True, color=RED)
        self.gap(3)
        y = pdf.get_y()
        with pdf.local_context(draw_color=RED, line_width=0.9):
            pdf.line(MARGIN_L, y, pdf.w - MARGIN_R, y)
        self.gap(9)

    def title(self, title: str, number: str) -> None:
        # a 文书 title: the characters spread a little, as the printed forms do
        self.text(" ".join(title) if len(title) <= 6 else title, size=TITLE_PT, align="C", h=TITLE_PT * 0.5, bold=True)
        self.gap(3)
        self.text(number, size=BODY_PT, align="R", h=LINE)
        self.gap(4)

    def para(self, s: str) -> None:
        self.text("\u3000\u3000" + s)

    def flush_left(self, s: str) -> None:
        self.text(s, align="L")

    def heading(self, s: str) -> None:
        self.gap(1)
        self.text("\u3000\u3000" + s, bold=True, align="L")

    def numbered(self, items: list[str]) -> None:
        for i, s in enumerate(items, 1):
            end = "" if s[-1:] in "。；;！？" else "。"
            self.para(f"（{chinese_numeral(i)}）{s}{end}")

    def table(
        self,
        rows: list[tuple[str, ...]],
        widths: tuple[float, ...],
        *,
        header: bool,
        align: tuple[str, ...] | None = None,
        label_cols: tuple[int, ...] = (),
    ) -> None:
        from fpdf.fonts import FontFace

        pdf = self.pdf
        pdf.set_font("cjk", size=TABLE_PT)
        self.gap(1)
        label = FontFace(emphasis=None, fill_color=GRAY)
        plain = FontFace(emphasis=None)
        with pdf.table(
            col_widths=widths,
            width=self.width,
            first_row_as_headings=header,
            headings_style=FontFace(emphasis=None, fill_color=GRAY),
            line_height=TABLE_PT * 0.55,
            wrapmode=self.wrap,
            text_align="LEFT",
            padding=(1.2, 1.6, 1.2, 1.6),
            align="CENTER",
        ) as t:
            for r, row in enumerate(rows):
                tr = t.row()
                for c, cell in enumerate(row):
                    style = label if c in label_cols else plain
                    a = align[c] if align else ("C" if (header and r == 0) else "L")
                    # a short row (label, value) spans the rest of the table with its value
                    span = len(widths) - c if c == len(row) - 1 and len(row) < len(widths) else 1
                    tr.cell(cell, align=a, style=style, colspan=span)
        self.gap(2)

    def signature(self, authority: str, day: date) -> None:
        """署名 and 成文日期 right-aligned (日期右空四字), seal placeholder over them."""
        pdf = self.pdf
        pdf.set_font("cjk", size=BODY_PT)
        ch = pdf.get_string_width("\u3000")
        date_s = chinese_date(day)
        bw = max(pdf.get_string_width(authority), pdf.get_string_width(date_s)) + 2 * pdf.c_margin + 0.5
        x = pdf.w - MARGIN_R - 4 * ch - bw
        if not self.fits(self.SIGNATURE_H):
            pdf.add_page()
        self.gap(2 * LINE)
        y0 = pdf.get_y()
        self.text(authority, align="C", x=x, w=bw)
        self.text(date_s, align="C", x=x, w=bw)
        # seal placeholder: a red circle (42 mm, the size of an official seal) over 署名 and 日期
        cx, cy, r = x + bw / 2, y0 + LINE, 21.0
        with pdf.local_context(draw_color=RED, line_width=0.5, text_color=RED):
            pdf.circle(x=cx, y=cy, radius=r, style="D")
            pdf.set_font("cjk", size=12)
            pdf.set_xy(cx - r, cy - r + 3)
            pdf.cell(2 * r, 5, "（印章）", align="C")
        pdf.set_y(max(pdf.get_y(), y0 + 2 * LINE))

    def colophon(self, facts: DocumentFacts) -> None:
        """版记 at the foot of the last page: 抄送, 联系人, 印发机关和印发日期."""
        pdf = self.pdf
        lines = []
        if facts.cc:
            lines.append("抄送：" + "，".join(facts.cc) + "。")
        if facts.contact:
            lines.append("联系人及电话：" + facts.contact)
        lines.append(f"{facts.authority}\u3000\u3000{chinese_date(facts.issue_date)}印发")
        h = 7.0
        pdf.set_font("cjk", size=12)
        total = (
            sum(
                len(pdf.multi_cell(self.width - 8, h, s, wrapmode=self.wrap, dry_run=True, output="LINES"))
                for s in lines
            )
            * h
            + 2
        )
        top = pdf.h - MARGIN_B - total
        if pdf.get_y() + 4 > top:
            pdf.add_page()
        pdf.set_y(top)
        with pdf.local_context(draw_color=BLACK):
            for i, s in enumerate(lines):
                y = pdf.get_y()
                pdf.set_line_width(0.35 if i == 0 else 0.1)
                pdf.line(MARGIN_L, y, pdf.w - MARGIN_R, y)
                pdf.set_font("cjk", size=12)
                pdf.set_x(MARGIN_L + 4)
                pdf.multi_cell(self.width - 8, h, s, align="L", wrapmode=self.wrap, new_x="LMARGIN", new_y="NEXT")
            pdf.set_line_width(0.35)
            y = pdf.get_y()
            pdf.line(MARGIN_L, y, pdf.w - MARGIN_R, y)


def render_pdf(kind: str, number: str, facts: DocumentFacts) -> bytes:
    """A PDF of document `kind` numbered `number` (e.g. 晋中监察〔2026〕12号) from `facts`.

    The CJK font is embedded as a subset (iobase.fonts.find_cjk_fonts). Raises ValueError for an
    unknown kind or a missing required fact (e.g. reply_deadline for duban / order_explain),
    iobase.fonts.FontNotFoundError when no CJK font is installed. Same inputs → same bytes.
    """
    title = kind_title(kind)
    if not isinstance(facts, DocumentFacts):
        raise TypeError(f"facts must be DocumentFacts, got {type(facts).__name__}")
    if not isinstance(number, str) or not number.strip():
        raise ValueError("document number is required, e.g. 晋中监察〔2026〕12号")
    template = tpl.load(kind)
    missing = [n for n in template.requires if getattr(facts, n, None) in (None, "", ())]
    if missing:
        raise ValueError(f"{title} ({kind}) needs {', '.join(missing)}")
    values = template_values(kind, number, facts)

    # resolve the body first (so every character is known before the font is chosen)
    body: list[tuple[str, object]] = []
    for b in template.blocks:
        if b.cond:
            if not hasattr(facts, b.cond):
                raise tpl.TemplateError(f"template {kind}.txt: ?{b.cond} is not a facts field")
            if bool(getattr(facts, b.cond)) == b.negate:
                continue
        if b.kind == "para":
            body.append(("para", tpl.fill(kind, b.text, values)))
        elif b.kind == "heading":
            body.append(("heading", tpl.fill(kind, b.text, values)))
        elif b.kind == "addressee":
            body.append(("left", values["addressee_line"]))
        elif b.kind == "violations":
            body.append(("list", problems(facts) or ["经监测存在需要核实的情形"]))
        elif b.kind == "requirements":
            items = list(facts.requirements) or [tpl.fill(kind, s, values) for s in b.items]
            body.append(("list", items))
        elif b.kind == "facts":
            body.append(("facts", _fact_rows(facts, values)))
        elif b.kind == "timeline":
            rows = [("序号", "时间", "办理环节")]
            rows += [(str(i), fmt_moment(at), step) for i, (at, step) in enumerate(facts.timeline, 1)]
            if len(rows) == 1:
                rows.append(("—", "—", "暂无办理环节记录"))
            body.append(("timeline", rows))
    texts = [title, number, facts.authority, *facts.cc, facts.contact]
    for _what, v in body:
        texts += [v] if isinstance(v, str) else ["".join(map(str, x)) for x in v]  # type: ignore[union-attr]

    with _quiet_fonttools():
        return _render(title, number, facts, body, texts)


@contextmanager
def _quiet_fonttools():
    """fontTools' subsetter warns about tables it drops (e.g. UMing's BDF bitmaps); not our news."""
    log = logging.getLogger("fontTools")
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def _render(title: str, number: str, facts: DocumentFacts, body: list, texts: list[str]) -> bytes:
    doc = _Doc(title, number, facts, texts)
    if facts.red_header:
        doc.red_header(facts.authority)
    else:
        doc.gap(10)
    doc.title(title, number)
    for i, (what, v) in enumerate(body):
        if what == "para" and i == len(body) - 1:
            # the seal page must carry text (GB/T 9704): keep the last paragraph with the signature
            if not doc.fits(doc.para_height(v) + doc.SIGNATURE_H):  # type: ignore[arg-type]
                doc.pdf.add_page()
        if what == "para":
            doc.para(v)  # type: ignore[arg-type]
        elif what == "heading":
            doc.heading(v)  # type: ignore[arg-type]
        elif what == "left":
            doc.flush_left(v)  # type: ignore[arg-type]
        elif what == "list":
            doc.numbered(v)  # type: ignore[arg-type]
        elif what == "facts":
            doc.table(v, (27, 51, 27, 51), header=False, label_cols=(0, 2))  # type: ignore[arg-type]
        elif what == "timeline":
            doc.table(v, (14, 50, 92), header=True, align=("C", "L", "L"))  # type: ignore[arg-type]
    doc.signature(facts.authority, facts.issue_date)
    doc.colophon(facts)
    return bytes(doc.pdf.output())
