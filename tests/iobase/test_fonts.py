"""iobase.fonts: one CJK font lookup for the PDF documents (serif first) and the sign images (sans)."""

from __future__ import annotations

import pytest

from iobase import fonts


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.delenv(fonts.ENV_VAR, raising=False)
    fonts.clear_cache()
    yield
    fonts.clear_cache()


def test_documents_get_the_serif_face_and_signs_a_sans_face():
    # the bootstrap installs fonts-arphic-uming (明体) and fonts-wqy-zenhei (黑体)
    assert fonts.find_cjk_font().package == "fonts-arphic-uming"
    sign = fonts.find_sign_font()
    assert sign.package == "fonts-wqy-zenhei" and ("Hei" in sign.family or "Sans" in sign.family)


def test_the_override_wins_for_signs_too(monkeypatch):
    serif = fonts.find_cjk_font()
    monkeypatch.setenv(fonts.ENV_VAR, f"{serif.path}#{serif.index}")
    fonts.clear_cache()
    assert (fonts.find_sign_font().path, fonts.find_sign_font().index) == (serif.path, serif.index)
