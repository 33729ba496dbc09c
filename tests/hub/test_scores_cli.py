"""`jiancha scores compute|close|manual add` (hub/scores_cli.py) over the hand-built month, on
both engines: CSV and XLSX readable with the expected figures, closing freezes the JSON bytes,
a manual item is stored and audited, and an unknown or unprivileged login is refused."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest
import yaml
from openpyxl import load_workbook

from hub import scores_cli
from jiancha.cli import _parser, main
from protocol.calendar import CST
from tests.hub.accounts_helpers import make_user
from tests.hub.hubapp import close, provisioned_hub
from tests.hub.scores_helpers import GA, MS, ZR, seed_month

NOW = datetime(2026, 12, 2, 9, tzinfo=CST)


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=("140702-001",), store_url=store_url)
    if store_url.startswith("postgresql"):
        cfg = yaml.safe_load((tmp_path / "hub" / "hub.yaml").read_text(encoding="utf-8"))
        cfg["store"] = {"url": store_url}
        (tmp_path / "hub" / "hub.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    h.write(seed_month)
    make_user(h, "sup", "supervisor")
    make_user(h, "wall", "viewer")
    h.config_path = tmp_path / "hub" / "hub.yaml"
    yield h
    close(h)


def _run(hub, *argv, now=NOW):
    args = _parser().parse_args([*argv, "--config", str(hub.config_path)])
    return scores_cli.dispatch(args, now=now)


def test_csv_and_xlsx_hold_the_ranking_and_the_lines(hub, tmp_path):
    out = tmp_path / "s.csv"
    assert _run(hub, "scores", "compute", "--period", "2026-11", "--by", "department", "--format", "csv",
                "--out", str(out)) == 0  # fmt: skip
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert rows[0] == ["层级", *scores_cli.RANK_HEADER]
    assert [(r[1], r[2], r[5]) for r in rows[1:]] == [("1", GA, "100"), ("2", ZR, "87"), ("3", MS, "63")]
    assert rows[3][8] == "22个工作日内两次投诉经查证属实，取消评优资格"
    xl = tmp_path / "s.xlsx"
    assert _run(hub, "scores", "compute", "--period", "2026-11", "--format", "xlsx", "--out", str(xl)) == 0
    wb = load_workbook(xl)
    assert wb.sheetnames == ["部门排名", "部门明细", "窗口排名", "窗口明细", "工作人员排名", "工作人员明细"]
    ranking = [tuple(r) for r in wb["部门排名"].iter_rows(min_row=2, max_col=5, values_only=True)]
    assert ranking == [(1, GA, GA, None, 100), (2, ZR, ZR, None, 87), (3, MS, MS, None, 63)]
    lines = [r for r in wb["部门明细"].iter_rows(min_row=2, values_only=True) if r[0] == MS]
    assert sum(r[5] for r in lines) == -37 and len(lines) == 14  # 2+3+2+1+1+1+2+1+1 lines (EXPECTED_DEFAULT)


def test_close_freezes_the_bytes_and_manual_add_is_audited(hub, tmp_path, capsys):
    first = tmp_path / "a.json"
    assert _run(hub, "scores", "close", "--period", "2026-11", "--login", "sup") == 0
    assert _run(hub, "scores", "compute", "--period", "2026-11", "--out", str(first)) == 0
    assert _run(hub, "scores", "manual", "add", "--login", "sup", "--day", "2026-11-28", "--category", "media_praise",
                "--department", ZR, "--reason", "日报表扬", "--attachment", "报道.pdf") == 0  # fmt: skip
    capsys.readouterr()
    second = tmp_path / "b.json"
    assert _run(hub, "scores", "compute", "--period", "2026-11", "--out", str(second)) == 0
    assert second.read_bytes() == first.read_bytes()
    assert "inputs changed since closing" in capsys.readouterr().err
    assert json.loads(first.read_bytes())["by"]["department"][1]["score"] == 87
    audit = hub.reader.execute("SELECT actor, action, target FROM audit_log ORDER BY id").fetchall()
    assert [tuple(r) for r in audit] == [
        ("sup", "scores close", "2026-11"),
        ("sup", "scores manual media_praise", f"#3 {ZR}"),
    ]


def test_a_viewer_or_unknown_login_may_not_close_or_add(hub, tmp_path, capsys):
    for login in ("wall", "ghost"):
        assert main(["scores", "close", "--config", str(hub.config_path), "--period", "2026-11", "--login", login]) == 2
        assert "supervisor or admin" in capsys.readouterr().err
    rc = main(["scores", "manual", "add", "--config", str(hub.config_path), "--login", "sup", "--day", "2026-11-31",
               "--category", "gift", "--department", MS, "--reason", "x", "--attachment", "y"])  # fmt: skip
    assert rc == 2 and "--day" in (err := capsys.readouterr().err) and "--category" in err


def test_a_scoped_supervisor_may_add_but_not_close(hub):
    make_user(hub, "sup-a", "supervisor", "140702")
    with pytest.raises(ValueError, match="without a region"):
        _run(hub, "scores", "close", "--period", "2026-11", "--login", "sup-a")
    thanks = ["scores", "manual", "add", "--login", "sup-a", "--day", "2026-11-20", "--category", "thanks",
              "--department", MS, "--reason", "来信感谢", "--attachment", "感谢信.pdf"]  # fmt: skip
    # a department-wide item would count outside 140702; another county's site is not its own
    with pytest.raises(ValueError, match="须注明本辖区的站点编码"):
        _run(hub, *thanks)
    with pytest.raises(ValueError, match="不在您的辖区"):
        _run(hub, *thanks, "--site", "140703-001", "--window", "1")
    assert _run(hub, *thanks, "--site", "140702-001", "--window", "1") == 0


def test_the_rules_file_named_in_hub_yaml_is_used_and_a_bad_one_is_named(hub, tmp_path, capsys):
    from hub.api import create_app

    cfg = yaml.safe_load(hub.config_path.read_text(encoding="utf-8"))
    (hub.config_path.parent / "scores.yaml").write_text(
        "base: 10\nrules:\n  - {id: reds, label: 红牌, kind: red_card, points: -1, lands_on: [department]}\n",
        encoding="utf-8",
    )
    cfg["scores"] = {"rules": "scores.yaml"}
    hub.config_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "s.json"
    assert _run(hub, "scores", "compute", "--period", "2026-11", "--out", str(out)) == 0
    ranking = json.loads(out.read_bytes())["by"]["department"]
    assert [(e["key"], e["score"]) for e in ranking] == [(GA, 10), (MS, 9), (ZR, 9)]  # one red card each
    (hub.config_path.parent / "scores.yaml").write_text("rules:\n  - {id: x, label: y, kind: red, points: 1}\n")
    rc = main(["scores", "compute", "--config", str(hub.config_path), "--period", "2026-11"])
    err = capsys.readouterr().err
    assert rc == 2 and "scores.yaml: rule x (rules[0]), key kind: unknown event kind 'red'" in err
    hub.cfg.scores.rules = hub.config_path.parent / "scores.yaml"
    with pytest.raises(ValueError, match="unknown event kind"):
        create_app(hub, hub.reader, hub.cfg.api.admin_token)  # the hub does not start on it
