"""Hub API of the wall (监察大屏) and the site page: GET /api/wall, the live stream
GET /api/events/wall (server-sent events, hub/wall_events.py), GET /api/sites/{code}/votes.
Roles and scope: hub/access.py; what the pages show: docs/wall.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from hub.httpjson import dumps, error
from hub.votes import PeriodError, parse_period, site_votes
from hub.wall import LATE_LIMIT_MAX, change_marker, wall_data
from hub.wall_events import Stream, WallEvents
from hub.web_auth import AUTH, actor_of, resolve_actor
from protocol.calendar import CST

STATIC = Path(__file__).parent / "static"
HUB = web.AppKey("hub_wall", object)
EVENTS = web.AppKey("wall_events", WallEvents)
CACHE = web.AppKey("wall_cache", object)
CACHE_ENTRIES = 64  # distinct scopes × sizes kept
CACHE_MAX_AGE_S = 30.0  # what the change counter does not cover (a new directory, site names) shows within this


class WallCache:
    """The last wall body per (scope, size), valid while the store's change counter has not
    moved: fifty walls refetching after one change cost one computation per scope, not fifty."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_age_s: float = CACHE_MAX_AGE_S):
        self.entries, self.max_age_s = entries, max_age_s
        self.data: OrderedDict[tuple, tuple[int, str, float, bytes]] = OrderedDict()
        self.lock = threading.Lock()  # requests compute in worker threads
        self.locks: dict[tuple, asyncio.Lock] = {}  # one computation per key at a time (get_wall)

    def get(self, key: tuple, marker: int, today: str, now: float) -> bytes | None:
        """The cached body if still valid for this marker and day."""
        with self.lock:
            hit = self.data.get(key)
            if hit is None or hit[0] != marker or hit[1] != today or now - hit[2] > self.max_age_s:
                return None
            self.data.move_to_end(key)
            return hit[3]

    def put(self, key: tuple, marker: int, today: str, now: float, body: bytes) -> None:
        """Remember a body (the oldest entry goes beyond `entries`)."""
        with self.lock:
            self.data[key] = (marker, today, now, body)
            self.data.move_to_end(key)
            while len(self.data) > self.entries:
                self.data.popitem(last=False)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "200")
    try:
        n = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=dumps({"error": f"limit 应为整数 (limit must be an integer): {raw[:20]!r}"}),
            content_type="application/json",
        ) from None
    return min(max(n, 1), LATE_LIMIT_MAX)


async def get_wall(request: web.Request) -> web.Response:
    """GET /api/wall: counts by light, per site (by name) and department, late cases first."""
    hub, actor = request.app[HUB], actor_of(request)
    limit = _limit(request)
    now = hub.ingest.now()
    today = now.astimezone(CST).date().isoformat()
    key = (actor.department, actor.region, limit)

    def compute() -> bytes:
        marker = change_marker(hub.reader)
        mono = time.monotonic()
        cached = request.app[CACHE].get(key, marker, today, mono)
        if cached is not None:
            return cached
        data = wall_data(
            hub.reader,
            actor,
            now,
            hub.ingest.calendar,
            site_names=hub.sites.name,
            sites_known=sorted(hub.sites.active()),
            limit=limit,
        )
        data["version"] = marker
        body = dumps(data).encode()
        request.app[CACHE].put(key, marker, today, mono, body)
        return body

    locks = request.app[CACHE].locks
    if len(locks) > CACHE_ENTRIES and not any(lock.locked() for lock in locks.values()):
        locks.clear()  # bounded: one lock per scope and size in use
    async with locks.setdefault(key, asyncio.Lock()):  # fifty walls after one change: one computes
        body = await asyncio.to_thread(compute)
    return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-store"})


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def wall_stream(request: web.Request) -> web.StreamResponse:
    """GET /api/events/wall: text/event-stream of `change` events (the change counter's value)."""
    ev, actor = request.app[EVENTS], actor_of(request)
    if request.method == "HEAD":  # no body would ever be sent: do not hold a stream for it
        return web.Response(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    key = actor.session_hash or actor.name
    refused = ev.refuse(key)
    if refused is not None:
        status, message = refused
        resp = error(status, message)
        resp.headers["Retry-After"] = "60"
        return resp
    stream = ev.join(key, actor.session_hash)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass events through at once
        }
    )
    try:
        if ev.version is None:
            await ev.poll_once()  # the value this stream's changes are measured from
        await resp.prepare(request)
        await resp.write(b"retry: 3000\n" + _sse("hello", {"version": ev.version}))
        await _pump(request, ev, stream, resp)
    except (ConnectionResetError, ConnectionError):
        pass  # the wall went away
    finally:
        ev.leave(stream)
    return resp


async def _pump(request: web.Request, ev: WallEvents, stream: Stream, resp: web.StreamResponse) -> None:
    """Write changes (coalesced: a slow wall gets the latest, never a queue) and heartbeats."""
    while True:
        try:
            async with asyncio.timeout(ev.heartbeat_s):
                await stream.changed.wait()
        except TimeoutError:
            if not await _session_alive(request, stream):
                stream.ended = "session"
            else:
                await resp.write(b": keepalive\n\n")
                continue
        stream.changed.clear()
        if stream.ended is not None:
            await resp.write(_sse("end", {"reason": stream.ended}))
            return
        await resp.write(_sse("change", {"version": ev.version}))


async def _session_alive(request: web.Request, stream: Stream) -> bool:
    """Whether the stream's session still stands (tokens have none and always do). An open wall
    counts as use of its session: its idle clock is kept running (docs/wall.md)."""
    if stream.session_hash is None:
        return True
    from hub.sessions import COOKIE, lookup, should_touch, touch

    st = request.app[AUTH]
    sid = request.cookies.get(COOKIE, "")
    now = st.now_ms()
    session = await asyncio.to_thread(lookup, st.reader, sid, now, st.policy)
    if session is None:
        return False
    if should_touch(session.seen_ms, now):
        await asyncio.to_thread(st.hub.write, lambda c: touch(c, session.id_hash, now))
    return True


async def get_site_votes(request: web.Request) -> web.Response:
    """GET /api/sites/{code}/votes?from=YYYY-MM-DD&to=YYYY-MM-DD: votes by window and staff."""
    hub = request.app[HUB]
    today = hub.ingest.now().astimezone(CST).date()
    try:
        first, last = parse_period(request.query.get("from"), request.query.get("to"), today)
    except PeriodError as exc:
        return error(400, str(exc))
    code = request.match_info["code"]
    data = await asyncio.to_thread(site_votes, hub.reader, code, first, last)
    return web.json_response({"code": code, "name": hub.sites.name(code) or code, **data}, dumps=dumps)


WALL_PAGES = {"/": "index.html", "/site": "site.html"}


async def wall_page(request: web.Request) -> web.StreamResponse:
    """The wall (/) and the site page (/site): a visitor without a session (or token) goes to
    the login page at once instead of a page whose every call would be refused."""
    if await resolve_actor(request, request.app[AUTH]) is None:
        raise web.HTTPFound("/login")
    return web.FileResponse(STATIC / WALL_PAGES[request.path], headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application, hub) -> None:
    """Register the wall's routes and its poller (started and stopped with the app)."""
    api = hub.cfg.api
    app[HUB] = hub
    app[CACHE] = WallCache()
    app[EVENTS] = WallEvents(
        lambda: change_marker(hub.reader),
        interval_s=api.wall_poll_s,
        heartbeat_s=api.wall_heartbeat_s,
        max_clients=api.wall_streams,
        max_per_session=api.wall_streams_per_session,
    )
    for path in WALL_PAGES:
        app.router.add_get(path, wall_page)
    app.router.add_get("/api/wall", get_wall)
    app.router.add_get("/api/events/wall", wall_stream)
    app.router.add_get("/api/sites/{code:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}/votes", get_site_votes)

    async def poller(app: web.Application):
        task = asyncio.create_task(app[EVENTS].run(), name="wall-events")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def end_streams(app: web.Application) -> None:
        app[EVENTS].shutdown()

    app[AUTH].on_session_end.append(app[EVENTS].end_session)  # logout here ends its walls at once
    app.cleanup_ctx.append(poller)
    app.on_shutdown.append(end_streams)
