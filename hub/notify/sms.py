"""HTTP SMS gateway (短信平台接口): request built from config, success read from the answer.

Most Chinese SMS platforms take one HTTP request per message (JSON or form fields such as
mobile/content/sign plus an account key) and answer JSON with a result code and a message id.
`build_request` and `parse_response` are pure; `SmsGateway` is the aiohttp shell around them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from hub.notify.channels import DeliveryError
from hub.notify.config import SmsGatewayConfig
from hub.notify.outbox import Outgoing
from hub.notify.policy import is_permanent_http


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def build_request(cfg: SmsGatewayConfig, msg: Outgoing) -> tuple[str, URL, dict[str, str], bytes | None]:
    """(method, url, headers, body) for one message."""
    values = {
        "to": msg.to,
        "text": msg.text,
        "id": str(msg.id),
        "dedupe_key": msg.dedupe_key,
        "secret": cfg.secret_value(),
    }
    fields = _fill(cfg.fields, values)
    headers: dict[str, str] = {}
    url, body = cfg.url.format_map(values), None
    if cfg.body == "json":
        headers["Content-Type"] = "application/json; charset=utf-8"
        body = json.dumps(fields, ensure_ascii=False).encode("utf-8")
    elif cfg.body == "form":
        headers["Content-Type"] = f"application/x-www-form-urlencoded; charset={cfg.charset}"
        body = urlencode({k: "" if v is None else str(v) for k, v in fields.items()}, encoding=cfg.charset).encode(
            "ascii"
        )
    else:
        query = urlencode({k: "" if v is None else str(v) for k, v in fields.items()}, encoding=cfg.charset)
        url += ("&" if "?" in url else "?") + query
    headers.update(_fill(cfg.headers, values))
    return cfg.method, URL(url, encoded=True), headers, body


def dig(obj: Any, path: str) -> Any:
    """Value at a dotted path ('data.msgid', 'result.0.sid'); None when absent."""
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def _as_text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def parse_response(cfg: SmsGatewayConfig, status: int, body: str) -> str | None:
    """The provider message id of an accepted message; DeliveryError when not accepted."""
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}: {body[:200]}", permanent=is_permanent_http(status))
    if not (cfg.success_field or cfg.message_id_field):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        raise DeliveryError(f"gateway answer is not JSON: {body[:200]!r}") from None
    if cfg.success_field:
        got = dig(data, cfg.success_field)
        if got is None or _as_text(got) not in {_as_text(v) for v in cfg.success_values}:
            detail = dig(data, cfg.error_field) if cfg.error_field else None
            raise DeliveryError(
                f"gateway refused: {cfg.success_field}={got!r}"
                + (f" ({detail})" if detail is not None else f"; answer {body[:200]}")
            )
    mid = dig(data, cfg.message_id_field) if cfg.message_id_field else None
    return None if mid is None else str(mid)


class SmsGateway:
    """Sends SMS through the configured HTTP gateway with aiohttp (one session per event loop)."""

    def __init__(self, cfg: SmsGatewayConfig):
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout_s, connect=cfg.connect_timeout_s)

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def send(self, msg: Outgoing) -> str | None:
        """POST/GET one message; returns the provider message id."""
        method, url, headers, body = build_request(self.cfg, msg)
        try:
            async with self._client().request(method, url, headers=headers, data=body) as resp:
                raw = await resp.read()
                text = raw.decode(resp.charset or "utf-8", errors="replace")
                return parse_response(self.cfg, resp.status, text)
        except TimeoutError:
            raise DeliveryError(f"gateway timed out (limit {self.cfg.timeout_s:g} s)") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"gateway unreachable: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
