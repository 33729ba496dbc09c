"""Sign content: GBK-safe text, wrapping in cells, lines and pages, hub commands."""

from __future__ import annotations

import pytest

from agent.devices.signs.content import (
    SignCommandError,
    SignContent,
    SignItem,
    apply_command,
    expire_notice,
    fee_text,
    gbk_safe,
    item_line,
    pad,
    render_lines,
    render_pages,
    sign_items,
    text_cells,
    wrap,
)
from protocol.models import CatalogItem

CONTENT = SignContent(
    window="3",
    window_name="3号窗口",
    staff="张三",
    items=(SignItem("个体工商户设立登记", 3, "免费"), SignItem("居民身份证换领", 0, "20元", True)),
    received_today=12,
    completed_today=9,
)


@pytest.mark.parametrize(
    "text, safe",
    [
        ("3号窗口", "3号窗口"),
        ("line\nbreak\ttab", "line break tab"),
        ("路径 C:\\C1 红字", "路径 C:＼C1 红字"),  # no card escape codes from user text
        ("好😀评", "好?评"),  # outside GBK
        ("  spaced   out  ", "spaced out"),
        ("€5", "?5"),  # Python's gbk has no euro sign
    ],
)
def test_gbk_safe(text, safe):
    assert gbk_safe(text) == safe
    safe.encode("gbk")


def test_cells_and_wrap():
    assert text_cells("3号窗口") == 7 and text_cells("ＡＢ") == 4
    assert wrap("承诺3个工作日 免费", 14) == ["承诺3个工作日", "免费"]
    assert wrap("一二三四五六七八", 6) == ["一二三", "四五六", "七八"]
    assert wrap("ab一", 3) == ["ab", "一"]  # never half a character
    assert all(text_cells(line) <= 5 for line in wrap("a一b二c三d四e五", 5))
    assert wrap("", 10) == [""]
    with pytest.raises(ValueError):
        wrap("x", 1)
    assert pad("一a", 6) == "一a   "


@pytest.mark.parametrize("fee, text", [(None, ""), ("0", "免费"), ("免费", "免费"), ("20元", "收费:20元")])
def test_fee_text(fee, text):
    assert fee_text(fee) == text


def test_item_line():
    assert item_line(SignItem("设立登记", 3, "免费")) == "设立登记 承诺3个工作日 免费"
    assert item_line(SignItem("换领", 0, None)) == "换领 即办"


def test_render_lines():
    assert render_lines(CONTENT, 24) == [
        "3号窗口 当班:张三",
        "个体工商户设立登记",
        "承诺3个工作日 免费",
        "居民身份证换领 即办",
        "收费:20元",
        "今日受理12件 办结9件",
    ]
    assert all(text_cells(line) <= 16 for line in render_lines(CONTENT, 16))


def test_pages_keep_the_header():
    pages = render_pages(CONTENT, 24, rows=2)
    assert len(pages) == 5 and all(p[0] == "3号窗口 当班:张三" for p in pages)
    assert pages[-1] == ("3号窗口 当班:张三", "今日受理12件 办结9件")
    one_row = render_pages(CONTENT, 24, rows=1)
    assert [p[0] for p in one_row] == render_lines(CONTENT, 24)
    assert render_pages(CONTENT, 64, rows=8) == (tuple(render_lines(CONTENT, 64)),)


def test_sign_items_from_catalog():
    catalog = [
        CatalogItem(
            code="A1",
            name="设立登记",
            department="市场监管",
            item_type="许可",
            case_type="承诺件",
            legal_days=20,
            promised_days=3,
            fee="免费",
        ),
        {"code": "B2", "name": "换领", "promised_days": 0, "case_type": "immediate"},
    ]
    assert sign_items(catalog) == (SignItem("设立登记", 3, "免费"), SignItem("换领", 0, None, True))
    assert sign_items(catalog, codes=["B2", "ZZ"]) == (SignItem("换领", 0, None, True),)


def test_hub_text_command_and_expiry():
    cmd = {"cmd": "sign_text", "window": "3", "text": "系统升级\n暂停办理", "seconds": 600}
    shown = apply_command(CONTENT, cmd, now_mono=100.0)
    assert shown.notice == "系统升级 暂停办理" and shown.notice_until_mono == 700.0
    assert render_lines(shown, 24)[1] == "通知:系统升级 暂停办理"
    assert expire_notice(shown, 699.9) is shown
    assert expire_notice(shown, 700.0).notice is None
    cleared = apply_command(shown, {"cmd": "sign_text", "window": 3, "text": ""}, now_mono=200.0)
    assert cleared.notice is None
    default = apply_command(CONTENT, {"cmd": "sign_text", "window": "3", "text": "x"}, now_mono=0)
    assert default.notice_until_mono == 600


@pytest.mark.parametrize(
    "cmd, field",
    [
        ({"cmd": "reboot", "window": "3", "text": "x"}, "cmd"),
        ({"cmd": "sign_text", "window": "4", "text": "x"}, "window"),
        ({"cmd": "sign_text", "window": True, "text": "x"}, "window"),
        ({"cmd": "sign_text", "window": "3", "text": 5}, "text"),
        ({"cmd": "sign_text", "window": "3", "text": "长" * 201}, "text"),
        ({"cmd": "sign_text", "window": "3", "text": "x", "seconds": 0}, "seconds"),
        ({"cmd": "sign_text", "window": "3", "text": "x", "seconds": "60"}, "seconds"),
        ({"cmd": "sign_text", "window": "3", "text": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_commands_name_the_field(cmd, field):
    with pytest.raises(SignCommandError, match=field):
        apply_command(CONTENT, cmd, now_mono=0)
