"""The monthly bulletin (月度通报): the month's statistics as a numbered PDF (fpdf2, the documents'
CJK fonts and 发文字号 sequence, hub/documents/), with its charts drawn from the same numbers as
the stats page with fpdf2 lines and rectangles (no browser).

Issued once per month and scope: the first request numbers and stores it (documents table, copy
on disk like every document); later requests get the same stored PDF (a numbered document does
not change after it is issued). docs/stats.md.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from hub.documents.kinds import chinese_date
from hub.documents.store import DocumentStore
from hub.stats import Filter, compute, month_period
from hub.stats_tables import RATE, Table, cell_text, tables
from iobase.fonts import find_cjk_fonts
from protocol.calendar import CST, local_date

RED, BLACK, GRAY = (204, 0, 0), (0, 0, 0), (120, 120, 120)
SERIES = ((21, 101, 192), (46, 125, 50), (249, 168, 37), (198, 40, 40), (106, 27, 154))
LEVEL_COLORS = ((27, 94, 32), (67, 160, 71), (156, 204, 101), (251, 140, 0), (198, 40, 40))
ML, MR, MT, MB = 25.0, 22.0, 25.0, 22.0
KIND = "bulletin"


def scope_key(flt: Filter) -> str:
    """Which bulletin: the whole hub (ALL), a region prefix (R:140702) or a department (D:民政局)."""
    if flt.actor.department or flt.department:
        return f"D:{flt.actor.department or flt.department}"
    region = flt.actor.region or flt.region
    return f"R:{region}" if region else "ALL"


def pct(v) -> str:
    return cell_text(RATE, v)


def num(v) -> str:
    """1.5785 → 1.58, 8.0 → 8, None → —."""
    return "—" if v is None else f"{v:.2f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


class Bulletin:
    """An A4 page flow with the CJK font: header, paragraphs, tables and charts."""

    def __init__(self, title: str, number: str, issued: date):
        from fpdf import FPDF
        from fpdf.enums import WrapMode

        self.wrap = WrapMode.WORD  # at the spaces around figures: a number is never cut in two

        fonts = find_cjk_fonts()
        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_margins(ML, MT, MR)
        pdf.set_auto_page_break(True, MB)
        pdf.add_font("cjk", "", str(fonts[0].path), collection_font_number=fonts[0].index)
        pdf.set_title(f"{title} {number}")
        pdf.set_creator("Jiancha 政务服务电子监察系统")
        pdf.set_lang("zh-CN")
        pdf.set_creation_date(datetime(issued.year, issued.month, issued.day, tzinfo=CST))
        pdf.footer = lambda: self._footer()  # type: ignore[method-assign]
        pdf.add_page()
        self.pdf = pdf

    @property
    def width(self) -> float:
        return self.pdf.w - ML - MR

    def _footer(self) -> None:
        self.pdf.set_y(-15)
        self.pdf.set_font("cjk", size=11)
        self.pdf.cell(0, 6, f"— {self.pdf.page_no()} —", align="C")

    def text(self, s: str, size: float = 13, align: str = "J", color=BLACK, h: float | None = None) -> None:
        pdf = self.pdf
        pdf.set_font("cjk", size=size)
        pdf.set_text_color(*color)
        pdf.multi_cell(0, h or size * 0.55, s, align=align, new_x="LMARGIN", new_y="NEXT", wrapmode=self.wrap)
        pdf.set_text_color(*BLACK)

    def head(self, authority: str, title: str, number: str) -> None:
        self.text(authority, size=24, align="C", color=RED, h=13)
        y = self.pdf.get_y() + 2
        with self.pdf.local_context(draw_color=RED, line_width=0.8):
            self.pdf.line(ML, y, self.pdf.w - MR, y)
        self.pdf.ln(8)
        self.text(title, size=20, align="C", h=11)
        self.text(number, size=13, align="R", h=9)
        self.pdf.ln(2)

    def heading(self, s: str, keep: float = 25) -> None:
        self.ensure(keep)  # a heading stays with what follows it
        self.pdf.ln(2)
        self.text(s, size=14, align="L", h=9)

    def para(self, s: str) -> None:
        self.text("\u3000\u3000" + s, h=7.5, align="L")

    def ensure(self, h: float) -> None:
        if self.pdf.get_y() + h > self.pdf.h - MB:
            self.pdf.add_page()

    def table(self, t: Table, keep: tuple[str, ...], max_rows: int = 30) -> None:
        from fpdf.fonts import FontFace

        idx = [i for i, (k, _, _) in enumerate(t.columns) if k in keep]
        rows = t.text_rows()[:max_rows]
        self.pdf.set_font("cjk", size=9.5)
        self.pdf.set_fill_color(255, 255, 255)
        with self.pdf.table(width=self.width, line_height=5.2, text_align="CENTER",
                            headings_style=FontFace(fill_color=(235, 235, 235))) as tb:  # fmt: skip
            r = tb.row()
            for i in idx:
                r.cell(t.columns[i][1])
            for row in rows:
                r = tb.row()
                for i in idx:
                    r.cell(row[i])
        if len(t.rows) > max_rows:
            self.text(f"（共 {len(t.rows)} 行，此处列出前 {max_rows} 行，全表见统计页面导出。）", size=9, color=GRAY)
        self.pdf.ln(3)

    def _frame(self, title: str, h: float) -> tuple[float, float, float, float]:
        """Reserve a chart box: (x0, y0, width, height) of the plot area, title above."""
        self.ensure(h + 14)
        self.text(title, size=11, align="C", h=7)
        x0, y0 = ML + 14, self.pdf.get_y() + 2
        return x0, y0, self.width - 18, h

    def _axis(self, x0, y0, w, h, top: float) -> None:
        pdf = self.pdf
        pdf.set_draw_color(160, 160, 160)
        pdf.set_line_width(0.2)
        pdf.set_font("cjk", size=7.5)
        for i in range(5):
            v = top * i / 4
            y = y0 + h - h * i / 4
            pdf.line(x0, y, x0 + w, y)
            pdf.set_xy(x0 - 13, y - 2)
            pdf.cell(12, 4, f"{v:g}" if v != int(v) else str(int(v)), align="R")

    def _legend(self, names: list[str], colors, y: float) -> None:
        pdf = self.pdf
        x = ML + 14
        pdf.set_font("cjk", size=8.5)
        for name, c in zip(names, colors):
            pdf.set_fill_color(*c)
            pdf.rect(x, y + 1, 4, 3, style="F")
            pdf.set_xy(x + 5, y)
            pdf.cell(pdf.get_string_width(name) + 2, 5, name)
            x += pdf.get_string_width(name) + 12
        pdf.set_y(y + 8)

    def bars(self, title: str, labels: list[str], series: list[tuple[str, list[float]]], h: float = 55) -> None:
        """Grouped bars, one group per label (at most 16)."""
        labels, n = labels[:16], min(len(labels), 16)
        x0, y0, w, h = self._frame(title, h)
        top = _nice(max([v or 0 for _, vals in series for v in vals[:n]] + [1]))
        self._axis(x0, y0, w, h, top)
        pdf = self.pdf
        gw = w / max(n, 1)
        bw = gw * 0.7 / len(series)
        for i, label in enumerate(labels):
            for j, (_, vals) in enumerate(series):
                v = vals[i] or 0
                bh = h * v / top
                pdf.set_fill_color(*SERIES[j % len(SERIES)])
                pdf.rect(x0 + i * gw + gw * 0.15 + j * bw, y0 + h - bh, bw, bh, style="F")
            pdf.set_font("cjk", size=7)
            pdf.set_xy(x0 + i * gw, y0 + h + 1)
            pdf.cell(gw, 4, _fit(pdf, label, gw), align="C")
        self._legend([s for s, _ in series], SERIES, y0 + h + 6)

    def lines(self, title: str, labels: list[str], series: list[tuple[str, list[float]]], h: float = 50) -> None:
        """Line chart over the labels (days), a dot per point."""
        x0, y0, w, h = self._frame(title, h)
        top = _nice(max([v or 0 for _, vals in series for v in vals] + [1]))
        self._axis(x0, y0, w, h, top)
        pdf = self.pdf
        n = len(labels)
        step = w / max(n - 1, 1)
        for j, (_, vals) in enumerate(series):
            c = SERIES[j % len(SERIES)]
            pdf.set_draw_color(*c)
            pdf.set_fill_color(*c)
            pdf.set_line_width(0.5)
            pts = [(x0 + i * step, y0 + h - h * (v or 0) / top) for i, v in enumerate(vals)]
            for a, b in zip(pts, pts[1:]):
                pdf.line(*a, *b)
            for x, y in pts:
                pdf.circle(x=x, y=y, radius=0.6, style="F")
        pdf.set_font("cjk", size=7)
        every = max(1, n // 8)
        for i in range(0, n, every):
            pdf.set_xy(x0 + i * step - 8, y0 + h + 1)
            pdf.cell(16, 4, labels[i][5:], align="C")
        self._legend([s for s, _ in series], SERIES, y0 + h + 6)

    def stacked(self, title: str, labels: list[str], parts: list[list[int]], names: list[str]) -> None:
        """Horizontal 100 % bars (rating levels per channel)."""
        x0, y0, w, _ = self._frame(title, 8 * len(labels) + 4)
        pdf = self.pdf
        for i, (label, vals) in enumerate(zip(labels, parts)):
            y = y0 + i * 8
            pdf.set_font("cjk", size=8.5)
            pdf.set_xy(ML, y)
            pdf.cell(14, 6, label)
            total, x = sum(vals) or 1, x0
            for k, v in enumerate(vals):
                pdf.set_fill_color(*LEVEL_COLORS[k])
                pdf.rect(x, y, w * v / total, 6, style="F")
                x += w * v / total
        self._legend(names, LEVEL_COLORS, y0 + 8 * len(labels) + 1)

    def signature(self, authority: str, day: date) -> None:
        self.ensure(30)
        self.pdf.ln(10)
        self.text(authority, align="R", h=8)
        self.text(chinese_date(day), align="R", h=8)


def _nice(v: float) -> float:
    """A round axis top ≥ v: 1, 2, 2.5, 5 × 10^k."""
    import math

    p = 10 ** math.floor(math.log10(v)) if v > 0 else 1
    return next(m * p for m in (1, 2, 2.5, 5, 10) if m * p >= v)


def _fit(pdf, s: str, w: float) -> str:
    while s and pdf.get_string_width(s) > w - 1:
        s = s[:-1]
    return s


def render(stats: dict, tabs: dict[str, Table], number: str, authority: str, month: str, issued: date) -> bytes:
    """The bulletin's PDF bytes."""
    y, m = month.split("-")
    period = f"{int(y)}年{int(m)}月"
    s = stats["summary"]
    doc = Bulletin("政务服务电子监察月度通报", number, issued)
    doc.head(authority, f"政务服务电子监察月度通报（{period}）", number)
    doc.para(f"现将{period}政务服务事项办理、电子监察和好差评情况通报如下。统计口径见文末说明。")
    doc.heading("一、总体情况")
    doc.para(
        f"本月收件 {s['received']} 件，办结 {s['concluded']} 件，其中按时办结 {s['on_time']} 件，按时办结率 "
        f"{pct(s['on_time_rate'])}，超期办结 {s['late']} 件，超期率 {pct(s['overdue_rate'])}；收件中曾亮黄牌预警 "
        f"{s['warned']} 件，预警率 {pct(s['warning_rate'])}；截至 {stats['as_of']} 在办超期 {s['open_overdue']} 件。"
    )
    doc.para(
        f"办结件平均用时 {num(s['mean_days'])} 个工作日，中位数 {num(s['median_days'])} 个工作日，90% 的办件不超过 "
        f"{num(s['p90_days'])} 个工作日；"
        f"实际用时平均为承诺时限的 {num(s['ratio_promised'])} 倍、法定时限的 {num(s['ratio_legal'])} 倍，"
        f"{pct(s['faster_rate'])} 的办件快于承诺时限办结。"
    )
    sat = s["satisfaction"]
    doc.para(
        f"有效评价 {s['ratings']} 个，满意率 {pct(sat['all'])}（评价器 {pct(sat['keypad'])}，网上评价 "
        f"{pct(sat['portal'])}）；收到投诉 {s['complaints']} 件，已答复 {s['complaints_replied']} 件，其中按时答复 "
        f"{s['complaints_on_time']} 件，按时答复率 {pct(s['complaint_on_time_rate'])}。"
    )
    trend = tabs["trend"]
    doc.lines("每日收件与办结（件）", [r[0] for r in trend.rows], [("收件", [r[1] for r in trend.rows]),
              ("办结", [r[2] for r in trend.rows])])  # fmt: skip
    dept = tabs["department"]
    doc.heading("二、各部门办件情况", keep=85)
    doc.bars("各部门收件与办结（件）", [r[0] for r in dept.rows], [("收件", [r[1] for r in dept.rows]),
             ("办结", [r[2] for r in dept.rows])])  # fmt: skip
    doc.table(dept, ("department", "received", "concluded", "on_time_rate", "overdue_rate", "mean_days", "faster_rate"))
    doc.heading("三、各事项办理用时（实际提速）")
    doc.table(tabs["item"], ("item_name", "received", "concluded", "on_time_rate", "mean_days", "median_days",
                             "p90_days", "ratio_promised", "faster_rate"), max_rows=20)  # fmt: skip
    doc.heading("四、各区县办件情况")
    doc.table(tabs["county"], ("county", "received", "concluded", "on_time_rate", "overdue_rate", "satisfaction"))
    doc.heading("五、好差评情况", keep=60)
    rat = tabs["ratings"]
    doc.stacked("各渠道评价等级构成", [r[0] for r in rat.rows], [list(r[1:6]) for r in rat.rows],
                ["非常满意", "满意", "基本满意", "不满意", "非常不满意"])  # fmt: skip
    doc.table(rat, tuple(k for k, _, _ in rat.columns))
    doc.heading("六、投诉办理情况")
    doc.table(tabs["complaints"], ("status", "n"))
    doc.heading("说明")
    doc.text(
        "收件按收件日期计入当月；办结指首次作出批准、不予许可或办结决定，按决定日期计入当月；按时办结指决定日期不晚于"
        "承诺办结期限（含延期、特别程序顺延）；用时为收件次日至决定日的工作日数（不扣除特别程序）；满意率为非常满意、"
        "满意、基本满意之和占有效评价的比例，误按以及经复核认定的误评、恶意差评不计入。",
        size=10,
        color=GRAY,
        h=5.5,
    )
    doc.signature(authority, issued)
    return bytes(doc.pdf.output())


def bulletin(conn, month: str, flt: Filter, cal, now: datetime, *, authority: str, prefix: str, files_dir,
             site_names: dict[str, str], actor: str, reply_days: int = 5) -> tuple[dict, bytes]:  # fmt: skip
    """The month's bulletin for the filter's scope: the stored one, or a new one numbered and
    stored now (call inside the hub's write transaction). Returns (metadata, PDF bytes)."""
    first, last = month_period(month)
    store = DocumentStore(conn, ensure_schema=False, files_dir=files_dir)
    key = f"bulletin:{month}:{scope_key(flt)}"
    found = store.find_report(KIND, key)
    if found is not None:
        return found
    stats = compute(conn, flt, first, last, cal, now, reply_days=reply_days)
    tabs = {t.name: t for t in tables(stats, site_names)}
    issued = local_date(now)
    facts = json.dumps({"month": month, "scope": scope_key(flt), "summary": stats["summary"]}, ensure_ascii=False)
    meta = store.issue_report(KIND, key, lambda number: render(stats, tabs, number, authority, month, issued),
                              prefix=prefix, year=issued.year, actor=actor, facts_json=facts)  # fmt: skip
    got = store.get(meta["id"])
    assert got is not None
    return got
