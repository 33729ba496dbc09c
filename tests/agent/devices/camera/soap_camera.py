"""A local ONVIF SOAP responder: an aiohttp server on 127.0.0.1 that answers like a camera.

It replays the payloads in payloads/ (modelled on a Hikvision DS-2CD2T47G2-L) and checks
WS-Security like a camera does: the UsernameToken digest
``Base64(SHA-1(nonce + Created + password))`` and ``Created`` within `tolerance_s` of the
camera's own clock, which runs `skew_s` seconds off ours. GetSystemDateAndTime needs no
credentials (ONVIF allows it before authentication, which is how clients measure the skew).
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template

from aiohttp import web

PAYLOADS = Path(__file__).parent / "payloads"
SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PATHS = ("/onvif/device_service", "/onvif/Media", "/onvif/Events", "/onvif/Imaging")
NO_AUTH = {"GetSystemDateAndTime"}


def payload(name: str, **values) -> str:
    """A payload file with $placeholders filled in."""
    return Template((PAYLOADS / f"{name}.xml").read_text(encoding="utf-8")).substitute(values)


@dataclass
class SoapCamera:
    """The responder; `start()` returns its base URL (http://127.0.0.1:PORT)."""

    user: str = "admin"
    password: str = "Hik12345"
    skew_s: float = 0.0  # camera clock minus real time
    tolerance_s: float = 5.0  # how far Created may be from the camera clock
    get_services: bool = True  # False: an old camera without GetServices
    requests: list[tuple[str, bool]] = field(default_factory=list)  # (operation, authorized)
    base: str = ""
    _runner: web.AppRunner | None = None

    def camera_now(self) -> datetime:
        """The camera's idea of the current UTC time."""
        return datetime.now(UTC) + timedelta(seconds=self.skew_s)

    def check_token(self, env: ET.Element) -> bool:
        """True when the envelope carries a valid, fresh UsernameToken for our user."""
        tok = env.find(f".//{{{WSSE_NS}}}UsernameToken")
        if tok is None:
            return False
        user = tok.findtext(f"{{{WSSE_NS}}}Username")
        pw = tok.find(f"{{{WSSE_NS}}}Password")
        nonce = tok.findtext(f"{{{WSSE_NS}}}Nonce")
        created = tok.findtext(f"{{{WSU_NS}}}Created")
        if user != self.user or pw is None or not nonce or not created:
            return False
        digest = base64.b64encode(
            hashlib.sha1(base64.b64decode(nonce) + created.encode() + self.password.encode()).digest()
        ).decode()
        if pw.text != digest:
            return False
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        return abs((when - self.camera_now()).total_seconds()) <= self.tolerance_s

    def answer(self, op: str, env: ET.Element | None = None) -> str | None:
        """The reply payload for an operation, or None when not supported."""
        now, local = self.camera_now(), self.camera_now() + timedelta(hours=8)
        values = {"base": self.base, "host": "127.0.0.1"}
        if op == "GetSystemDateAndTime":
            values.update(
                year=now.year,
                month=now.month,
                day=now.day,
                hour=now.hour,
                minute=now.minute,
                second=now.second,
                local_year=local.year,
                local_month=local.month,
                local_day=local.day,
                local_hour=local.hour,
            )
        if op == "GetStreamUri":
            token = next((e.text for e in env.iter() if e.tag.endswith("}ProfileToken")), "")
            values.update(channel="102" if token == "Profile_2" else "101", profile=token)
        if op == "GetServices" and not self.get_services:
            return None
        try:
            return payload(op, **values)
        except FileNotFoundError:
            return None

    async def handle(self, request: web.Request) -> web.Response:
        """One SOAP request."""
        body = await request.read()
        env = ET.fromstring(body)
        soap_body = env.find(f"{{{SOAP_NS}}}Body")
        op = soap_body[0].tag.rsplit("}", 1)[-1] if soap_body is not None and len(soap_body) else ""
        ok = op in NO_AUTH or self.check_token(env)
        self.requests.append((op, ok))
        if not ok:
            return self._xml(payload("NotAuthorized"), 400)
        reply = self.answer(op, env)
        if reply is None:
            return self._xml(payload("ActionNotSupported"), 400)
        return self._xml(reply, 200)

    @staticmethod
    def _xml(text: str, status: int) -> web.Response:
        return web.Response(body=text.encode(), status=status, content_type="application/soap+xml", charset="utf-8")

    async def start(self) -> str:
        """Listen on an ephemeral 127.0.0.1 port."""
        app = web.Application()
        for p in PATHS:
            app.router.add_post(p, self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        return self.base

    async def stop(self) -> None:
        """Shut down."""
        if self._runner:
            await self._runner.cleanup()

    def ops(self) -> list[str]:
        """Operations received, in order."""
        return [op for op, _ in self.requests]
