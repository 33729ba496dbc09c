"""The statistics as tables (统计表): what the stats page shows under each chart, what the API
returns under `tables`, and what the exports write (CSV in UTF-8 with BOM, XLSX with openpyxl),
cell for cell the same. Labels are Chinese; codes never reach a person."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from hub.stats import CHANNELS, county_of, rate, trend_label

TEXT, INT, RATE, DAYS, RATIO = "text", "int", "rate", "days", "ratio"
STATUS_ZH = {
    "received": "已收件", "supplement_requested": "待补正", "accepted": "已受理", "suspended": "特别程序中",
    "approved": "已批准", "denied": "不予许可", "rejected": "不予受理", "completed": "已办结",
    "delivered": "已送达", "withdrawn": "已撤回", "transferred": "已转报",
}  # fmt: skip
LIGHT_ZH = {"green": "绿灯（正常）", "yellow": "黄牌（预警）", "red": "红牌（超期或违规）"}
COMPLAINT_ZH = {"submitted": "待受理", "accepted": "已受理待交办", "refused": "不予受理", "assigned": "已交办待答复",
                "reopened": "有异议待再次答复", "replied": "已答复待确认", "closed": "已办结"}  # fmt: skip
CHANNEL_ZH = {"keypad": "评价器", "portal": "网上评价", "all": "合计"}
LEVELS_ZH = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
TREND_ZH = {"day": "日", "week": "周（周一起）", "month": "月"}
SITE_ROWS_MAX = 500  # a hub has a few hundred sites; the table stays bounded whatever the store holds


@dataclass(frozen=True)
class Table:
    """One table: name (for ?table=), Chinese title, columns (key, label, kind), rows of values."""

    name: str
    title: str
    columns: tuple[tuple[str, str, str], ...]
    rows: list[tuple]
    chart: dict | None = None  # how the page draws it (stats.js): type, label column, value columns

    def to_json(self) -> dict:
        return {"name": self.name, "title": self.title, "columns": [{"key": k, "label": lb, "kind": kd}
                for k, lb, kd in self.columns], "rows": [list(r) for r in self.rows], "chart": self.chart}  # fmt: skip

    def text_rows(self) -> list[list[str]]:
        """The cells as people read them (the page's table and the CSV)."""
        return [[cell_text(kind, v) for (_, _, kind), v in zip(self.columns, row)] for row in self.rows]


def cell_text(kind: str, value) -> str:
    """95.24%, 3.5 (days), 0.62 (ratio), 1,234 → '1234'; '—' for none."""
    if value is None:
        return "—"
    if kind == RATE:
        return f"{value * 100:.2f}%"
    if kind == DAYS:
        return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    if kind == RATIO:
        return f"{value:.2f}"
    return str(value)


def _dur_cols() -> tuple:
    return (("mean_days", "平均用时（工作日）", DAYS), ("median_days", "中位用时（工作日）", DAYS),
            ("p90_days", "P90 用时（工作日）", DAYS), ("ratio_promised", "实际/承诺时限", RATIO),
            ("faster_rate", "快于承诺比例", RATE), ("ratio_legal", "实际/法定时限", RATIO))  # fmt: skip


def _dur(f: dict | None) -> tuple:
    f = f or {}
    return tuple(f.get(k) for k, _, _ in _dur_cols())


def summary_table(s: dict, stats: dict) -> Table:
    rat = stats["ratings"]
    rows = [
        ("收件数", s["received"], INT), ("办结数", s["concluded"], INT), ("按时办结数", s["on_time"], INT),
        ("按时办结率", s["on_time_rate"], RATE), ("超期办结数", s["late"], INT), ("超期率", s["overdue_rate"], RATE),
        ("预警件数（收件中曾亮黄牌）", s["warned"], INT), ("预警率", s["warning_rate"], RATE),
        (f"在办超期件（截至 {stats['as_of']}）", s["open_overdue"], INT),
        ("平均办理用时（工作日）", s["mean_days"], DAYS), ("中位办理用时（工作日）", s["median_days"], DAYS),
        ("P90 办理用时（工作日）", s["p90_days"], DAYS), ("实际用时/承诺时限（平均）", s["ratio_promised"], RATIO),
        ("快于承诺时限比例", s["faster_rate"], RATE), ("实际用时/法定时限（平均）", s["ratio_legal"], RATIO),
        ("有效评价数", s["ratings"], INT), ("满意率（合计）", s["satisfaction"]["all"], RATE),
        ("满意率（评价器）", s["satisfaction"]["keypad"], RATE), ("满意率（网上评价）", s["satisfaction"]["portal"], RATE),
        ("不计入的误按评价", rat["misuse"], INT), ("不计入的误评/恶意差评", rat["marked"], INT),
        ("投诉件数", s["complaints"], INT), ("已答复投诉", s["complaints_replied"], INT),
        ("按时答复投诉", s["complaints_on_time"], INT), ("投诉按时答复率", s["complaint_on_time_rate"], RATE),
    ]  # fmt: skip
    return Table("summary", "主要指标", (("name", "指标", TEXT), ("value", "数值", TEXT)),
                 [(n, cell_text(k, v)) for n, v, k in rows])  # fmt: skip


def trend_table(stats: dict, first: date, last: date, trend: str) -> Table:
    buckets: dict[str, list] = {}
    d = first
    while d <= last:
        buckets.setdefault(trend_label(d, trend), [0, 0, 0, 0, 0, 0])
        d = date.fromordinal(d.toordinal() + 1)
    for day, v in stats["received"]["days"].items():
        buckets[trend_label(day, trend)][0] += v["n"]
    for day, f in stats["concluded"]["day"].items():
        b = buckets[trend_label(day, trend)]
        b[1] += f["concluded"]
        b[2] += f["on_time"]
        b[3] += f["on_time"] + f["late"]
    for day, (n, ok) in stats["ratings"]["days"].items():
        if trend_label(day, trend) in buckets:
            b = buckets[trend_label(day, trend)]
            b[4] += n
            b[5] += ok
    rows = [(k, b[0], b[1], b[2], rate(b[2], b[3]), b[4], rate(b[5], b[4])) for k, b in buckets.items()]
    cols = (("period", f"期间（{TREND_ZH[trend]}）", TEXT), ("received", "收件", INT), ("concluded", "办结", INT),
            ("on_time", "按时办结", INT), ("on_time_rate", "按时办结率", RATE), ("ratings", "有效评价", INT),
            ("satisfaction", "满意率", RATE))  # fmt: skip
    return Table("trend", "收件与办结趋势", cols, rows,
                 {"type": "line", "x": "period", "y": ["received", "concluded"]})  # fmt: skip


def status_table(stats: dict) -> Table:
    st = stats["received"]["status"]
    rows = [
        (STATUS_ZH.get(k, k), st[k])
        for k in sorted(st, key=lambda k: list(STATUS_ZH).index(k) if k in STATUS_ZH else 99)
    ]
    return Table("status", "收件按办理状态", (("status", "状态", TEXT), ("n", "件数", INT)), rows,
                 {"type": "bar", "x": "status", "y": ["n"]})  # fmt: skip


def light_table(stats: dict) -> Table:
    li = stats["received"]["light"]
    rows = [(LIGHT_ZH[k], li.get(k, 0)) for k in ("green", "yellow", "red")]
    return Table("light", "收件按灯色（当前）", (("light", "灯色", TEXT), ("n", "件数", INT)), rows,
                 {"type": "pie", "x": "light", "y": ["n"], "colors": ["#2e7d32", "#f9a825", "#c62828"]})  # fmt: skip


def department_table(stats: dict) -> Table:
    rec: dict[str, int] = defaultdict(int)
    for (_code, dept), n in stats["received"]["items"].items():
        rec[dept] += n
    con = stats["concluded"]["department"]
    keys = sorted(set(rec) | set(con), key=lambda k: (-rec.get(k, 0), k))
    rows = [(k or "（未定）", rec.get(k, 0), con.get(k, {}).get("concluded", 0), con.get(k, {}).get("on_time_rate"),
             con.get(k, {}).get("overdue_rate"), *_dur(con.get(k))) for k in keys]  # fmt: skip
    cols = (("department", "部门", TEXT), ("received", "收件", INT), ("concluded", "办结", INT),
            ("on_time_rate", "按时办结率", RATE), ("overdue_rate", "超期率", RATE), *_dur_cols())  # fmt: skip
    return Table(
        "department", "各部门办件", cols, rows, {"type": "bar", "x": "department", "y": ["received", "concluded"]}
    )


def item_table(stats: dict) -> Table:
    rec: dict[str, int] = defaultdict(int)
    dept_of: dict[str, str] = {}
    for (code, dept), n in stats["received"]["items"].items():
        rec[code] += n
        dept_of[code] = dept
    con = stats["concluded"]["item"]
    names = stats["received"]["names"]
    keys = sorted(set(rec) | set(con), key=lambda k: (-rec.get(k, 0), k))
    rows = [(k, names.get(k, ""), dept_of.get(k, ""), rec.get(k, 0), con.get(k, {}).get("concluded", 0),
             con.get(k, {}).get("on_time_rate"), *_dur(con.get(k))) for k in keys]  # fmt: skip
    cols = (("item_code", "事项编码", TEXT), ("item_name", "事项名称", TEXT), ("department", "部门", TEXT),
            ("received", "收件", INT), ("concluded", "办结", INT), ("on_time_rate", "按时办结率", RATE), *_dur_cols())  # fmt: skip
    return Table("item", "各事项办理用时（实际提速）", cols, rows,
                 {"type": "bar", "x": "item_name", "y": ["mean_days", "p90_days"]})  # fmt: skip


def site_table(stats: dict, names: dict[str, str]) -> Table:
    rec, con, rat = stats["received"]["sites"], stats["concluded"]["site"], stats["ratings"]["sites"]
    keys = sorted(set(rec) | set(con) | set(rat), key=lambda k: (-rec.get(k, 0), k))[:SITE_ROWS_MAX]
    rows = [(k, names.get(k) or "", rec.get(k, 0), con.get(k, {}).get("concluded", 0), con.get(k, {}).get("on_time_rate"),
             rat.get(k, [0, 0])[0], rate(rat.get(k, [0, 0])[1], rat.get(k, [0, 0])[0])) for k in keys]  # fmt: skip
    cols = (("site", "站点编码", TEXT), ("name", "站点名称", TEXT), ("received", "收件", INT), ("concluded", "办结", INT),
            ("on_time_rate", "按时办结率", RATE), ("ratings", "有效评价", INT), ("satisfaction", "满意率", RATE))  # fmt: skip
    return Table(
        "site", "各站点办件与评价", cols, rows, {"type": "bar", "x": "site", "y": ["received", "concluded"], "top": 20}
    )


def county_table(stats: dict) -> Table:
    rec: dict[str, int] = defaultdict(int)
    for site, n in stats["received"]["sites"].items():
        rec[county_of(site)] += n
    rat: dict[str, list] = defaultdict(lambda: [0, 0])
    for site, (n, ok) in stats["ratings"]["sites"].items():
        rat[county_of(site)][0] += n
        rat[county_of(site)][1] += ok
    con = stats["concluded"]["county"]
    keys = sorted(set(rec) | set(con) | set(rat))
    rows = [(k, rec.get(k, 0), con.get(k, {}).get("concluded", 0), con.get(k, {}).get("on_time_rate"),
             con.get(k, {}).get("overdue_rate"), rate(rat[k][1], rat[k][0]) if k in rat else None) for k in keys]  # fmt: skip
    cols = (("county", "区县（行政区划代码）", TEXT), ("received", "收件", INT), ("concluded", "办结", INT),
            ("on_time_rate", "按时办结率", RATE), ("overdue_rate", "超期率", RATE), ("satisfaction", "满意率", RATE))  # fmt: skip
    return Table("county", "各区县办件", cols, rows, {"type": "bar", "x": "county", "y": ["received", "concluded"]})


def ratings_table(stats: dict) -> Table:
    ch = stats["ratings"]["channels"]
    rows = [(CHANNEL_ZH[k], *ch[k]["levels"], ch[k]["total"], ch[k]["satisfaction"]) for k in (*CHANNELS, "all")]
    cols = (("channel", "渠道", TEXT), *((f"l{i + 1}", n, INT) for i, n in enumerate(LEVELS_ZH)),
            ("total", "合计", INT), ("satisfaction", "满意率", RATE))  # fmt: skip
    return Table("ratings", "好差评（不含误按、误评和恶意差评）", cols, rows,
                 {"type": "stack", "x": "channel", "y": [f"l{i}" for i in range(1, 6)], "rows": 2,
                  "colors": ["#1b5e20", "#43a047", "#9ccc65", "#fb8c00", "#c62828"]})  # fmt: skip


def complaints_table(stats: dict) -> Table:
    st = stats["complaints"]["status"]
    rows = [(COMPLAINT_ZH.get(k, k), st[k]) for k in COMPLAINT_ZH if k in st]
    return Table("complaints", "投诉按状态", (("status", "状态", TEXT), ("n", "件数", INT)), rows,
                 {"type": "bar", "x": "status", "y": ["n"]})  # fmt: skip


def tables(stats: dict, site_names: dict[str, str]) -> list[Table]:
    """Every table of the statistics, in page order."""
    first, last = date.fromisoformat(stats["from"]), date.fromisoformat(stats["to"])
    return [summary_table(stats["summary"], stats), trend_table(stats, first, last, stats["trend"]),
            status_table(stats), light_table(stats), department_table(stats), item_table(stats),
            county_table(stats), site_table(stats, site_names), ratings_table(stats), complaints_table(stats)]  # fmt: skip


TABLE_NAMES = ("summary", "trend", "status", "light", "department", "item", "county", "site", "ratings", "complaints")


def to_csv(t: Table) -> bytes:
    """The table as CSV: UTF-8 with BOM (Excel opens the Chinese right), header = the labels."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([label for _, label, _ in t.columns])
    w.writerows(t.text_rows())
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(t: Table, subtitle: str) -> bytes:
    """The table as an XLSX sheet: title, period line, header, then numbers as numbers (rates
    formatted as percentages)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = t.title[:31]
    ws.append([t.title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([subtitle])
    ws.append([label for _, label, _ in t.columns])
    for c in ws[3]:
        c.font = Font(bold=True)
    formats = {RATE: "0.00%", DAYS: "0.00", RATIO: "0.00", INT: "0"}
    for row in t.rows:
        ws.append(list(row))
        for (_, _, kind), cell in zip(t.columns, ws[ws.max_row]):
            if kind in formats and cell.value is not None:
                cell.number_format = formats[kind]
    for i, (_, label, _) in enumerate(t.columns, 1):
        ws.column_dimensions[ws.cell(3, i).column_letter].width = max(10, len(label) * 2 + 2)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
