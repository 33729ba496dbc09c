"""GET /api/sites/{code}/signs/{n}.png draws what a site says its sign shows: bounded by what a
real hall sign can show, however large the heartbeat, and right for a normal sign.

A real Hub (provisioned directory; its store on SQLite, then PostgreSQL) and its aiohttp app; the
image is decoded with Pillow."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp
import pytest
from PIL import Image

from hub.api_devices import (
    LED_ON,
    SIGN_FONT_PX,
    SIGN_MAX_CELLS,
    SIGN_MAX_LINES,
    SIGN_SCALE,
    clamp_sign_lines,
    render_sign_png,
)
from iobase.sqlite import transaction
from tests.hub.hubapp import close, provisioned_hub, served

MAX_W = SIGN_MAX_CELLS * 8 * SIGN_SCALE
MAX_H = SIGN_MAX_LINES * SIGN_FONT_PX * SIGN_SCALE


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=("S01",), store_url=store_url)
    yield h
    close(h)


def _heartbeat(hub, devices: dict) -> None:
    body = {"at": "2026-11-20T10:00:00+08:00", "clock": "ntp", "devices": devices}
    with transaction(hub.conn):
        hub.conn.execute("INSERT INTO sites(code, name) VALUES ('S01', 'S01') ON CONFLICT DO NOTHING")
        hub.conn.execute("UPDATE sites SET heartbeat_json=? WHERE code='S01'", (json.dumps(body, ensure_ascii=False),))


async def _get_png(url, token, window):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/api/sites/S01/signs/{window}.png", headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, r.headers.get("Content-Type"), await r.read()


def test_hostile_heartbeat_cannot_make_a_huge_image(hub):
    hostile = "\n".join(["国" * 1000] * 3000)  # 3000 lines of 1000 wide characters (3 MB of text)
    _heartbeat(hub, {"sign-lines-1": hostile, "sign-lines-2": "\n" * 100_000, "sign-lines-3": "a\x00\x1b[2J" * 9999})

    async def go():
        async with served(hub) as (url, _app):
            for window in ("1", "2", "3"):
                st, ctype, png = await _get_png(url, hub.cfg.api.admin_token, window)
                assert st == 200 and ctype == "image/png"
                img = Image.open(io.BytesIO(png))
                assert img.width <= MAX_W and img.height <= MAX_H, (window, img.size)
            st, _, _ = await _get_png(url, hub.cfg.api.admin_token, "9")
            assert st == 404  # nothing reported for window 9
            st, _, _ = await _get_png(url, hub.cfg.api.admin_token, "1%0A")
            assert st == 404  # window names are fullmatched

    asyncio.run(go())
    lines = clamp_sign_lines(hostile)
    assert len(lines) == SIGN_MAX_LINES and all(len(line) * 2 <= SIGN_MAX_CELLS for line in lines)


def test_normal_sign_is_drawn_at_its_size(hub):
    text = "1号窗口 当班:李四\n排水许可 10日 免费\n今日受理3件 办结2件"  # what a 192-LED sign shows
    _heartbeat(hub, {"sign-lines-1": text, "keypad-1": "ok"})

    async def go():
        async with served(hub) as (url, _app):
            return await _get_png(url, hub.cfg.api.admin_token, "1")

    st, _, png = asyncio.run(go())
    assert st == 200
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == (192 * SIGN_SCALE, 3 * SIGN_FONT_PX * SIGN_SCALE)  # 24 cells wide, three lines
    lit = [
        sum(1 for x in range(img.width) for y in range(row * 48, row * 48 + 48) if img.getpixel((x, y)) == LED_ON)
        for row in range(3)
    ]
    assert all(n > 200 for n in lit), lit  # every line has its characters lit
    # the right half of line 3 ("今日受理3件 办结2件" is 20 cells of 24) is dark
    assert not any(
        img.getpixel((x, y)) == LED_ON for x in range(21 * 8 * SIGN_SCALE, img.width) for y in range(96, 144)
    )


def test_render_is_bounded_for_any_caller():
    img = Image.open(io.BytesIO(render_sign_png(["国" * 1000] * 10_000)))
    assert img.size == (MAX_W, MAX_H)


def test_hub_does_not_import_the_agents_devices():
    import subprocess
    import sys

    code = (
        "import sys, hub.api_devices, hub.api, hub.app; "
        "bad = sorted(m for m in sys.modules if m.startswith('agent.devices')); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
