"""JSON helpers shared by the hub's API modules: one error shape, one way to read a body."""
from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel, ValidationError


def dumps(o) -> str:
    """JSON with Chinese left readable."""
    return json.dumps(o, ensure_ascii=False)


def error(status: int, message: str, field: str | None = None) -> web.Response:
    """`{"error": ..., "field": ...}` with the given status."""
    return web.json_response({"error": message, **({"field": field} if field else {})}, status=status,
                             dumps=dumps)


def raise_error(cls: type[web.HTTPException], message: str, field: str | None = None):
    """Raise an aiohttp HTTP exception with the same JSON body."""
    body = {"error": message, **({"field": field} if field else {})}
    raise cls(text=dumps(body), content_type="application/json")


async def read_model(request: web.Request, model: type[BaseModel]):
    """The body validated as `model`: 400 for malformed JSON, 422 naming the first bad field."""
    try:
        raw = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise_error(web.HTTPBadRequest, f"请求体不是有效的 JSON (malformed JSON): {exc}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = ".".join(str(p) for p in e["loc"]) or None
        raise_error(web.HTTPUnprocessableEntity, f"字段无效 (invalid field) {field}: {e['msg']}", field)
