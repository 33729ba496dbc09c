"""Each kind renders to a real PDF: Chinese text extractable, font embedded, page not blank."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, date, datetime

import pytest

from hub.documents import (
    KINDS,
    VIOLATIONS_ZH,
    DocumentFacts,
    TemplateError,
    chinese_date,
    format_number,
    parse_number,
    render_pdf,
    violation_zh,
)
from hub.documents import templates as tpl
from hub.documents.render import template_values
from tests.hub.documents import pdftools
from tests.hub.documents.conftest import at, make_facts

NUMBER = "晋中监察〔2026〕12号"


@functools.cache
def rendered(kind: str) -> bytes:
    """The default facts rendered once per kind (rendering parses the font: ~0.3 s)."""
    return render_pdf(kind, NUMBER, make_facts())


def test_kinds_are_the_six_documents_of_the_seeds():
    assert KINDS == {
        "duban": "督办通知书",
        "order_explain": "责令说明理由通知书",
        "inquiry": "电子监察问询书",
        "rectify": "电子监察整改通知书",
        "suggestion": "监察建议书",
        "decision": "监察决定书",
    }


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_renders_with_title_number_and_facts(kind, facts, tmp_path):
    pdf = rendered(kind)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    flat = pdftools.flat(pdf, tmp_path)
    for s in (
        KINDS[kind],
        NUMBER,
        facts.case_no,
        "食品经营许可（新办）",
        "晋中市榆次区市场监督管理局",
        "负责人：王建国",
        "东阳镇便民服务中心",
        "晋中市政务服务电子监察中心",
        "2026年11月21日",  # 成文日期
        "2026年3月2日09:30",  # 收件时间 (timeline and facts table)
        "2026年3月10日15:00",
        "2026年3月24日",
        "2026年4月7日",
        "12个工作日",
        "逾期未受理（视为受理）",
        "逾期补正告知",
        "办理环节：现场核查",
        "办结",
        "（印章）",
        "抄送：晋中市政务服务管理局",
        "李明0354-3031234",
    ):
        assert s in flat, f"{kind}: {s!r} missing from the PDF text"
    assert "acceptance_timeout" not in flat  # codes are shown in Chinese
    assert pdftools.pages(pdf, tmp_path) >= 1


@pytest.mark.parametrize("kind", ["duban", "order_explain"])
def test_duban_and_order_explain_state_the_reply_deadline(kind, facts, tmp_path):
    flat = pdftools.flat(rendered(kind), tmp_path)
    assert "请你单位于2026年11月28日前" in flat


@pytest.mark.parametrize("kind", ["duban", "order_explain"])
def test_duban_and_order_explain_require_a_reply_deadline(kind):
    with pytest.raises(ValueError, match="reply_deadline"):
        render_pdf(kind, NUMBER, make_facts(reply_deadline=None))


@pytest.mark.parametrize(
    "kind,default,then",
    [
        ("inquiry", "5个工作日内", "就上述问询事项"),
        ("rectify", "10个工作日内", "将整改落实情况"),
        ("suggestion", "30日内", "将采纳本建议"),
        ("decision", "30日内", "将执行情况"),
    ],
)
def test_other_kinds_fall_back_to_a_default_reply_period(kind, default, then, tmp_path):
    sentence = f"自收到本{KINDS[kind][-3:]}之日起{default}{then}"
    flat = pdftools.flat(render_pdf(kind, NUMBER, make_facts(reply_deadline=None)), tmp_path)
    assert sentence in flat
    flat2 = pdftools.flat(rendered(kind), tmp_path)
    assert f"2026年11月28日前{then}" in flat2 and sentence not in flat2


def test_font_is_embedded_as_a_subset(facts, tmp_path):
    rows = pdftools.fonts(rendered("duban"), tmp_path)
    assert rows, "no font in the PDF"
    for r in rows:
        assert r["emb"] == "yes", f"font {r['name']} is not embedded"
        assert r["sub"] == "yes" and r["uni"] == "yes", r
        assert r["type"].startswith("CID"), r


@pytest.mark.parametrize("kind", list(KINDS))
def test_first_page_is_not_blank_and_has_the_red_header(kind, facts, tmp_path):
    png = pdftools.page_png(rendered(kind), tmp_path, dpi=50)
    share, red = pdftools.ink(png)
    assert share > 0.02, f"page 1 of {kind} looks blank ({share:.3%} ink)"
    assert red > 200, "the red 版头 (authority name and rule) is missing"


def test_without_red_header_no_red_on_page_one(tmp_path):
    png = pdftools.page_png(render_pdf("inquiry", NUMBER, make_facts(red_header=False)), tmp_path)
    share, red = pdftools.ink(png)
    assert share > 0.02 and red < 20


def test_every_violation_code_is_shown_in_chinese_unknown_as_is(tmp_path):
    codes = tuple(VIOLATIONS_ZH) + ("brand_new_code",)
    flat = pdftools.flat(render_pdf("rectify", NUMBER, make_facts(violations=codes)), tmp_path)
    for code in VIOLATIONS_ZH:
        assert VIOLATIONS_ZH[code] in flat, code
    assert "brand_new_code" in flat
    assert violation_zh("brand_new_code") == "brand_new_code"
    assert violation_zh("backdated") == "补记时间超出允许范围"
    assert violation_zh("out_of_order") == "办理环节顺序异常"


def test_requirements_replace_the_template_defaults(tmp_path):
    f = make_facts(requirements=["于三日内完成审批", "向申请人说明延误原因"])
    flat = pdftools.flat(render_pdf("rectify", NUMBER, f), tmp_path)
    assert "（一）于三日内完成审批。" in flat and "（二）向申请人说明延误原因。" in flat
    assert "健全受理、审核、办结" not in flat


def test_long_timeline_spans_pages_with_every_row(tmp_path):
    rows = tuple((at(3, 2 + i // 8, 9 + i % 8, 15), f"办理环节：审查第{i + 1}步") for i in range(40))
    pdf = render_pdf("suggestion", NUMBER, make_facts(timeline=rows))
    flat = pdftools.flat(pdf, tmp_path)
    assert pdftools.pages(pdf, tmp_path) >= 3
    for i in range(40):
        assert f"审查第{i + 1}步" in flat
    assert flat.count("（印章）") == 1
    last = pdftools.page_png(pdf, tmp_path, page=pdftools.pages(pdf, tmp_path))
    assert pdftools.ink(last)[1] > 50  # the red seal placeholder is on the last page


def test_empty_timeline_and_minimal_facts(tmp_path):
    f = DocumentFacts(
        case_no="C-1",
        item_name="户外广告设置审批",
        department="城管局",
        addressee="城管局",
        authority="监察中心",
        issue_date=date(2026, 1, 5),
    )
    flat = pdftools.flat(render_pdf("inquiry", "监察〔2026〕1号", f), tmp_path)
    assert "暂无办理环节记录" in flat and "经监测存在需要核实的情形" in flat
    assert "2026年1月5日" in flat


@pytest.mark.parametrize("rows", [0, 14, 22, 30])  # 22: the seal would fall on its own page
def test_the_seal_page_carries_body_text(rows, tmp_path):
    """GB/T 9704: no page with only the signature and seal — the last paragraph goes with it."""
    timeline = tuple((at(3, 2, 9, i), f"办理环节：第{i + 1}步") for i in range(rows))
    pdf = render_pdf("inquiry", NUMBER, make_facts(timeline=timeline, reply_deadline=None))
    pages = pdftools.page_texts(pdf, tmp_path)
    (seal_page,) = [p for p in pages if "（印章）" in p]
    before = seal_page.split("（印章）")[0]
    assert "书面答复。" in before, seal_page


def test_times_are_shown_in_china_time(tmp_path):
    utc = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Beijing
    flat = pdftools.flat(
        render_pdf("inquiry", NUMBER, make_facts(timeline=((utc, "收件"),), received_at=utc)), tmp_path
    )
    assert "2026年3月2日09:30" in flat and "01:30" not in flat


def test_same_inputs_give_the_same_bytes(facts):
    assert render_pdf("decision", NUMBER, facts) == rendered("decision")
    assert rendered("decision") != render_pdf("decision", "晋中监察〔2026〕13号", facts)


def test_unknown_kind_and_bad_arguments(facts):
    with pytest.raises(ValueError, match="unknown document kind 'memo'"):
        render_pdf("memo", NUMBER, facts)
    with pytest.raises(ValueError, match="number"):
        render_pdf("duban", "", facts)
    with pytest.raises(TypeError):
        render_pdf("duban", NUMBER, {"case_no": "x"})  # type: ignore[arg-type]


def test_format_and_parse_number():
    assert format_number("晋中监察", 2026, 12) == "晋中监察〔2026〕12号"
    assert parse_number("晋中监察〔2026〕12号") == ("晋中监察", 2026, 12)
    assert format_number("榆次监察", 2027, 1) == "榆次监察〔2027〕1号"
    for bad in [
        ("", 2026, 1),
        ("晋中 监察", 2026, 1),
        ("晋中〔监察", 2026, 1),
        ("晋中监察", 26, 1),
        ("晋中监察", 2026, 0),
        ("晋中监察", 2026, True),
    ]:
        with pytest.raises(ValueError):
            format_number(*bad)
    with pytest.raises(ValueError):
        parse_number("晋中监察[2026]12号")


def test_chinese_date():
    assert chinese_date(date(2026, 11, 21)) == "2026年11月21日"
    assert chinese_date(date(2026, 1, 5)) == "2026年1月5日"


def test_facts_validate_and_round_trip(facts):
    assert DocumentFacts.from_dict(facts.to_dict()) == facts
    with pytest.raises(ValueError, match="case_no"):
        make_facts(case_no=" ")
    with pytest.raises(ValueError, match="days_overdue"):
        make_facts(days_overdue=-1)
    with pytest.raises(ValueError, match="timeline row 1"):
        make_facts(timeline=[("not a time", "受理")])
    with pytest.raises(ValueError, match="violations"):
        make_facts(violations="acceptance_timeout")
    assert make_facts(issue_date="2026-11-21").issue_date == date(2026, 11, 21)


def test_templates_use_only_known_placeholders(facts):
    known = set(template_values("duban", NUMBER, facts))
    fact_fields = {f.name for f in dataclasses.fields(DocumentFacts)}
    for kind in KINDS:
        t = tpl.load(kind)
        assert tpl.placeholders(t) <= known, kind
        assert {b.kind for b in t.blocks} >= {
            "addressee",
            "facts",
            "violations",
            "timeline",
            "requirements",
            "heading",
            "para",
        }, kind
        assert all(b.cond in fact_fields for b in t.blocks if b.cond), kind
        assert set(t.requires) <= fact_fields


def test_template_errors_are_named():
    with pytest.raises(TemplateError, match="x.txt line 2: unknown block @tabel"):
        tpl.parse("x", "正文\n@tabel\n")
    t = tpl.parse("x", "你好${nobody}")
    with pytest.raises(TemplateError, match=r"unknown placeholder \$\{nobody\}"):
        tpl.fill("x", t.blocks[0].text, {"a": "b"})


def test_template_parser_blocks():
    t = tpl.parse(
        "x",
        "# comment\n@require reply_deadline, due_date\n@addressee\n第一行\n接续\n\n"
        "## 一、标题\n@requirements\n甲\n乙\n\n?reply_deadline 有期限\n\n?!reply_deadline 无期限\n",
    )
    assert t.requires == ("reply_deadline", "due_date")
    kinds = [(b.kind, b.text, b.items, b.cond, b.negate) for b in t.blocks]
    assert kinds == [
        ("addressee", "", (), "", False),
        ("para", "第一行接续", (), "", False),
        ("heading", "一、标题", (), "", False),
        ("requirements", "", ("甲", "乙"), "", False),
        ("para", "有期限", (), "reply_deadline", False),
        ("para", "无期限", (), "reply_deadline", True),
    ]
