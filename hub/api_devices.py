"""Hub API for the township boxes' devices: site page data, snapshots, sign text, clip requests."""

from __future__ import annotations

import asyncio
import io
import time
import unicodedata
from datetime import datetime
from functools import lru_cache

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.access import scope_where
from hub.clips import request_clip as record_clip_request
from hub.clips import site_clip_bytes
from hub.devices import site_detail, snapshot
from hub.httpjson import dumps, error, read_model
from hub.web_auth import actor_of
from protocol import topics
from protocol.calendar import CST
from protocol.clips import CLIP_ID_RE
from protocol.wire import encode_msg

HUB = web.AppKey("hub_dev", object)
MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
SITE_CODE = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"  # route pattern; the registry decides the rest


class SignText(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    window: str = Field(min_length=1, max_length=32)
    text: str = Field(min_length=1, max_length=200)
    seconds: int = Field(600, ge=10, le=86400)


class ClipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: str = Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")  # part of the clip id
    start_ms: int = Field(gt=0, lt=MAX_MS)  # milliseconds since 1970 before 2100: a SQLite integer
    end_ms: int = Field(gt=0, lt=MAX_MS)


def _site(request: web.Request, online: bool = False) -> str:
    code = request.match_info["code"]
    if code not in request.app[HUB].sites.active():
        raise web.HTTPNotFound(
            text=dumps({"error": f"站点不存在或已吊销 (no such active site): {code}"}), content_type="application/json"
        )
    if online:  # commands are live-only (not queued): say so instead of pretending
        row = request.app[HUB].reader.execute("SELECT online FROM sites WHERE code=?", (code,)).fetchone()
        if not row or not row[0]:
            raise web.HTTPConflict(
                text=dumps({"error": f"站点离线，命令未发送 (site {code} is offline; command not sent)"}),
                content_type="application/json",
            )
    return code


async def get_site(request: web.Request) -> web.Response:
    """One site: its name and link state (online, last seen, clock, backlog), heartbeat, device
    events, vote counts."""
    hub, code = request.app[HUB], request.match_info["code"]
    row = hub.reader.execute(
        "SELECT online, last_seen_ms, clock, acked_seq, max_seq, agent_last_seq, software, chain_breaks "
        "FROM sites WHERE code=?",
        (code,),
    ).fetchone()
    online, last_ms, clock, acked, max_seq, agent_last, software, breaks = row or (0, None, None, 0, 0, 0, None, 0)
    link = {
        "name": hub.sites.name(code) or code,
        "online": bool(online),
        "last_seen": datetime.fromtimestamp(last_ms / 1000, CST).isoformat(timespec="seconds") if last_ms else None,
        "clock": clock or "unknown",
        "acked_seq": acked or 0,
        "backlog": max(0, max(agent_last or 0, max_seq or 0) - (acked or 0)),
        "software": software,
        "chain_breaks": breaks or 0,
        "revoked": hub.sites.is_revoked(code),
    }
    return web.json_response({"code": code, **link, **site_detail(hub.reader, code)}, dumps=dumps)


async def get_snapshot(request: web.Request) -> web.Response:
    """The JPEG snapshot of a device event."""
    data = snapshot(request.app[HUB].reader, request.match_info["code"], int(request.match_info["seq"]))
    if data is None:
        return web.json_response({"error": "no snapshot"}, status=404)
    return web.Response(body=data, content_type="image/jpeg")


async def sign_image(request: web.Request) -> web.Response:
    """What a window's LED sign showed at the last heartbeat, drawn as LEDs (PNG).

    The lines come from the site, so they are clamped to what a real hall sign can show
    (SIGN_MAX_*) before anything is drawn: the image is at most
    SIGN_MAX_CELLS*8*SIGN_SCALE x SIGN_MAX_LINES*SIGN_FONT_PX*SIGN_SCALE pixels, whatever the
    heartbeat says."""
    code, window = request.match_info["code"], request.match_info["window"]
    hb = site_detail(request.app[HUB].reader, code)["heartbeat"] or {}
    devices = hb.get("devices") if isinstance(hb.get("devices"), dict) else {}
    lines = devices.get(f"sign-lines-{window}")
    if not isinstance(lines, str):
        return error(404, "该窗口尚未上报显示屏内容 (no sign content reported for that window yet)")
    png = await asyncio.to_thread(render_sign_png, clamp_sign_lines(lines))
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-cache"})


# What real hall signs have (agent/devices/signs, firmware-configs): 192 or 256 LEDs wide, 16-dot
# characters, the text wrapped by the box to width/8 cells; a window's text is a header, a
# notice, its items and the day's counts. Anything beyond these is cut, never drawn.
SIGN_FONT_PX = 16
SIGN_MIN_CELLS = 24  # 192 LEDs
SIGN_MAX_CELLS = 64  # 512 LEDs: twice the widest sign we ship
SIGN_MAX_LINES = 24
SIGN_MAX_TEXT = 64 * 1024  # characters of the heartbeat looked at, at most
SIGN_SCALE = 3  # image pixels per LED
LED_ON, LED_OFF, GRID = (255, 60, 30), (40, 8, 8), (0, 0, 0)


def _cells(ch: str) -> int:
    """Cells a character takes on the sign: two for a Chinese (wide) character, one otherwise."""
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def clamp_sign_lines(text: str) -> list[str]:
    """The sign's lines, at most SIGN_MAX_LINES of at most SIGN_MAX_CELLS cells, printable only."""
    out = []
    for raw in text[:SIGN_MAX_TEXT].split("\n", SIGN_MAX_LINES)[:SIGN_MAX_LINES]:
        line, used = [], 0
        for ch in raw[:SIGN_MAX_CELLS]:  # a character takes at least one cell
            if not ch.isprintable():
                continue
            w = _cells(ch)
            if used + w > SIGN_MAX_CELLS:
                break
            line.append(ch)
            used += w
        out.append("".join(line))
    return out or [""]


@lru_cache(maxsize=1)
def _sign_font():
    """(font, y offset): a CJK face whose characters fill at most SIGN_FONT_PX rows."""
    from PIL import ImageFont

    from iobase.fonts import find_sign_font

    spec = find_sign_font()
    for size in range(SIGN_FONT_PX, SIGN_FONT_PX - 7, -1):
        font = ImageFont.truetype(str(spec.path), size, index=spec.index)
        top, bottom = font.getbbox("国")[1::2]
        if bottom - top <= SIGN_FONT_PX:
            break
    return font, -top


def render_sign_png(lines: list[str]) -> bytes:
    """LED-style PNG of sign lines (already clamped), drawn with Pillow: 1-bit LEDs, a dark grid."""
    from PIL import Image, ImageDraw

    lines = clamp_sign_lines("\n".join(lines))  # cheap, and the bound holds for any caller
    font, y_offset = _sign_font()
    cells = min(SIGN_MAX_CELLS, max([SIGN_MIN_CELLS, *(sum(map(_cells, ln)) for ln in lines)]))
    width, height = cells * 8, SIGN_FONT_PX * len(lines)
    leds = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(leds)
    draw.fontmode = "1"  # an LED is on or off: no anti-aliasing
    for row, line in enumerate(lines):
        draw.text((0, row * SIGN_FONT_PX + y_offset), line, font=font, fill=1)
    s = SIGN_SCALE
    image = Image.new("RGB", (width * s, height * s), LED_OFF)
    image.paste(LED_ON, mask=leds.resize(image.size, Image.NEAREST))
    grid = ImageDraw.Draw(image)
    for x in range(s - 1, image.width, s):
        grid.line([(x, 0), (x, image.height - 1)], fill=GRID)
    for y in range(s - 1, image.height, s):
        grid.line([(0, y), (image.width - 1, y)], fill=GRID)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def push_sign_text(request: web.Request) -> web.Response:
    """Show a text on a window's LED sign (command to the box)."""
    code = _site(request, online=True)
    body = await read_model(request, SignText)
    request.app[HUB].link.publish(
        topics.site_cmd(code),
        encode_msg(
            {
                "cmd": "sign_text",
                "window": body.window,
                "text": body.text,
                "seconds": body.seconds,
                "ms": int(time.time() * 1000),
            }
        ),
        1,
        False,
    )
    return web.json_response({"sent": True}, status=202)


async def request_clip(request: web.Request) -> web.Response:
    """Ask the box to upload a recorded clip (resumable chunks). The request is stored first:
    the hub accepts chunks only for clips it asked that site for."""
    code = _site(request, online=True)
    body = await read_model(request, ClipRequest)
    if body.end_ms <= body.start_ms or body.end_ms - body.start_ms > 3_600_000:
        return error(
            422,
            "结束时间须晚于开始时间且不超过一小时 (end_ms must be after start_ms, at most one hour later)",
            "end_ms",
        )
    hub = request.app[HUB]
    clip_id = f"{code}-{body.camera}-{body.start_ms}"
    if not CLIP_ID_RE.fullmatch(clip_id) or len(clip_id) > 64:  # the box keeps ids of at most 64
        return error(422, f"无法生成录像编号 (cannot form a clip id from site and camera): {clip_id!r}", "camera")
    receiver = hub.ingest.clips
    cap = getattr(receiver, "site_cap_bytes", None)
    if cap is not None and site_clip_bytes(hub.reader, code, exclude=clip_id) >= cap:
        return error(
            409,
            f"站点 {code} 的录像存储已满，请先删除旧录像 (the site's clip storage is full "
            f"({cap} bytes); delete old clips first)",
        )
    now_ms = int(time.time() * 1000)
    row = await asyncio.to_thread(
        hub.write, lambda c: record_clip_request(c, code, clip_id, body.camera, body.start_ms, body.end_ms, now_ms)
    )
    if (row["camera"], row["start_ms"], row["end_ms"]) != (body.camera, body.start_ms, body.end_ms):
        return error(
            409,
            f"该录像已按不同的结束时间申请过 (clip {clip_id} was already requested with "
            f"end_ms {row['end_ms']}); delete it first",
        )
    if row["refused"]:
        return error(409, f"该录像已被拒收 (clip {clip_id} was refused: {row['refused']}); delete it first")
    hub.link.publish(
        topics.site_cmd(code),
        encode_msg(
            {"cmd": "clip", "clip_id": clip_id, "camera": body.camera, "start_ms": body.start_ms, "end_ms": body.end_ms}
        ),
        1,
        False,
    )
    return web.json_response({"clip_id": clip_id}, status=202)


async def list_clips(request: web.Request) -> web.Response:
    """Clips requested from sites and how far their upload is."""
    scoped, args = scope_where(actor_of(request), "site", None)
    cur = request.app[HUB].reader.execute(
        "SELECT clip_id, site, camera, start_ms, end_ms, requested_ms, total, "
        "received, stored_bytes, size, done, refused FROM clips "
        + (f"WHERE {scoped} " if scoped else "")
        + "ORDER BY updated_ms DESC NULLS LAST LIMIT 200",  # NULL last on both engines
        args,
    )
    cols = [c[0] for c in cur.description]
    return web.json_response([dict(zip(cols, r)) for r in cur.fetchall()], dumps=dumps)


async def get_clip(request: web.Request) -> web.StreamResponse:
    """A complete clip (MP4)."""
    path = request.app[HUB].ingest.clips.path(request.match_info["clip_id"])
    if path is None:
        return error(404, "录像尚未完整上传 (clip not (yet) complete)")
    return web.FileResponse(path, headers={"Content-Type": "video/mp4"})


async def delete_clip(request: web.Request) -> web.Response:
    """Forget a clip (request, chunks, file): frees the site's clip storage."""
    hub, clip_id = request.app[HUB], request.match_info["clip_id"]
    if not await asyncio.to_thread(hub.write, lambda c: hub.ingest.clips.delete(c, clip_id)):
        return error(404, f"录像不存在 (no such clip): {clip_id}")
    return web.json_response({"deleted": clip_id})


def add_routes(app: web.Application, hub) -> None:
    """Register the device routes."""
    app[HUB] = hub
    site = "/api/sites/{code:" + SITE_CODE + "}"  # aiohttp fullmatches route patterns
    app.router.add_get(site, get_site)
    app.router.add_get(site + "/snapshots/{seq:\\d{1,18}}.jpg", get_snapshot)
    app.router.add_post(site + "/sign", push_sign_text)
    app.router.add_get(site + "/signs/{window:[A-Za-z0-9_-]{1,32}}.png", sign_image)
    app.router.add_get("/api/clips", list_clips)
    app.router.add_get("/api/clips/{clip_id:[A-Za-z0-9._-]{1,128}}.mp4", get_clip)
    app.router.add_delete("/api/clips/{clip_id:[A-Za-z0-9._-]{1,128}}", delete_clip)
    app.router.add_post(site + "/clips", request_clip)
