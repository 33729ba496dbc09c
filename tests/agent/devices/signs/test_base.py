"""AreaSign shell with FakeSign: areas, pages per window, pacing, notices, failures."""

from __future__ import annotations

import pytest

from agent.devices import Sign
from agent.devices.config import SignArea, SignConfig
from agent.devices.signs import FakeSign, SignContent, SignItem, apply_command


def content(window, staff="张三", received=0):
    return SignContent(window, f"{window}号窗口", staff, (SignItem("设立登记", 3, "免费"),), received, 0)


@pytest.fixture
def sign():
    cfg = SignConfig(type="png", width=192, height=32, windows=["1", "2"], min_interval_s=5, refresh_s=None)
    return FakeSign(cfg)


def test_is_a_sign(sign):
    assert isinstance(sign, Sign)


def test_writes_only_changes_and_respects_the_interval(sign):
    assert sign.show(content("1"), now_mono=0)
    assert not sign.show(content("1"), now_mono=1)  # same text
    assert not sign.show(content("1", received=1), now_mono=2)  # changed, but too soon
    assert not sign.flush(now_mono=4.9)
    assert sign.flush(now_mono=5)  # held-back change goes out
    assert not sign.flush(now_mono=30)
    assert sign.writes == 2 and sign.shown[0][-1][-1] == "今日受理1件 办结0件"


def test_one_area_shows_every_window_in_turn(sign):
    sign.show(content("1"), now_mono=0)
    sign.show(content("2", staff="李四"), now_mono=10)
    headers = [page[0] for page in sign.shown[0]]
    assert headers[0] == "1号窗口 当班:张三" and headers[-1] == "2号窗口 当班:李四"


def test_separate_areas_are_written_separately():
    cfg = SignConfig(
        type="png",
        width=192,
        height=64,
        windows=["1", "2"],
        min_interval_s=5,
        areas=[
            SignArea(id=0, windows=["1"], width=192, height=32),
            SignArea(id=1, windows=["2"], y=32, width=192, height=32),
        ],
    )
    sign = FakeSign(cfg)
    sign.show(content("1"), now_mono=0)
    assert sign.show(content("2"), now_mono=1)  # another area: its own pace
    assert [area for area, _ in sign.log] == [0, 1]


def test_notice_expires_on_flush(sign):
    c = apply_command(content("1"), {"cmd": "sign_text", "window": "1", "text": "停电"}, 0)
    sign.show(c, now_mono=0)
    assert sign.shown[0][0][1] == "通知:停电"
    assert not sign.flush(now_mono=599)
    assert sign.flush(now_mono=600)
    assert all("通知" not in line for page in sign.shown[0] for line in page)


def test_failure_is_retried_after_the_interval(sign, caplog):
    sign.fail_next = 1
    assert not sign.show(content("1"), now_mono=0)
    assert "not written" in caplog.text
    assert not sign.flush(now_mono=2)
    assert sign.flush(now_mono=5) and sign.writes == 1


def test_unknown_window(sign):
    with pytest.raises(KeyError, match="window '7' is not on this sign"):
        sign.show(content("7"))
