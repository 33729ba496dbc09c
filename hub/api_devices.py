"""Hub API for the township boxes' devices: site page data, snapshots, sign text, clip requests."""
from __future__ import annotations

import asyncio
import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.devices import site_detail, snapshot
from hub.httpjson import dumps, read_model
from protocol import topics
from protocol.wire import encode_msg

HUB = web.AppKey("hub_dev", object)


class SignText(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    window: str = Field(min_length=1, max_length=32)
    text: str = Field(min_length=1, max_length=200)
    seconds: int = Field(600, ge=10, le=86400)


class ClipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: str = Field(min_length=1, max_length=64)
    start_ms: int = Field(gt=0)
    end_ms: int = Field(gt=0)


def _site(request: web.Request, online: bool = False) -> str:
    code = request.match_info["code"]
    if code not in request.app[HUB].sites.active():
        raise web.HTTPNotFound(text=dumps({"error": f"站点不存在或已吊销 (no such active site): {code}"}),
                               content_type="application/json")
    if online:   # commands are live-only (not queued): say so instead of pretending
        row = request.app[HUB].reader.execute("SELECT online FROM sites WHERE code=?", (code,)).fetchone()
        if not row or not row[0]:
            raise web.HTTPConflict(text=dumps({"error": f"站点离线，命令未发送 (site {code} is offline; "
                                                         f"command not sent)"}), content_type="application/json")
    return code


async def get_site(request: web.Request) -> web.Response:
    """One site: heartbeat, device events, vote counts."""
    code = request.match_info["code"]
    return web.json_response({"code": code, **site_detail(request.app[HUB].reader, code)}, dumps=dumps)


async def get_snapshot(request: web.Request) -> web.Response:
    """The JPEG snapshot of a device event."""
    data = snapshot(request.app[HUB].reader, request.match_info["code"], int(request.match_info["seq"]))
    if data is None:
        return web.json_response({"error": "no snapshot"}, status=404)
    return web.Response(body=data, content_type="image/jpeg")


async def sign_image(request: web.Request) -> web.Response:
    """What a window's LED sign showed at the last heartbeat, drawn as LEDs (PNG)."""
    code, window = request.match_info["code"], request.match_info["window"]
    hb = site_detail(request.app[HUB].reader, code)["heartbeat"] or {}
    lines = (hb.get("devices") or {}).get(f"sign-lines-{window}")
    if lines is None:
        return web.json_response({"error": "no sign content reported for that window yet"}, status=404)
    png = await asyncio.to_thread(render_sign_png, lines.split("\n"))
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-cache"})


def render_sign_png(lines: list[str], width: int = 192, font_px: int = 16) -> bytes:
    """LED-style image of sign lines (the agent's PngSign renderer, at the hub)."""
    import io

    from agent.devices.signs.png import find_cjk_font, fit_font, render_pages_png
    font, y = fit_font(find_cjk_font(), font_px)
    width = max(width, max((len(line) for line in lines), default=1) * font_px)
    image = render_pages_png((tuple(lines),), width, font_px * max(1, len(lines)), font, font_px, scale=3,
                             y_offset=y)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def push_sign_text(request: web.Request) -> web.Response:
    """Show a text on a window's LED sign (command to the box)."""
    code = _site(request, online=True)
    body = await read_model(request, SignText)
    request.app[HUB].link.publish(topics.site_cmd(code), encode_msg(
        {"cmd": "sign_text", "window": body.window, "text": body.text, "seconds": body.seconds,
         "ms": int(time.time() * 1000)}), 1, False)
    return web.json_response({"sent": True}, status=202)


async def request_clip(request: web.Request) -> web.Response:
    """Ask the box to upload a recorded clip (resumable chunks)."""
    code = _site(request, online=True)
    body = await read_model(request, ClipRequest)
    if body.end_ms <= body.start_ms or body.end_ms - body.start_ms > 3_600_000:
        return web.json_response({"error": "end_ms must be after start_ms, at most one hour later",
                                  "field": "end_ms"}, status=422)
    clip_id = f"{code}-{body.camera}-{body.start_ms}"
    request.app[HUB].link.publish(topics.site_cmd(code), encode_msg(
        {"cmd": "clip", "clip_id": clip_id, "camera": body.camera, "start_ms": body.start_ms,
         "end_ms": body.end_ms}), 1, False)
    return web.json_response({"clip_id": clip_id}, status=202)


async def list_clips(request: web.Request) -> web.Response:
    """Clips requested from sites and how far their upload is."""
    cur = request.app[HUB].reader.execute("SELECT clip_id, site, camera, start_ms, end_ms, total, received, "
                                          "size, done FROM clips ORDER BY updated_ms DESC LIMIT 200")
    cols = [c[0] for c in cur.description]
    return web.json_response([dict(zip(cols, r)) for r in cur.fetchall()], dumps=dumps)


async def get_clip(request: web.Request) -> web.StreamResponse:
    """A complete clip (MP4)."""
    path = request.app[HUB].ingest.clips.path(request.match_info["clip_id"])
    if path is None:
        return web.json_response({"error": "clip not (yet) complete"}, status=404)
    return web.FileResponse(path, headers={"Content-Type": "video/mp4"})


def add_routes(app: web.Application, hub) -> None:
    """Register the device routes."""
    app[HUB] = hub
    app.router.add_get("/api/sites/{code}", get_site)
    app.router.add_get("/api/sites/{code}/snapshots/{seq:\\d{1,18}}.jpg", get_snapshot)
    app.router.add_post("/api/sites/{code}/sign", push_sign_text)
    app.router.add_get("/api/sites/{code}/signs/{window}.png", sign_image)
    app.router.add_get("/api/clips", list_clips)
    app.router.add_get("/api/clips/{clip_id:[A-Za-z0-9._-]+}.mp4", get_clip)
    app.router.add_post("/api/sites/{code}/clips", request_clip)
