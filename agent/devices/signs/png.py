"""PngSign: renders what the sign shows to PNG (Pillow + a CJK font) for tests, docs and the demo.

Each area becomes ``sign-area<ID>.png`` in the output folder: its pages stacked top to bottom,
drawn at the sign's LED resolution without anti-aliasing (as a 1-bit LED card shows them),
then enlarged so each LED is a dot. Pillow is imported lazily.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.devices.config import SignArea, SignConfig
from agent.devices.signs.base import AreaSign, Pages
from iobase.fonts import FontNotFoundError, find_sign_font

LED_ON = (255, 60, 30)  # the common red single-colour hall sign
LED_OFF = (40, 8, 8)
GAP = (90, 90, 90)  # line between pages


FontMissing = FontNotFoundError  # no CJK font: the message names the apt package and JIANCHA_CJK_FONT


def find_cjk_font() -> Path:
    """The CJK font file to draw with (iobase.fonts: $JIANCHA_CJK_FONT, else a sans face installed)."""
    return find_sign_font().path


def load_font(path: Path, size: int) -> Any:
    """The font at `size` px; in a collection, the Simplified Chinese face when there is one."""
    from PIL import ImageFont  # lazy

    first = ImageFont.truetype(str(path), size, index=0)
    if str(path).lower().endswith(".ttc"):
        for index in range(1, 10):
            try:
                face = ImageFont.truetype(str(path), size, index=index)
            except OSError:
                break
            if face.getname()[0].endswith(" SC"):
                return face
    return first


def fit_font(path: Path, font_px: int) -> tuple[Any, int]:
    """(font, y offset) so a Chinese character fills at most `font_px` rows from a row's top.

    Outline fonts at size N draw CJK glyphs a row or two taller than N, which would clip on a
    16-row LED line; take the largest size that fits and shift it to the row's top.
    """
    for size in range(font_px, max(6, font_px - 6), -1):
        font = load_font(path, size)
        top, bottom = font.getbbox("国")[1::2]
        if bottom - top <= font_px:
            return font, -top
    return font, -top


def render_page(page: tuple[str, ...], width: int, height: int, font: Any, font_px: int, y_offset: int = 0) -> Any:
    """One page at LED resolution, 1 bit per LED (mode '1')."""
    from PIL import Image, ImageDraw

    image = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # no anti-aliasing: an LED is on or off
    for row, line in enumerate(page):
        draw.text((0, row * font_px + y_offset), line, font=font, fill=1)
    return image


def render_pages_png(
    pages: Pages, width: int, height: int, font: Any, font_px: int, scale: int = 4, y_offset: int = 0
) -> Any:
    """All pages stacked, each LED drawn as a `scale`-pixel dot; returns a PIL image."""
    from PIL import Image

    step = height * scale + scale
    out = Image.new("RGB", (width * scale, max(1, len(pages)) * step - scale), GAP)
    for i, page in enumerate(pages):
        leds = render_page(page, width, height, font, font_px, y_offset)
        panel = Image.new("RGB", (width * scale, height * scale), LED_OFF)
        lit = leds.resize((width * scale, height * scale), Image.NEAREST)
        panel.paste(LED_ON, mask=lit)
        if scale >= 3:  # dark grid between LEDs, so it reads as a dot matrix
            grid = Image.new("1", panel.size, 0)
            px = grid.load()
            for x in range(scale - 1, panel.width, scale):
                for y in range(panel.height):
                    px[x, y] = 1
            for y in range(scale - 1, panel.height, scale):
                for x in range(panel.width):
                    px[x, y] = 1
            panel.paste((0, 0, 0), mask=grid)
        out.paste(panel, (0, i * step))
    return out


class PngSign(AreaSign):
    """Sign protocol that writes one PNG per area into `out_dir` (default: config.port)."""

    def __init__(
        self,
        config: SignConfig,
        out_dir: str | Path | None = None,
        font_path: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(config, clock)
        self.out_dir = Path(out_dir if out_dir is not None else (config.port or "signs"))
        self.font_path = Path(font_path) if font_path else find_cjk_font()
        self.font, self.y_offset = fit_font(self.font_path, config.font_px)

    def path_for(self, area: SignArea) -> Path:
        """The PNG file of an area."""
        return self.out_dir / f"sign-area{area.id}.png"

    def _write(self, area: SignArea, pages: Pages, first: bool) -> None:
        image = render_pages_png(
            pages, area.width, area.height, self.font, self.config.font_px, self.config.scale, self.y_offset
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.path_for(area)
        tmp = path.with_suffix(".png.tmp")
        image.save(tmp, format="PNG")
        os.replace(tmp, path)  # readers never see half a file
