"""JSON helpers shared by the hub's API modules: one error shape, one way to read a body.

`read_json` is the only way a hub handler reads a JSON body: whatever the client sends (an
unknown or non-text charset, bytes that are not in that charset, JSON nested past the
interpreter's recursion limit, an integer of more than 4300 digits, NaN or a float beyond
double range) it answers 400 with a JSON error, never 500. `read_model` adds validation (422
naming the field)."""

from __future__ import annotations

import json
import math

from aiohttp import web
from pydantic import BaseModel, ValidationError


def dumps(o) -> str:
    """JSON with Chinese left readable."""
    return json.dumps(o, ensure_ascii=False)


def error(status: int, message: str, field: str | None = None) -> web.Response:
    """`{"error": ..., "field": ...}` with the given status."""
    return web.json_response({"error": message, **({"field": field} if field else {})}, status=status, dumps=dumps)


def raise_error(cls: type[web.HTTPException], message: str, field: str | None = None):
    """Raise an aiohttp HTTP exception with the same JSON body."""
    body = {"error": message, **({"field": field} if field else {})}
    raise cls(text=dumps(body), content_type="application/json")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def loads(text: str):
    """json.loads without NaN/Infinity and without floats that overflow to infinity."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


async def read_json(request: web.Request):
    """The body as JSON; 400 for anything that is not (see module doc); 413 (aiohttp's) beyond
    the app's client_max_size."""
    body = await request.read()
    charset = request.charset or "utf-8"
    try:
        text = body.decode(charset)
    except LookupError:  # unknown charset, or a codec that is not text (rot13, hex)
        raise_error(web.HTTPBadRequest, f"不支持的字符集 (unsupported charset): {charset[:60]!r}")
    except ValueError as exc:  # UnicodeDecodeError and other codec errors
        raise_error(
            web.HTTPBadRequest,
            f"请求体不是有效的 {charset[:60]} 文本 (body is not valid {charset[:60]}): {str(exc)[:200]}",
        )
    try:
        return loads(text)
    except RecursionError:
        raise_error(web.HTTPBadRequest, "请求体嵌套过深 (malformed JSON: nested too deeply)")
    except ValueError as exc:  # JSONDecodeError, an int of too many digits, NaN/Infinity
        raise_error(web.HTTPBadRequest, f"请求体不是有效的 JSON (malformed JSON): {str(exc)[:200]}")


async def read_object(request: web.Request) -> dict:
    """The body as a JSON object (400 for any other JSON value)."""
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise_error(
            web.HTTPBadRequest, f"请求体必须是 JSON 对象 (body must be a JSON object, got {type(raw).__name__})"
        )
    return raw


async def read_model(request: web.Request, model: type[BaseModel]):
    """The body validated as `model`: 400 for malformed JSON, 422 naming the first bad field."""
    raw = await read_object(request)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = ".".join(str(p) for p in e["loc"]) or None
        raise_error(web.HTTPUnprocessableEntity, f"字段无效 (invalid field) {field}: {str(e['msg'])[:200]}", field)
