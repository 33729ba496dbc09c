"""A fake SMS platform on 127.0.0.1: records every request and misbehaves on demand.

It stands for the far side of the network (a third-party HTTP SMS API), so faking it is
allowed; everything on our side of the wire is real.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl

from aiohttp import web


class FakeGateway:
    """`fail_next` answers HTTP `fail_status`; `error_next` answers code≠0 JSON; `delay_s` stalls."""

    def __init__(self):
        self.received: list[dict] = []
        self.fail_next = 0
        self.fail_status = 500
        self.error_next = 0
        self.always_error = False
        self.delay_s = 0.0
        self.non_json = False
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        charset = ctype.partition("charset=")[2] or "utf-8"
        rec = {
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers),
            "raw": raw,
            "content_type": ctype,
            "json": None,
            "form": None,
            "query": dict(parse_qsl(request.raw_path.partition("?")[2], encoding=charset)),
        }
        if ctype.startswith("application/json"):
            rec["json"] = json.loads(raw.decode("utf-8"))
        elif ctype.startswith("application/x-www-form-urlencoded"):
            rec["form"] = dict(parse_qsl(raw.decode("ascii"), encoding=charset))
        self.received.append(rec)
        if self.delay_s:
            try:
                await asyncio.wait_for(self._release.wait(), self.delay_s)
            except TimeoutError:
                pass
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=self.fail_status, text="gateway busy")
        if self.non_json:
            return web.Response(text="<html>OK</html>")
        if self.error_next or self.always_error:
            self.error_next = max(0, self.error_next - 1)
            return web.json_response({"code": 40001, "msg": "余额不足"})
        return web.json_response({"code": 0, "msg": "ok", "data": {"msgid": f"M{len(self.received)}"}})

    def texts(self) -> list[str]:
        """The message texts that arrived, whatever the encoding."""
        out = []
        for r in self.received:
            fields = r["json"] or r["form"] or r["query"]
            out.append(fields.get("content", ""))
        return out

    async def start(self) -> FakeGateway:
        app = web.Application()
        app.router.add_route("*", "/sms/send", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/sms/send"
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
