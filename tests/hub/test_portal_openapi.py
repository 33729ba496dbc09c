"""The public API's OpenAPI document (/api/public/openapi.json): every public route is in it, and
every operation's examples run against the real app (seeded with the document's example case)
and give a documented status with the documented shape."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from hub.portal_openapi import DOCUMENT
from tests.hub.hubapp import close, served
from tests.hub.portal_helpers import portal_hub, wide_limiter

OPERATIONS = [(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops]


@pytest.fixture
def hub(tmp_path, store_url):
    h = portal_hub(tmp_path / "hub", store_url)
    h.write(_seed_complaints(h))
    h.write(_close_scores(h))
    yield h
    close(h)


def _seed_complaints(hub):
    """The document's two example complaints, replied (one to reopen, one to confirm), through the
    workflow's own steps; then given the documented numbers and codes."""
    from hub import complaints as cp
    from hub.portal_openapi import (
        COMPLAINT_IN,
        EXAMPLE_COMPLAINT,
        EXAMPLE_COMPLAINT_2,
        EXAMPLE_COMPLAINT_CODE,
        EXAMPLE_COMPLAINT_CODE_2,
    )

    cfg, cal, now = hub.cfg.complaints, hub.ingest.calendar, hub.ingest.now()

    def seed(c):
        for number, code in (
            (EXAMPLE_COMPLAINT, EXAMPLE_COMPLAINT_CODE),
            (EXAMPLE_COMPLAINT_2, EXAMPLE_COMPLAINT_CODE_2),
        ):
            values, errors = cp.clean(COMPLAINT_IN)
            assert not errors, errors
            no, _code = cp.file_complaint(c, values, cfg, cal, now)
            for action, text in (("accept", ""), ("assign", ""), ("reply", "已约谈窗口人员并整改")):
                cp.act(c, no, action, "sup", text, cfg, cal, now, department="市场监督管理局")
            c.execute("UPDATE complaints SET complaint_no=?, query_code=? WHERE complaint_no=?", (number, code, no))

    return seed


def _close_scores(hub):
    """November 2026's scores closed (the /api/public/scores example publishes it)."""
    from datetime import datetime

    from hub import scores
    from hub.scores_rules import load_rules
    from protocol.calendar import CST

    def close(c):
        period, cal = scores.parse_period("2026-11"), hub.ingest.calendar
        scores.close_period(c, load_rules(), period, cal, datetime(2026, 12, 2, 9, tzinfo=CST), "sup")

    return close


def _schema(ref_or_schema: dict) -> dict:
    ref = ref_or_schema.get("$ref")
    return DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def _request(path: str, op: dict) -> tuple[str, dict, object]:
    """(url path, query, json body) from the operation's examples."""
    query = {}
    for p in op.get("parameters", []):
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", str(p["example"]))
        elif p["in"] == "query":
            query[p["name"]] = str(p["example"])
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
    return path, query, body


def test_the_document_names_every_public_api_route(hub):
    async def go():
        async with served(hub, limiter=wide_limiter()) as (_base, app):
            return {
                (r.resource.canonical, r.method.lower())
                for r in app.router.routes()
                if r.method != "HEAD" and r.resource.canonical.startswith("/api/public/")
            }

    assert asyncio.run(go()) == set(OPERATIONS)


def test_the_served_document_is_the_module_one(hub):
    async def go():
        async with served(hub, limiter=wide_limiter()) as (base, _app), aiohttp.ClientSession() as s:
            async with s.get(base + "/api/public/openapi.json") as r:
                return r.status, await r.json()

    status, doc = asyncio.run(go())
    assert status == 200 and doc["openapi"].startswith("3.") and doc["paths"].keys() == DOCUMENT["paths"].keys()


def test_every_example_runs_against_the_app(hub):
    async def go():
        got = []
        async with served(hub, limiter=wide_limiter()) as (base, _app), aiohttp.ClientSession() as s:
            for path, method in OPERATIONS:
                op = DOCUMENT["paths"][path][method]
                url, query, body = _request(path, op)
                kwargs = {"params": query, "headers": {"Origin": base}}
                if body is not None:
                    kwargs["json"] = body
                async with s.request(method.upper(), base + url, **kwargs) as r:
                    answer = await r.json()
                    got.append((path, method, r.status, answer))
        return got

    results = asyncio.run(go())
    assert len(results) == len(OPERATIONS)
    for path, method, status, answer in results:
        responses = DOCUMENT["paths"][path][method]["responses"]
        assert str(status) in responses and 200 <= status < 300, (path, method, status, answer)
        content = responses[str(status)].get("content", {}).get("application/json")
        if content is None:
            continue
        schema = _schema(content["schema"])
        missing = [k for k in schema.get("required", []) if k not in answer]
        assert not missing, (path, method, missing)
        example = content["example"]
        assert set(example) <= set(answer), (path, method, set(example) - set(answer))


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_error_example_has_the_one_error_shape(path, method):
    for status, response in DOCUMENT["paths"][path][method]["responses"].items():
        if int(status) >= 400:
            example = response["content"]["application/json"]["example"]
            assert set(example) <= {"error", "field"} and example["error"], (path, method, status)
