"""GET /api/stats, its exports (CSV parsed back, XLSX opened with openpyxl), the stats page
without JavaScript, and the monthly bulletin (pdftotext) on both engines, over generated data."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import date, datetime
from pathlib import Path

import aiohttp
import pytest
from openpyxl import load_workbook

from protocol.calendar import CST
from tests import calendar_reference as ref
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.hubapp import close, provisioned_hub, run, served
from tests.hub.stats_data import generate, sites_of, write

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=CST)
FIRST, LAST = date(2026, 11, 1), date(2026, 11, 30)
SITES = sites_of(4)  # 140702-001, 140703-001, 140721-001, 140722-001


@pytest.fixture
def world(tmp_path, store_url):
    hub = provisioned_hub(tmp_path / "hub", sites=tuple(SITES), store_url=store_url)
    hub.link.publish = lambda *a, **k: None
    hub.ingest.now = lambda: NOW
    g = generate(FIRST, LAST, 600, seed=5, sites=SITES)
    hub.write(lambda c: None)
    write(hub.writer, g)
    for login, role, scope in (("admin1", "admin", None), ("sup-a", "supervisor", "140702"),
                               ("dept", "department", "民政局"), ("wall", "viewer", None)):  # fmt: skip
        make_user(hub, login, role, scope)
    yield hub, g
    close(hub)


async def _get(s, base, hub, who, path):
    async with s.get(base + path, headers=cookie_headers(open_session(hub, who), base), allow_redirects=False) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read()


def test_api_figures_scope_and_validation(world):
    hub, g = world

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            st, _, body = await _get(s, base, hub, "admin1", "/api/stats?from=2026-11-01&to=2026-11-30&by=week")
            assert st == 200
            import json

            data = json.loads(body)
            received = [c for c in g.cases if FIRST <= c["received"] <= LAST]
            assert data["summary"]["received"] == len(received)
            trend = next(t for t in data["tables"] if t["name"] == "trend")
            assert [r[0] for r in trend["rows"]] == [
                "2026-10-26",
                "2026-11-02",
                "2026-11-09",
                "2026-11-16",
                "2026-11-23",
                "2026-11-30",
            ]  # fmt: skip  (Mondays)
            assert sum(r[1] for r in trend["rows"]) == len(received)
            st, _, body = await _get(s, base, hub, "dept", "/api/stats?from=2026-11-01&to=2026-11-30")
            dept = json.loads(body)
            assert dept["summary"]["received"] == sum(c["department"] == "民政局" for c in received)
            st, _, body = await _get(s, base, hub, "sup-a", "/api/stats?from=2026-11-01&to=2026-11-30")
            county = json.loads(body)
            assert county["summary"]["received"] == sum(c["site"].startswith("140702") for c in received)
            for path, word in (
                ("/api/stats?from=2026-11-31", "YYYY-MM-DD"),
                ("/api/stats?from=2025-01-01&to=2026-11-30", "366"),
                ("/api/stats?by=year", "by"),
                ("/api/stats?region=14a", "region"),
                ("/api/stats?department=" + "部" * 101, "department"),
                ("/api/stats?color=red", "unknown parameter"),
                ("/api/stats?by=day&by=week", "twice"),
                ("/api/stats/export?table=nope&format=csv", "table"),
                ("/api/stats/export?table=site&format=pdf", "format"),
                ("/stats/bulletin.pdf?month=2026-13", "YYYY-MM"),
                ("/stats/bulletin.pdf?month=2026-12", "finished month"),
            ):
                st, ctype, body = await _get(s, base, hub, "admin1", path)
                assert (st, ctype.split(";")[0]) == (400, "application/json"), path
                assert word in json.loads(body)["error"], path

    run(go())


def test_exports_are_exactly_the_tables(world):
    hub, g = world
    q = "from=2026-11-01&to=2026-11-30"

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            import json

            _, _, body = await _get(s, base, hub, "admin1", f"/api/stats?{q}")
            tables = {t["name"]: t for t in json.loads(body)["tables"]}
            st, ctype, raw = await _get(s, base, hub, "admin1", f"/api/stats/export?table=department&format=csv&{q}")
            assert st == 200 and ctype == "text/csv; charset=utf-8"
            assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
            rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            dept = tables["department"]
            assert rows[0] == [c["label"] for c in dept["columns"]]
            assert len(rows) == len(dept["rows"]) + 1
            mz = next(r for r in rows if r[0] == "民政局")
            concluded = [
                c for c in g.cases if c["department"] == "民政局" and c["decided"] and FIRST <= c["decided"] <= LAST
            ]
            durs = sorted(max(0, ref.working_days_between(c["received"], c["decided"])) for c in concluded)
            assert mz[2] == str(len(concluded))
            assert mz[5] == f"{sum(durs) / len(durs):.2f}".rstrip("0").rstrip(".")  # mean, working days
            st, ctype, raw = await _get(s, base, hub, "admin1", f"/api/stats/export?table=ratings&format=xlsx&{q}")
            assert st == 200 and ctype.startswith("application/vnd.openxmlformats")
            ws = load_workbook(io.BytesIO(raw)).active
            assert ws["A1"].value == tables["ratings"]["title"]
            assert [c.value for c in ws[3]] == [c["label"] for c in tables["ratings"]["columns"]]
            cells = [[c.value for c in row] for row in ws.iter_rows(min_row=4)]
            assert cells == tables["ratings"]["rows"]
            assert ws["H4"].number_format == "0.00%"
            votes = [v for v in g.votes if v["channel"] == "keypad" and FIRST <= v["day"] <= LAST
                     and v["misuse"] is None and (v["site"], v["seq"], "keypad") not in g.marks]  # fmt: skip
            assert cells[0][1:6] == [sum(v["level"] == lv for v in votes) for lv in range(1, 6)]

    run(go())


def test_page_without_javascript_and_the_bulletin(world):
    hub, g = world

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            st, ctype, html = await _get(s, base, hub, "wall", "/stats?from=2026-11-01&to=2026-11-30")
            text = html.decode()
            assert st == 200 and ctype.startswith("text/html")
            for title in (
                "主要指标",
                "收件与办结趋势",
                "各部门办件",
                "各事项办理用时（实际提速）",
                "各区县办件",
                "好差评",
            ):
                assert title in text
            assert "下载月度通报" not in text  # a viewer reads, an operator issues the bulletin
            assert "format=xlsx" in text and "format=csv" in text
            st, ctype, pdf = await _get(s, base, hub, "admin1", "/stats/bulletin.pdf?month=2026-11")
            assert (st, ctype) == (200, "application/pdf")
            st, _, again = await _get(s, base, hub, "admin1", "/stats/bulletin.pdf?month=2026-11")
            assert again == pdf  # issued once; the same numbered document afterwards
            st, _, html = await _get(s, base, hub, "admin1", "/stats?from=2026-11-01&to=2026-11-30")
            assert "下载月度通报" in html.decode()
            return pdf

    pdf = run(go())
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    text = text.decode()
    received = sum(FIRST <= c["received"] <= LAST for c in g.cases)
    assert "政务服务电子监察月度通报（2026年11月）" in text
    assert f"{hub.cfg.doc_prefix}〔2026〕1号" in text
    assert f"本月收件 {received} 件" in text
    concluded = [c for c in g.cases if c["decided"] and FIRST <= c["decided"] <= LAST]
    assert f"办结 {len(concluded)} 件" in text


def test_cli_writes_the_same_numbered_bulletin(world, tmp_path, store_url, capsys):
    from jiancha.cli import main

    hub, g = world
    config = _config_of(hub, store_url)
    out = tmp_path / "通报-2026-11.pdf"
    from hub import admin

    meta = admin.stats_bulletin(config, "2026-11", out, now=NOW)
    assert meta["number"] == f"{hub.cfg.doc_prefix}〔2026〕1号"
    assert main(["stats", "bulletin", "--config", str(config), "--month", "2026-11", "--out", str(out)]) == 0
    assert f"bulletin {meta['number']} for 2026-11" in capsys.readouterr().out
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, check=True).stdout.decode()
    assert f"本月收件 {sum(FIRST <= c['received'] <= LAST for c in g.cases)} 件" in text
    assert main(["stats", "bulletin", "--config", str(config), "--month", "2099-01", "--out", str(out)]) != 0


def _config_of(hub, store_url: str) -> Path:
    """The hub's hub.yaml, pointed at the test's PostgreSQL store when the engine is PostgreSQL."""
    import yaml

    path = Path(hub.data_dir).parent / "hub.yaml"
    if store_url.startswith("postgresql"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["store"] = {**(raw.get("store") or {}), "url": store_url}
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path
