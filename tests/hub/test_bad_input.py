"""Issue 8 §1, the hub's items: each bad input of the audit answers 4xx with a JSON error, against
the real app served on a free port (a real Hub, SQLite, no broker)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.hub.hubapp import close, provisioned_hub, served
from tests.hub.test_fuzz_routes import BODIES, SITE, seed

DEEP = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000, b"[" * 50_000]


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", store_url=store_url)
    h.link.publish = lambda *a, **k: None
    yield h
    close(h)


def _requests(hub, reqs):
    """[(status, body text)] for each (method, path, body, headers) sent as admin unless headers say."""

    async def go():
        out = []
        async with served(hub) as (url, _app), aiohttp.ClientSession() as s:
            for method, path, body, headers in reqs:
                h = {"Authorization": f"Bearer {hub.cfg.api.admin_token}", **headers}
                async with s.request(method, url + path, data=body, headers=h, allow_redirects=False) as r:
                    out.append((r.status, await r.text()))
        return out

    return asyncio.run(go())


def _json_routes(tid: int) -> dict[str, dict]:
    return {
        f"/api/tickets/{tid}/reply": BODIES["/api/tickets/{id:\\d{1,18}}/reply"],
        f"/api/tickets/{tid}/review": BODIES["/api/tickets/{id:\\d{1,18}}/review"],
        "/api/cases/S01-20261120-0001/tickets": BODIES["/api/cases/{case_no:[^{}/]+}/tickets"],
        "/api/sites/S01/sign": BODIES[SITE + "/sign"],
        "/api/sites/S01/clips": BODIES[SITE + "/clips"],
        "/api/calendar": BODIES["/api/calendar"],
    }


def test_deeply_nested_json_is_400_on_every_json_route(hub):
    routes = _json_routes(seed(hub))
    got = _requests(hub, [("POST", p, b, {"Content-Type": "application/json"}) for p in routes for b in DEEP])
    for (path, body), (status, text) in zip([(p, b) for p in routes for b in DEEP], got):
        assert status == 400 and "nested too deeply" in json.loads(text)["error"], (path, body[:10], status, text)


def test_unknown_charset_is_400_on_every_json_route_and_login(hub):
    routes = _json_routes(seed(hub))
    reqs = [
        ("POST", p, json.dumps(b).encode(), {"Content-Type": f"application/json; charset={cs}"})
        for p, b in routes.items()
        for cs in ("klingon", "rot13")
    ]
    reqs += [
        ("POST", "/login", b"token=x", {"Content-Type": f"application/x-www-form-urlencoded; charset={cs}"})
        for cs in ("klingon", "rot13")
    ]
    for req, (status, text) in zip(reqs, _requests(hub, reqs)):
        assert status == 400, (req, status, text)
        assert json.loads(text)["error"], text


def test_huge_offset_lists_nothing(hub):
    got = _requests(
        hub,
        [
            ("GET", "/api/cases?offset=99999999999999999999", None, {}),
            ("GET", "/api/cases?offset=99999999999999999999&limit=99999999999999999999", None, {}),
            ("GET", "/api/cases?offset=" + "9" * 5000, None, {}),
        ],
    )
    assert [s for s, _ in got] == [200, 200, 400], got
    assert json.loads(got[0][1]) == {"total": 0, "cases": []}


@pytest.mark.parametrize("field", ["start_ms", "end_ms"])
@pytest.mark.parametrize("value", [2**63, 2**64, 2**64 + 60_000, 10**30])
def test_clip_times_beyond_any_integer_column_are_422(hub, field, value):
    seed(hub)
    body = {**BODIES[SITE + "/clips"], field: value}
    if field == "start_ms":
        body["end_ms"] = value + 60_000
    [(status, text)] = _requests(
        hub, [("POST", "/api/sites/S01/clips", json.dumps(body).encode(), {"Content-Type": "application/json"})]
    )
    assert status == 422 and json.loads(text)["field"] in ("start_ms", "end_ms"), text
    assert hub.reader.execute("SELECT count(*) FROM clips").fetchone()[0] == 0


@pytest.mark.parametrize(
    "body, ctype",
    [
        (b"token=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"token=%ff%fe", "application/x-www-form-urlencoded"),
        (b"--xx\r\nbogus\r\n", "multipart/form-data; boundary=xx"),
        (b"garbage", "multipart/form-data"),
        (
            b'--xx\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\xfe\r\n--xx--\r\n',
            "multipart/form-data; boundary=xx",
        ),
    ],
)
def test_login_with_a_broken_form_is_4xx(hub, body, ctype):
    [(status, text)] = _requests(hub, [("POST", "/login", body, {"Content-Type": ctype, "Authorization": ""})])
    assert status in (400, 403), (status, text)  # 403: a form that parsed, without the login page's CSRF token
    if status == 403:
        assert "CSRF" in json.loads(text)["error"]
        return
    assert "malformed login form" in json.loads(text)["error"]


def test_login_still_works(hub):
    from tests.hub.accounts_helpers import http_login, make_user

    make_user(hub, "zhang", "supervisor")

    async def go():
        async with served(hub) as (url, _app), aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            r = await http_login(s, url, "zhang")
            return r.status

    assert asyncio.run(go()) == 302


@pytest.mark.parametrize("name", ["a" * 5000, "a" * 256, "x/" + "b" * 300, "%00"])
def test_static_names_no_file_system_holds_are_404(hub, name):
    [(status, text)] = _requests(
        hub,
        [
            ("GET", "/static/" + name, None, {}),
        ],
    )
    assert status == 404, (status, text)
    [(status, _)] = _requests(hub, [("GET", "/static/style.css", None, {})])
    assert status == 200


def test_an_unexpected_error_is_a_json_500_without_traceback(caplog):
    """The last line of defence: a bug answers JSON, the traceback goes to the log only."""
    from aiohttp.test_utils import make_mocked_request

    from hub.api import errors_middleware

    async def broken(request):
        raise RuntimeError("secret detail")

    resp = asyncio.run(errors_middleware(make_mocked_request("GET", "/api/cases"), broken))
    assert resp.status == 500 and resp.content_type == "application/json"
    text = resp.text
    assert "internal error" in json.loads(text)["error"]
    assert "secret detail" not in text and "Traceback" not in text
    assert "secret detail" in caplog.text  # the operator finds it in the log
