"""`jiancha scores compute|close|manual` (绩效评估, docs/scores.md): a few lines each over
hub/scores.py, and the CSV / XLSX exports of a result."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path

from iobase.cli import subcommand

HELP = """\
  scores compute             scores per department, window, staff for a month, quarter or year
  scores close               freeze a finished period (supervisor or admin)
  scores manual add          enter a commendation, thanks, media praise or discipline finding
"""
COMMANDS = {("scores", "compute"), ("scores", "close"), ("scores", "manual")}
RANK_HEADER = ["排名", "对象", "部门", "站点", "得分", "扣分", "加分", "取消评优资格", "计分条目数"]
LINE_HEADER = ["对象", "规则", "规则名称", "记录", "日期", "分值", "封顶前分值", "说明"]


def add_commands(sub) -> None:
    """Add `scores compute|close|manual add` under `sub`."""
    sc = sub.add_parser("scores", help="绩效评估: scores from the rules file").add_subparsers(dest="sub", required=True)
    comp = subcommand(
        sc,
        "compute",
        "Compute (or, for a closed period, read the frozen) scores; every point with its rule, record and date.",
        "jiancha scores compute --config /etc/jiancha/hub.yaml --period 2026-11 --by department --format xlsx "
        "--out scores-2026-11.xlsx",
    )
    comp.add_argument("--period", required=True, help="2026-11 (month), 2026-Q4 (quarter) or 2026 (year)")
    comp.add_argument("--by", choices=["department", "window", "staff"], default=None, help="one level only")
    comp.add_argument("--format", choices=["json", "csv", "xlsx"], default="json")
    comp.add_argument("--out", type=Path, default=None, help="write here instead of standard output")
    close = subcommand(
        sc,
        "close",
        "Freeze a finished period: its result and the sha256 of its inputs; later records do not change it.",
        "jiancha scores close --config /etc/jiancha/hub.yaml --period 2026-11 --login zhang",
    )
    close.add_argument("--period", required=True)
    man = sc.add_parser("manual", help="manual items").add_subparsers(dest="action", required=True)
    madd = subcommand(
        man,
        "add",
        "Enter a manual item (category thanks | media_praise | commendation | discipline | verified_complaint) "
        "with its reason and attachment name; audited.",
        "jiancha scores manual add --config hub.yaml --login zhang --day 2026-11-25 --category thanks "
        "--department 市场监督管理局 --reason 申请人来信感谢 --attachment 感谢信.pdf",
    )
    for p in (madd,):
        p.add_argument("--day", required=True, help="YYYY-MM-DD (China date)")
        p.add_argument("--category", required=True)
        for key in ("department", "site", "window", "staff"):
            p.add_argument(f"--{key}", default=None)
        p.add_argument("--reason", required=True)
        p.add_argument("--attachment", required=True, help="the name of the letter, article or finding")
    for p in (comp, close, madd):
        p.add_argument("--config", type=Path, required=True)
    for p in (close, madd):
        p.add_argument("--login", required=True, help="a supervisor's or admin's account (who did it)")


def _open(config: Path):
    from hub.config import HubConfig
    from hub.scores_rules import load_rules, rules_path
    from hub.store import load_calendar, open_db
    from iobase.config import load_config

    cfg = load_config(config, HubConfig)
    rules = load_rules(rules_path(cfg, config))
    conn = open_db(cfg.store_url())
    return cfg, rules, conn, load_calendar(conn)


def _operator(conn, login: str, unscoped: bool = False) -> str:
    return _operator_user(conn, login, unscoped).login


def _operator_user(conn, login: str, unscoped: bool = False):
    from hub.accounts import get_user

    u = get_user(conn, login)
    if u is None or u.disabled or u.role not in ("admin", "supervisor"):
        raise ValueError(f"{login}: 须为有效的监察人员或管理员账号 (needs an active supervisor or admin account)")
    if unscoped and u.role == "supervisor" and u.scope:
        raise ValueError(
            f"{login}: 封存须由不限范围的监察人员或管理员操作 (closing needs a supervisor without a region)"
        )
    return u


def dispatch(args, now: datetime | None = None) -> int:
    """Run a `jiancha scores ...` command (`now`: tests pass the time in)."""
    from hub import scores
    from iobase.sqlite import transaction
    from protocol.calendar import CST, local_date

    now = now or datetime.now(CST)
    cfg, rules, conn, cal = _open(args.config)
    try:
        if args.sub == "compute":
            period = scores.parse_period(args.period)
            res = scores.period_result(conn, rules, period, cal, local_date(now), cfg.complaints.reply_days)
            if res["closed"] and res["inputs_changed"]:
                print(f"note: {period.text} was closed; inputs changed since closing (a fresh computation would "
                      f"differ: {res['fingerprint'][:16]} vs {res['closed']['inputs_sha256'][:16]})", file=sys.stderr)  # fmt: skip
            data = render(res["json"], args.by, args.format)
            if args.out:
                args.out.write_bytes(data)
                print(f"{period.text}: written {args.out} ({len(data):,} bytes)", file=sys.stderr)
            else:
                sys.stdout.buffer.write(data)
            return 0
        user = _operator_user(conn, args.login, unscoped=args.sub == "close")
        login = user.login
        if args.sub == "close":
            period = scores.parse_period(args.period)
            with transaction(conn):
                info = scores.close_period(conn, rules, period, cal, now, login, cfg.complaints.reply_days)
            print(f"{period.text} closed: inputs sha256 {info['inputs_sha256']} ({info['bytes']:,} bytes frozen)")
            return 0
        fields = {k: getattr(args, k) for k in ("day", "category", "department", "site", "window", "staff",
                                                "reason", "attachment")}  # fmt: skip
        values, errors = scores.clean_manual(fields)
        region = user.scope if user.role == "supervisor" else None  # as Actor.region (hub/access.py)
        if not errors and (scope_error := scores.manual_scope_error(values, region)):
            errors["site"] = scope_error
        if errors:
            raise ValueError("; ".join(f"--{k}: {v}" for k, v in errors.items()))
        with transaction(conn):
            mid = scores.add_manual(conn, values, login, now, "cli")
        print(f"manual item #{mid} stored ({values['category']}, {values['day']}); audited")
        return 0
    finally:
        conn.close()


def render(data: bytes, by: str | None, fmt: str) -> bytes:
    """A result's bytes as JSON (whole: the frozen bytes; --by: one level), CSV or XLSX."""
    if fmt == "json" and by is None:
        return data
    result = json.loads(data)
    levels = [by] if by else ["department", "window", "staff"]
    if fmt == "json":
        from hub.scores import canonical

        return canonical({**{k: v for k, v in result.items() if k != "by"}, "by": {by: result["by"][by]}})
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["层级", *RANK_HEADER])
        for level in levels:
            for row in rank_rows(result, level):
                w.writerow([LEVEL_ZH[level], *row])
        return ("\ufeff" + buf.getvalue()).encode()  # BOM: Excel opens the Chinese as UTF-8
    return _xlsx(result, levels)


LEVEL_ZH = {"department": "部门", "window": "窗口", "staff": "工作人员"}


def rank_rows(result: dict, level: str) -> list[list]:
    """The ranking of one level as table rows (RANK_HEADER)."""
    return [
        [
            e["rank"],
            e["key"],
            e.get("department") or "",
            e.get("site") or "",
            e["score"],
            e["deductions"],
            e["bonuses"],
            "；".join(d["label"] for d in e["disqualified"]),
            len(e["lines"]),
        ]  # fmt: skip
        for e in result["by"][level]
    ]


def _xlsx(result: dict, levels: list[str]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for level in levels:
        ws = wb.create_sheet(f"{LEVEL_ZH[level]}排名")
        ws.append(RANK_HEADER)
        for row in rank_rows(result, level):
            ws.append(row)
        ws2 = wb.create_sheet(f"{LEVEL_ZH[level]}明细")
        ws2.append(LINE_HEADER)
        for e in result["by"][level]:
            for ln in e["lines"]:
                ws2.append([e["key"], ln["rule"], result["rules"][ln["rule"]]["label"], ln["ref"], ln["date"], ln["points"],
                            ln.get("capped_from", ""), ln["detail"]])  # fmt: skip
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
