"""Find a CJK font on this machine: embedded (as a subset) in the PDF documents, drawn on sign images.

Nothing is downloaded: the font comes from a Debian package. Order of search:
1. JIANCHA_CJK_FONT=/path/to/font.ttc (optionally `#N` to choose face N of a collection);
   when set it must exist — no silent fallback.
2. Known files in the standard font directories, best first:
   AR PL UMing (fonts-arphic-uming, a 明体/宋体 serif with TrueType outlines — the project's
   declared dependency), Noto Serif CJK (fonts-noto-cjk), WenQuanYi Zen Hei / Micro Hei
   (fonts-wqy-zenhei / fonts-wqy-microhei), Noto Sans CJK (fonts-noto-cjk), Droid Sans Fallback.
In a font collection (.ttc) the Simplified Chinese face (family ending in SC / CN) is chosen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ENV_VAR = "JIANCHA_CJK_FONT"
APT_PACKAGE = "fonts-arphic-uming"

# (file name, Debian package), best first
CANDIDATES: tuple[tuple[str, str], ...] = (
    ("uming.ttc", "fonts-arphic-uming"),
    ("NotoSerifCJK-Regular.ttc", "fonts-noto-cjk"),
    ("wqy-zenhei.ttc", "fonts-wqy-zenhei"),
    ("wqy-microhei.ttc", "fonts-wqy-microhei"),
    ("NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),
    ("DroidSansFallbackFull.ttf", "fonts-droid-fallback"),
)


class FontNotFoundError(RuntimeError):
    """No usable CJK font: the message says which Debian package to install."""


@dataclass(frozen=True)
class FontSpec:
    path: Path
    index: int  # face number inside a .ttc collection (0 for a single font)
    family: str  # the face's family name, e.g. "AR PL UMing CN"
    package: str = ""  # Debian package it normally comes from ("" when set by JIANCHA_CJK_FONT)


def font_dirs() -> list[Path]:
    """Standard font directories (XDG data dirs, then the user's)."""
    roots = [
        Path(p) / "fonts" for p in (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":") if p
    ]
    for extra in ("/usr/share/fonts", "/usr/local/share/fonts"):
        if Path(extra) not in roots:
            roots.append(Path(extra))
    home = Path.home()
    roots += [home / ".local/share/fonts", home / ".fonts"]
    return roots


def _faces(path: Path) -> list[tuple[str, bool]]:
    """(family name, usable outlines) of each face in a font file."""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            fonts = TTCollection(str(path), lazy=True).fonts
        else:
            fonts = [TTFont(str(path), lazy=True)]
        return [(f["name"].getDebugName(1) or "", "glyf" in f or "CFF " in f) for f in fonts]
    except (TTLibError, OSError, KeyError) as e:
        raise FontNotFoundError(f"cannot read font {path}: {e}") from e


def _pick_face(path: Path) -> tuple[int, str]:
    faces = _faces(path)
    if not faces:
        raise FontNotFoundError(f"font file {path} has no faces")
    for i, (family, ok) in enumerate(faces):
        if ok and family.split()[-1:] in (["SC"], ["CN"]):
            return i, family
    for i, (family, ok) in enumerate(faces):
        if ok:
            return i, family
    raise FontNotFoundError(f"font file {path} has no TrueType or CFF outlines")


def _from_env(value: str) -> FontSpec:
    path_s, _, idx_s = value.partition("#")
    path = Path(path_s).expanduser()
    if not path.is_file():
        raise FontNotFoundError(f"{ENV_VAR}={value!r}: no such font file")
    if idx_s:
        try:
            index = int(idx_s)
        except ValueError:
            raise FontNotFoundError(f"{ENV_VAR}={value!r}: face number after '#' must be an integer") from None
        faces = _faces(path)
        if not 0 <= index < len(faces):
            raise FontNotFoundError(f"{ENV_VAR}={value!r}: the file has faces 0..{len(faces) - 1}")
        return FontSpec(path, index, faces[index][0])
    index, family = _pick_face(path)
    return FontSpec(path, index, family)


def _search() -> list[FontSpec]:
    found: list[FontSpec] = []
    dirs = [d for d in font_dirs() if d.is_dir()]
    for fname, package in CANDIDATES:
        for d in dirs:
            hits = sorted(d.rglob(fname))
            if hits:
                index, family = _pick_face(hits[0])
                found.append(FontSpec(hits[0], index, family, package))
                break
    return found


@lru_cache(maxsize=8)
def _cached(env_value: str | None) -> tuple[FontSpec, ...]:
    if env_value:
        return (_from_env(env_value),)
    found = _search()
    if not found:
        raise FontNotFoundError(
            "no Chinese (CJK) font found to embed in the documents: install the Debian package "
            f"{APT_PACKAGE} (apt-get install {APT_PACKAGE}), or set {ENV_VAR}=/path/to/font.ttc "
            f"(TrueType or OpenType, '#N' picks face N of a collection); searched "
            + ", ".join(str(d) for d in font_dirs())
        )
    return tuple(found)


def find_cjk_fonts() -> tuple[FontSpec, ...]:
    """Usable CJK fonts, best first (just the JIANCHA_CJK_FONT one when that is set)."""
    return _cached(os.environ.get(ENV_VAR) or None)


def find_cjk_font() -> FontSpec:
    """The CJK font the documents embed; FontNotFoundError naming the apt package when none."""
    return find_cjk_fonts()[0]


def clear_cache() -> None:
    """Forget earlier look-ups (tests; after installing a font package)."""
    _cached.cache_clear()


def find_sign_font() -> FontSpec:
    """The CJK font for LED sign images (the agent's PngSign, the hub's sign preview): a sans
    (黑体) face when one is installed, since thin serif strokes vanish at 16 LED rows."""
    try:
        specs = find_cjk_fonts()
    except FontNotFoundError as exc:
        if os.environ.get(ENV_VAR):
            raise
        raise FontNotFoundError(
            "no Chinese (CJK) font found for the sign images: apt-get install fonts-wqy-zenhei (a sans face; "
            f"or fonts-noto-cjk), or set {ENV_VAR}=/path/to/font.ttc"
        ) from exc
    return next((f for f in specs if "Hei" in f.family or "Sans" in f.family), specs[0])
