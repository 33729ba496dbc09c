"""通讯录: loading YAML/CSV (errors name the line or key and the field), SQLite round trip, lookup."""

from __future__ import annotations

import pytest

from hub.notify.directory import (
    Directory,
    DirectoryError,
    load_directory,
    normalize_mobile,
    read_directory,
    save_directory,
)

YAML = """
departments:
  - name: 市场监督管理局
    head: {name: 王局长, phone: "13800138000", email: wang@scjg.example.gov.cn}
    handlers:
      - {name: 张三, phone: "139 0013 9000", items: [SC001]}
      - {name: 李四, email: lisi@scjg.example.gov.cn}
  - name: 自然资源局
    handlers:
      - {name: 赵六, phone: "+86 150-0015-0000"}
"""

CSV = """department,role,name,phone,email,items
市场监督管理局,负责人,王局长,13800138000,wang@scjg.example.gov.cn,
市场监督管理局,经办人,张三,139 0013 9000,,SC001；SC002
市场监督管理局,handler,李四,,lisi@scjg.example.gov.cn,
"""


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_yaml_loads_and_normalizes_phones(tmp_path):
    d = load_directory(write(tmp_path, "dir.yaml", YAML))
    dep = d.department("市场监督管理局")
    assert dep.head.phone == "13800138000" and dep.handlers[0].phone == "13900139000"
    assert d.department("自然资源局").handlers[0].phone == "15000150000"
    assert dep.handlers[0].items == ("SC001",)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_loads_in_utf8_or_gbk_with_chinese_roles(tmp_path, encoding):
    d = load_directory(write(tmp_path, "dir.csv", CSV, encoding))
    dep = d.department("市场监督管理局")
    assert dep.head.name == "王局长"
    assert [p.name for p in dep.handlers] == ["张三", "李四"]
    assert dep.handlers[0].items == ("SC001", "SC002")


def test_recipients_by_role_and_item(tmp_path):
    d = load_directory(write(tmp_path, "dir.yaml", YAML))
    names = lambda rs: [(r.role, r.name) for r in rs]
    assert names(d.recipients("市场监督管理局")) == [("handler", "张三"), ("handler", "李四"), ("head", "王局长")]
    assert names(d.recipients("市场监督管理局", roles=("head",))) == [("head", "王局长")]
    assert names(d.recipients(" 市场监督管理局 ", item_code="SC009")) == [("handler", "李四"), ("head", "王局长")]
    assert d.recipients("不存在的部门") == []


def test_store_round_trip(tmp_path, db):
    _, conn = db
    d = load_directory(write(tmp_path, "dir.yaml", YAML))
    assert save_directory(conn, d, now_ms=1) == 4
    assert read_directory(conn) == d
    assert save_directory(conn, Directory(), now_ms=2) == 0 and read_directory(conn) == Directory()


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            CSV.replace("139 0013 9000", "1390013900"),
            "line 3 (张三): phone: '1390013900' is not a mainland mobile number",
        ),
        (CSV.replace("lisi@scjg.example.gov.cn", "lisi"), "line 4 (李四): email: 'lisi' is not an e-mail address"),
        (CSV.replace(",handler,", ",科员,"), "line 4 (李四): role: '科员' is not handler/经办人 or head/负责人"),
        (
            CSV + "市场监督管理局,head,钱七,13700137000,,\n",
            "line 5 (钱七): role: department 市场监督管理局 already has a head",
        ),
        (CSV + "市场监督管理局,handler,孙八,,,\n", "line 5 (孙八): row: 孙八: needs a phone or an email"),
        (CSV + ",handler,周九,13700137000,,\n", "line 5 (周九): department: empty"),
        ("department,name,phone\n", "line 1 (header): missing column(s) role"),
        ("department,role,name,mobile\n", "unknown column(s) mobile"),
        ("department,role,name\n", "no rows"),
    ],
)
def test_csv_errors_name_line_and_field(tmp_path, text, expected):
    with pytest.raises(DirectoryError) as exc:
        load_directory(write(tmp_path, "dir.csv", text))
    assert expected in str(exc.value)


def test_csv_reports_every_bad_row_at_once(tmp_path):
    bad = CSV.replace("13800138000", "12800138000").replace("139 0013 9000", "abc")
    with pytest.raises(DirectoryError) as exc:
        load_directory(write(tmp_path, "dir.csv", bad))
    assert "line 2 (王局长): phone" in str(exc.value) and "line 3 (张三): phone" in str(exc.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            YAML.replace('"139 0013 9000"', "13900139000.0"),
            "departments[0](市场监督管理局).handlers[0](张三).phone: 13900139000.0 looks like a number mangled",
        ),
        (YAML.replace("name: 自然资源局", "name: 市场监督管理局"), "department '市场监督管理局' is listed twice"),
        (
            YAML.replace('      - {name: 赵六, phone: "+86 150-0015-0000"}', "      []"),
            "departments[1](自然资源局): department 自然资源局: needs a head or at least one handler",
        ),
        (YAML.replace("head: {", "boss: {"), "departments[0](市场监督管理局).boss: Extra inputs are not permitted"),
        ("- just a list\n", "expected a mapping with a 'departments' list"),
        ("departments: [\n", "cannot parse YAML"),
    ],
)
def test_yaml_errors_name_the_key(tmp_path, text, expected):
    with pytest.raises(DirectoryError) as exc:
        load_directory(write(tmp_path, "dir.yaml", text))
    assert expected in str(exc.value)


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(DirectoryError, match="cannot read"):
        load_directory(tmp_path / "nope.yaml")
    with pytest.raises(DirectoryError, match="expected a .yaml, .yml or .csv"):
        load_directory(write(tmp_path, "dir.xlsx", "x"))


@pytest.mark.parametrize(
    "raw, ok",
    [
        ("13800138000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("0086 138-0013-8000", "13800138000"),
        ("19912345678", "19912345678"),
        ("12800138000", None),
        ("1380013800", None),
        ("138001380001", None),
        ("010-12345678", None),
        ("１３８００１３８０００", None),
    ],
)
def test_mainland_mobile(raw, ok):
    if ok:
        assert normalize_mobile(raw) == ok
    else:
        with pytest.raises(ValueError, match="not a mainland mobile number"):
            normalize_mobile(raw)
