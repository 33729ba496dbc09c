"""HTTP hardening for the agent's clerk API: cross-site refusal, security headers, time and
connection bounds.

- The API authenticates only by bearer token (no cookies, no CORS), which a browser cannot
  attach to a cross-site request. As defence in depth, state-changing requests that a browser
  marks as cross-site (a foreign ``Origin``, or ``Sec-Fetch-Site: cross-site``/``same-site``)
  are refused with 403 before the token is even looked at. Clients without those headers
  (department systems, curl) are unaffected.
- Every response carries a restrictive Content-Security-Policy (the agent serves no pages),
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer`` and ``Cache-Control: no-store`` (case views hold personal data).
- A connection must deliver each request head within `request_timeout_s` of opening (or of the
  previous answer), and a request body within `request_timeout_s` of its head: a client that
  sends half the headers or half a body and then idles is disconnected. aiohttp's server has
  no header-read deadline of its own before 3.14.
- At most `max_connections` connections are open at once; more get 503 and are closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger("jiancha.agent.http")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})  # none: typed URL, bookmark


@dataclass(frozen=True)
class HttpLimits:
    """Bounds for the API server; tests inject small ones."""

    request_timeout_s: float = 30.0  # to send a request head, and again to send its body
    max_connections: int = 64  # a Pi serves a few clerks' PCs and one department system

    @classmethod
    def from_config(cls, http) -> HttpLimits:
        """From agent.yaml's `http` section (fields optional: defaults when absent)."""
        d = cls()
        return cls(
            float(getattr(http, "request_timeout_s", d.request_timeout_s)),
            int(getattr(http, "max_connections", d.max_connections)),
        )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the security headers on every answer, errors included."""
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)


def cross_site_reason(request: web.Request) -> str | None:
    """Why a state-changing request looks cross-site to the browser that sent it, or None."""
    if request.method in SAFE_METHODS:
        return None
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in SAME_ORIGIN_FETCH:
        return f"Sec-Fetch-Site: {fetch_site[:40]}"
    origin = request.headers.get("Origin")
    if origin is not None and origin.strip().lower() != f"{request.scheme}://{request.host}".lower():
        return f"Origin: {origin[:100]}"
    return None


@web.middleware
async def origin_middleware(request: web.Request, handler):
    """403 for a state-changing request a browser sent from another site."""
    reason = cross_site_reason(request)
    if reason is not None:
        log.warning("refused cross-site %s %s (%s)", request.method, request.path, reason)
        return _error(403, f"拒绝跨站请求：请求来自其他网站 (cross-site request refused: {reason} is not this box)")
    return await handler(request)


def body_deadline_middleware(limits: HttpLimits):
    """Read the whole body (≤ client_max_size) within the deadline; 408 and close if it stalls."""

    @web.middleware
    async def read_body(request: web.Request, handler):
        if request.body_exists:
            try:
                await asyncio.wait_for(request.read(), limits.request_timeout_s)
            except TimeoutError:
                log.warning(
                    "%s %s: body not received within %.0f s; closing",
                    request.method,
                    request.path,
                    limits.request_timeout_s,
                )
                resp = _error(408, f"请求体未在 {limits.request_timeout_s:g} 秒内收到 (request body timed out)")
                resp.force_close()
                return resp
        return await handler(request)

    return read_body


@web.middleware
async def activity_middleware(request: web.Request, handler):
    """Tell the connection's guard a request is being answered (its head deadline pauses)."""
    guard = request.transport.get_protocol() if request.transport is not None else None
    if not isinstance(guard, GuardedConnection):
        return await handler(request)
    guard.enter()
    try:
        return await handler(request)
    finally:
        guard.leave()


class GuardedConnection(asyncio.Protocol):
    """aiohttp's request handler behind a deadline: outside a handler, a connection lives at
    most `request_timeout_s` (to send the next request head) and is then closed."""

    def __init__(self, inner: asyncio.Protocol, site: GuardedSite):
        self.inner, self.site = inner, site
        self.transport: asyncio.Transport | None = None
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.site.open.add(self)
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc) -> None:
        self._disarm()
        self.site.open.discard(self)
        self.inner.connection_lost(exc)

    def enter(self) -> None:
        self._busy += 1
        self._disarm()

    def leave(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self.transport is not None and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(self.site.limits.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._busy == 0 and self.transport is not None:
            log.debug("closing a connection idle or half-sent for %.0f s", self.site.limits.request_timeout_s)
            self.transport.close()


_BUSY_BODY = json.dumps(
    {"error": "连接过多，请稍后再试 (too many connections, try again later)"}, ensure_ascii=False
).encode()
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
    + b"".join(f"{k}: {v}\r\n".encode() for k, v in SECURITY_HEADERS.items())
    + f"Retry-After: 5\r\nConnection: close\r\nContent-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


class _Busy(asyncio.Protocol):
    """A connection over the limit: answered 503 at once and closed."""

    def connection_made(self, transport) -> None:
        transport.write(BUSY_RESPONSE)
        transport.close()


class GuardedSite(web.BaseSite):
    """Like aiohttp's TCPSite, with every connection guarded (see module doc)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        limits: HttpLimits,
        *,
        backlog: int = 128,
        ssl_context=None,
    ):
        super().__init__(runner, backlog=backlog, ssl_context=ssl_context)
        self.host, self.port, self.limits = host, port, limits
        self.open: set[GuardedConnection] = set()
        self.refused = 0

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host or '0.0.0.0'}:{self.port}"

    def _connection(self) -> asyncio.Protocol:
        if len(self.open) >= self.limits.max_connections:
            self.refused += 1
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warning(
                    "HTTP connections at the limit (%d); %d refused so far", self.limits.max_connections, self.refused
                )
            return _Busy()
        server = self._runner.server
        assert server is not None
        return GuardedConnection(server(), self)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection, self.host, self.port, backlog=self._backlog, reuse_address=True, ssl=self._ssl_context
        )
        if self._server.sockets:
            self.port = self._server.sockets[0].getsockname()[1]


def runner_kwargs(limits: HttpLimits) -> dict:
    """aiohttp's own knobs set to match (aiohttp ≥ 3.14 also times out idle heads itself)."""
    return {"keepalive_timeout": limits.request_timeout_s, "lingering_time": min(10.0, limits.request_timeout_s)}
