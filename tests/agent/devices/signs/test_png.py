"""PngSign: what the sign shows, as a PNG drawn with a CJK font; clear error without a font."""

from __future__ import annotations

import pytest
from PIL import Image

from agent.devices.config import SignConfig
from agent.devices.signs import SignContent, SignItem, make_sign, png


@pytest.fixture(scope="module")
def font_path():
    return png.find_cjk_font()  # bootstrap installs fonts-wqy-zenhei; a missing font fails loudly


def content(window="1", received=3):
    return SignContent(
        window,
        f"{window}号窗口",
        "李四",
        (SignItem("个体工商户设立登记", 3, "免费"), SignItem("居民身份证换领", 0, "20元", True)),
        received,
        2,
    )


def test_font_lookup(tmp_path, monkeypatch):
    from iobase import fonts

    real = png.find_cjk_font()
    monkeypatch.setenv("JIANCHA_CJK_FONT", "/nope.ttc")
    fonts.clear_cache()
    try:
        with pytest.raises(png.FontMissing, match="JIANCHA_CJK_FONT='/nope.ttc': no such font file"):
            png.find_cjk_font()
        monkeypatch.setenv("JIANCHA_CJK_FONT", str(real))
        fonts.clear_cache()
        assert png.find_cjk_font() == real
        monkeypatch.delenv("JIANCHA_CJK_FONT")
        monkeypatch.setattr(fonts, "font_dirs", lambda: [tmp_path])
        fonts.clear_cache()
        with pytest.raises(png.FontMissing, match="for the sign images: apt-get install fonts-wqy-zenhei"):
            png.find_cjk_font()
    finally:
        fonts.clear_cache()


def test_glyphs_fit_a_16_led_row(font_path):
    font, offset = png.fit_font(font_path, 16)
    page = png.render_page(("国国国",), 48, 32, font, 16, offset)
    rows = [y for y in range(32) if any(page.getpixel((x, y)) for x in range(48))]
    assert rows and min(rows) <= 1 and max(rows) < 16


def test_png_sign_writes_what_the_sign_shows(tmp_path, font_path):
    cfg = SignConfig(
        type="png", port="signs", width=192, height=32, windows=["1", "2"], min_interval_s=0, refresh_s=None, scale=4
    )
    sign = make_sign(cfg, data_dir=tmp_path)
    assert sign.out_dir == tmp_path / "signs"
    assert sign.show(content("1"), now_mono=0)
    path = tmp_path / "signs" / "sign-area0.png"
    pages = sign.pages(cfg.areas[0], 0)
    with Image.open(path) as image:
        assert image.size == (192 * 4, len(pages) * (32 * 4 + 4) - 4)
        colours = {c for _, c in image.getcolors(1 << 16)}
    assert png.LED_ON in colours and png.LED_OFF in colours
    before = path.stat().st_mtime_ns
    assert not sign.show(content("1"), now_mono=1)  # unchanged: file untouched
    assert path.stat().st_mtime_ns == before
    assert sign.show(content("2"), now_mono=2)
    assert not list((tmp_path / "signs").glob("*.tmp"))


def test_make_sign_types(tmp_path):
    assert make_sign(None) is None
    assert make_sign(SignConfig(type="none")) is None
