"""Facts from a hub case carry no applicant data; the CJK font is found, overridable, or named."""

from __future__ import annotations

import dataclasses
import re
from datetime import date

import pytest

from hub.documents import CASE_KEYS, DocumentFacts, FontNotFoundError, facts_from_case, find_cjk_font, render_pdf
from iobase import fonts as fontmod
from protocol.calendar import default_calendar
from tests.hub.documents import pdftools

APPLICANT = {"name": "张三丰", "id_no": "140702199001011234", "phone": "13812345678", "address": "榆次区顺城街88号"}

CASE = {  # shaped like GET /api/cases/{case_no}
    "case_no": "JZ-DY-20260302-0007",
    "site": "S01",
    "item_code": "XK-001",
    "item_name": "食品经营许可（新办）",
    "department": "晋中市榆次区市场监督管理局",
    "received_at": "2026-03-02T09:30:00+08:00",
    "status": "completed",
    "light": "red",
    "due_date": "2026-03-24",
    "legal_due_date": "2026-04-07",
    "acceptance_due": "2026-03-09",
    "violations": '["acceptance_timeout"]',
    "closed": True,
    "applicant": APPLICANT,
    "clerk": "窗口人员李四",
    "window": "3号窗口",
    "query_code": "8842",
    "events": [
        {"type": "accept", "at": "2026-03-10T15:00:00+08:00", "actor": "李四", "seq": 2},
        {"type": "step", "at": "2026-03-12T10:05:00+08:00", "step": "现场核查", "seq": 3},
        {
            "type": "extend",
            "at": "2026-03-20T10:00:00+08:00",
            "days": 10,
            "approver": "赵局长",
            "reason": "申请人张三丰电话13812345678无法联系",
            "seq": 4,
        },
        {"type": "complete", "at": "2026-04-09T16:40:00+08:00", "seq": 5},
    ],
}


def _facts(**kw) -> DocumentFacts:
    return facts_from_case(
        CASE,
        authority="晋中市政务服务电子监察中心",
        issue_date=date(2026, 11, 21),
        addressee_head="王建国",
        reply_deadline=date(2026, 11, 28),
        **kw,
    )


def test_facts_have_no_field_for_applicant_data():
    names = {f.name for f in dataclasses.fields(DocumentFacts)}
    banned = {
        "applicant",
        "id",
        "idcard",
        "phone",
        "mobile",
        "tel",
        "address",
        "person",
        "citizen",
        "query",
        "clerk",
        "window",
        "birth",
        "gender",
    }
    assert not {n for n in names if set(n.split("_")) & banned}
    with pytest.raises(ValueError, match="unknown fact"):
        DocumentFacts.from_dict({**_facts().to_dict(), "applicant": APPLICANT})
    with pytest.raises(TypeError):
        DocumentFacts(
            case_no="1",
            item_name="a",
            department="b",
            addressee="b",
            authority="c",
            issue_date=date(2026, 1, 5),
            applicant="张三丰",
        )  # type: ignore[call-arg]


def test_facts_from_case_reads_only_whitelisted_keys():
    f = _facts()
    assert "applicant" not in CASE_KEYS and "clerk" not in CASE_KEYS and "query_code" not in CASE_KEYS
    assert (f.case_no, f.item_name, f.department, f.addressee) == (
        "JZ-DY-20260302-0007",
        "食品经营许可（新办）",
        "晋中市榆次区市场监督管理局",
        "晋中市榆次区市场监督管理局",
    )
    assert f.violations == ("acceptance_timeout",) and f.light == "red"
    assert f.due_date == date(2026, 3, 24) and f.legal_due_date == date(2026, 4, 7)
    assert [s for _, s in f.timeline] == ["收件", "受理", "办理环节：现场核查", "延期（10个工作日）", "办结"]
    assert f.accepted_at.isoformat() == "2026-03-10T15:00:00+08:00"
    dump = f.to_json()
    for secret in [*APPLICANT.values(), "李四", "3号窗口", "8842", "无法联系"]:
        assert secret not in dump


@pytest.mark.parametrize("kind", ["duban", "decision"])
def test_no_applicant_data_reaches_the_pdf(kind, tmp_path):
    pdf = render_pdf(kind, "晋中监察〔2026〕3号", _facts())
    flat = pdftools.flat(pdf, tmp_path)
    assert "食品经营许可（新办）" in flat and "延期（10个工作日）" in flat
    for secret in [*APPLICANT.values(), "李四", "3号窗口", "8842", "无法联系"]:
        assert secret not in flat
    assert b"13812345678" not in pdf and "张三丰".encode("utf-16-be") not in pdf


def test_days_overdue_counted_in_working_days_with_the_calendar():
    # due 2026-03-24, completed 2026-04-09: 3/25-27, 3/30-4/3, 4/7-9 (清明 4/4-6 off) = 11
    assert _facts(calendar=default_calendar()).days_overdue == 11
    assert _facts(days_overdue=3, calendar=default_calendar()).days_overdue == 3
    assert _facts().days_overdue is None
    open_case = {**CASE, "events": CASE["events"][:2]}
    f = facts_from_case(open_case, authority="监察中心", issue_date=date(2026, 3, 27), calendar=default_calendar())
    assert f.days_overdue == 3


def test_font_found_in_standard_locations():
    spec = find_cjk_font()
    assert spec.path.is_file() and spec.family
    assert spec.package  # came from a known Debian package


def _norm(s: str) -> str:
    return re.sub(r"[^0-9a-z]", "", s.lower())


def test_env_override_picks_the_font(monkeypatch, tmp_path):
    specs = fontmod.find_cjk_fonts()
    spec = specs[-1]  # the least preferred one found, so the override is visible when there are two
    monkeypatch.setenv(fontmod.ENV_VAR, f"{spec.path}#{spec.index}")
    fontmod.clear_cache()
    try:
        assert (find_cjk_font().path, find_cjk_font().index) == (spec.path, spec.index)
        rows = pdftools.fonts(render_pdf("inquiry", "监察〔2026〕1号", _facts()), tmp_path)
        embedded = [_norm(r["name"].split("+", 1)[1]) for r in rows]
        assert len(embedded) == 1 and embedded[0].startswith(_norm(spec.family)), (embedded, spec)
    finally:
        fontmod.clear_cache()


def test_env_override_to_a_missing_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(fontmod.ENV_VAR, str(tmp_path / "nope.ttf"))
    fontmod.clear_cache()
    try:
        with pytest.raises(FontNotFoundError, match="JIANCHA_CJK_FONT.*no such font file"):
            render_pdf("inquiry", "监察〔2026〕1号", _facts())
    finally:
        fontmod.clear_cache()


def test_no_font_installed_names_the_apt_package(monkeypatch, tmp_path):
    monkeypatch.delenv(fontmod.ENV_VAR, raising=False)
    monkeypatch.setattr(fontmod, "font_dirs", lambda: [tmp_path])
    fontmod.clear_cache()
    try:
        with pytest.raises(FontNotFoundError, match="apt-get install fonts-arphic-uming"):
            find_cjk_font()
    finally:
        fontmod.clear_cache()
