"""Poppler (poppler-utils) and Pillow helpers: text, fonts and a page image of a PDF."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def _write(pdf: bytes, tmp: Path, name: str = "doc.pdf") -> Path:
    p = tmp / name
    p.write_bytes(pdf)
    return p


def text(pdf: bytes, tmp: Path, *, layout: bool = False) -> str:
    """pdftotext output."""
    p = _write(pdf, tmp)
    args = ["pdftotext", "-enc", "UTF-8"] + (["-layout"] if layout else []) + [str(p), "-"]
    return subprocess.run(args, check=True, capture_output=True).stdout.decode("utf-8")


def page_texts(pdf: bytes, tmp: Path) -> list[str]:
    """Text of each page (pdftotext puts a form feed between pages), whitespace removed."""
    return [re.sub(r"\s+", "", t) for t in text(pdf, tmp).split("\f")[: pages(pdf, tmp)]]


def flat(pdf: bytes, tmp: Path) -> str:
    """All text with whitespace removed (lines are wrapped anywhere in CJK text)."""
    return re.sub(r"\s+", "", text(pdf, tmp))


def fonts(pdf: bytes, tmp: Path) -> list[dict]:
    """pdffonts rows as dicts: name, type, emb, sub, uni."""
    p = _write(pdf, tmp)
    out = subprocess.run(["pdffonts", str(p)], check=True, capture_output=True).stdout.decode()
    rows = []
    for line in out.splitlines()[2:]:
        parts = line.split()
        # name type... encoding emb sub uni object ID: the last five columns are fixed
        emb, sub, uni = parts[-5], parts[-4], parts[-3]
        rows.append({"name": parts[0], "type": " ".join(parts[1:-6]), "emb": emb, "sub": sub, "uni": uni})
    return rows


def pages(pdf: bytes, tmp: Path) -> int:
    p = _write(pdf, tmp)
    out = subprocess.run(["pdfinfo", str(p)], check=True, capture_output=True).stdout.decode()
    return int(re.search(r"^Pages:\s+(\d+)", out, re.M).group(1))


def page_png(pdf: bytes, tmp: Path, page: int = 1, dpi: int = 50) -> Path:
    """pdftoppm -png -r DPI of one page; returns the PNG path."""
    p = _write(pdf, tmp)
    prefix = tmp / f"page{page}"
    subprocess.run(
        ["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile", str(p), str(prefix)],
        check=True,
        capture_output=True,
    )
    return prefix.with_suffix(".png")


def ink(png: Path) -> tuple[float, int]:
    """(share of non-white pixels, count of clearly red pixels) of a PNG."""
    from PIL import Image

    with Image.open(png) as im:
        data = im.convert("RGB").tobytes()
    px = [data[i : i + 3] for i in range(0, len(data), 3)]
    dark = sum(1 for r, g, b in px if min(r, g, b) < 200)
    red = sum(1 for r, g, b in px if r > 150 and g < 90 and b < 90)
    return dark / len(px), red
