"""Catalog import: CSV or YAML, Chinese labels accepted, every problem named by row and field."""

from __future__ import annotations

import json

import pytest

from hub.catalog import CatalogError, read_catalog, store_catalog
from tests.e2e.harness import CATALOG


def test_demo_csv_with_chinese_headers_and_labels():
    items = read_catalog(CATALOG)
    by_code = {i.code: i for i in items}
    assert by_code["XK-001"].item_type == "licensing" and by_code["XK-001"].case_type == "promised"
    assert by_code["XK-002"].case_type == "joint" and by_code["XK-002"].legal_days == 45
    assert by_code["XK-004"].case_type == "immediate" and by_code["XK-004"].promised_days == 0
    assert by_code["GG-001"].case_type == "escalated"


def test_yaml_with_english_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(
        "items:\n  - {code: A1, name: 排水许可, department: 住建局, item_type: 行政许可,\n"
        "     case_type: promised, legal_days: 20, promised_days: 5, yellow_days: 1}\n",
        encoding="utf-8",
    )
    (item,) = read_catalog(f)
    assert (item.code, item.item_type, item.promised_days) == ("A1", "licensing", 5)


def test_errors_name_row_and_field(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(
        "code,name,department,item_type,case_type,legal_days,promised_days\n"
        "A1,甲,部门,行政许可,承诺件,20,30\n"
        "A2,乙,部门,许可证,承诺件,20,5\n"
        "A3,乙,部门,公共服务,承诺件,20,5\n"
        "A3,丙,部门,公共服务,即办件,20,0\n"
        "A5,丁,部门,公共服务,承诺件,二十,5\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError) as e:
        read_catalog(f)
    msg = str(e.value)
    assert "4 problem(s)" in msg
    assert "row 1" in msg and "exceeds legal_days" in msg
    assert "row 2 (line 3) item_type" in msg
    assert "row 4 (line 5) code: duplicate 'A3'" in msg
    assert "row 5 (line 6) legal_days" in msg


def test_immediate_item_with_promised_days_is_refused(tmp_path):
    """即办件 means done the same day: promised_days must be 0 (docs/case-rules.md)."""
    f = tmp_path / "c.csv"
    f.write_text(
        "code,name,department,item_type,case_type,legal_days,promised_days\n"
        "A1,居民身份证明,公安局,公共服务,即办件,20,5\n"
        "A2,户籍证明,公安局,公共服务,即办件,20,0\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError) as e:
        read_catalog(f)
    msg = str(e.value)
    assert "1 problem(s)" in msg and "row 1" in msg and "即办件" in msg and "row 2" not in msg


@pytest.mark.parametrize(
    "name,text,expected",
    [
        ("x.txt", "a", "unsupported file type"),
        ("x.csv", "", "no items"),
        ("x.yaml", "just a string", "expected a list"),
    ],
)
def test_file_level_errors(tmp_path, name, text, expected):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=expected):
        read_catalog(f)


def test_store_bumps_version_and_keeps_an_audit_line(db):
    conn = db
    items = read_catalog(CATALOG)
    assert store_catalog(conn, items, actor="tester") == 1
    assert store_catalog(conn, items[:2], actor="tester") == 2
    payload = json.loads(conn.execute("SELECT payload_json FROM config WHERE kind='catalog'").fetchone()[0])
    assert [i["code"] for i in payload["items"]] == [i.code for i in items[:2]]
    assert conn.execute("SELECT count(*) FROM config_log WHERE actor='tester'").fetchone()[0] == 2


def test_unknown_columns_are_named_with_the_accepted_headers(tmp_path):
    f = tmp_path / "items.csv"
    f.write_text(
        "code,name,department,item_type,case_type,legal_days,promised_days,办理地点\n"
        "A1,甲,乙,licensing,promised,20,10,一楼\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError) as e:
        read_catalog(f)
    msg = str(e.value)
    assert "'办理地点'" in msg and "accepted:" in msg
    assert "promised_days (承诺时限)" in msg and "department (实施部门/部门)" in msg
