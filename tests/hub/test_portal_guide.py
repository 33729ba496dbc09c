"""Catalog import of the portal's guide fields and forms (hub/portal_guide.py, hub/catalog.py)."""

from __future__ import annotations

import pytest

from hub.catalog import CatalogError, accepted_headers, read_catalog, read_catalog_guides, store_catalog
from hub.portal_guide import initials, materials_of

EN = (
    "code,name,department,item_type,case_type,legal_days,promised_days,materials,eligibility,process,"
    "fee_basis,supervision_phone,halls\n"
    'XK-001,食品经营许可,市场监督管理局,licensing,promised,20,10,"申请书[apply.pdf]\n营业执照",本市经营者,'
    "收件；审查；发证,不收费,0354-12345,140702-001；140703-001\n"
)
ZH = (
    "事项编码,事项名称,实施部门,事项类型,办件类型,法定时限,承诺时限,受理条件,办理流程,收费依据,监督电话,办理大厅\n"
    "XK-001,食品经营许可,市场监督管理局,行政许可,承诺件,20,10,本市经营者,收件；审查；发证,不收费,0354-12345,140702-001\n"
)


def _write(tmp_path, text: str, forms: dict[str, bytes] | None = None):
    f = tmp_path / "catalog.csv"
    f.write_text(text, encoding="utf-8")
    if forms:
        (tmp_path / "forms").mkdir()
        for name, data in forms.items():
            (tmp_path / "forms" / name).write_bytes(data)
    return f


def test_english_headers_with_a_form(tmp_path):
    items, guides, forms = read_catalog_guides(_write(tmp_path, EN, {"apply.pdf": b"%PDF-1.4 x"}))
    assert [i.code for i in items] == ["XK-001"]
    g = guides["XK-001"]
    assert (g.eligibility, g.process, g.supervision_phone) == ("本市经营者", "收件；审查；发证", "0354-12345")
    assert g.halls == "140702-001；140703-001"
    assert forms == {"apply.pdf": b"%PDF-1.4 x"}
    assert items[0].materials == "申请书[apply.pdf]\n营业执照"  # the box's checklist keeps its lines


def test_chinese_headers_give_the_same_guide(tmp_path):
    _items, guides, forms = read_catalog_guides(_write(tmp_path, ZH))
    assert guides["XK-001"].eligibility == "本市经营者" and guides["XK-001"].halls == "140702-001"
    assert forms == {}
    assert len(read_catalog(tmp_path / "catalog.csv")) == 1  # the old entry point still gives the items


@pytest.mark.parametrize(
    ("text", "forms", "said"),
    [
        (EN, None, "form 'apply.pdf': not found"),
        (EN, {"apply.pdf": b"x" * (5 * 1024 * 1024 + 1)}, "at most 5,242,880"),
        (EN.replace("0354-12345", "0" * 41), {"apply.pdf": b"%PDF"}, "supervision_phone"),
        (EN.replace("本市经营者", "长" * 4001), {"apply.pdf": b"%PDF"}, "eligibility"),
    ],
)
def test_bad_guides_and_forms_are_refused_by_name(tmp_path, text, forms, said):
    with pytest.raises(CatalogError, match=said):
        read_catalog_guides(_write(tmp_path, text, forms))


def test_a_form_name_with_a_path_is_only_text():
    assert materials_of("申请书[../../etc/passwd.pdf]\n表[a b.pdf]") == [
        {"text": "申请书[../../etc/passwd.pdf]", "form": None},
        {"text": "表[a b.pdf]", "form": None},
    ]
    assert materials_of("申请书［apply.docx］")[0]["form"] == "apply.docx"  # full-width brackets too


def test_headers_help_names_the_guide_fields():
    text = accepted_headers()
    assert "eligibility (受理条件/申请条件)" in text and "supervision_phone (监督电话/监督投诉电话)" in text


@pytest.mark.parametrize(
    ("name", "expected"), [("食品经营许可", "spjyxk"), ("市场监督管理局", "scjdglj"), ("ISO9001认证", "iso9001rz")]
)
def test_initials(name, expected):
    assert initials(name) == expected


def test_a_new_import_replaces_guides_and_forms(tmp_path, db):
    items, guides, forms = read_catalog_guides(_write(tmp_path, EN, {"apply.pdf": b"%PDF-1.4 x"}))
    store_catalog(db, items, guides=guides, forms=forms)
    assert db.execute("SELECT initials FROM portal_guide").fetchall() == [("spjyxk scjdglj",)]
    assert [r[0] for r in db.execute("SELECT name FROM portal_forms").fetchall()] == ["apply.pdf"]
    store_catalog(db, items)  # a catalog without guide columns: the items stay searchable, no forms
    assert db.execute("SELECT guide_json FROM portal_guide").fetchall() == [("{}",)]
    assert db.execute("SELECT count(*) FROM portal_forms").fetchone()[0] == 0
