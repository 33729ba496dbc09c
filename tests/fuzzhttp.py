"""Walk every route of a served aiohttp app with hostile requests and collect every 5xx.

Used by tests/hub/test_fuzz_routes.py and tests/agent/test_fuzz_routes.py. Routes come from
`app.router.routes()` (a new route is fuzzed without touching the tests); path parameters are
drawn from their own route pattern (so the request reaches the handler) or from values the
test seeded (an existing case, ticket, site); bodies are random bytes, JSON nested past the
recursion limit, numbers beyond any integer column, wrong types, near-valid bodies with one
field made hostile; headers carry odd charsets, foreign origins and every kind of credential;
query strings carry huge, negative, non-UTF-8 and NUL values. Hypothesis runs derandomized,
without a database and without shrinking: the same requests on every run, bounded time.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from urllib.parse import quote

import aiohttp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yarl import URL

PARAM = re.compile(r"\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?::(?P<re>(?:[^{}]|\{[^{}]*\})+))?\}")
DEFAULT_PARAM_RE = r"[^{}/]+"  # aiohttp's pattern for a bare {name}

# --- pieces of hostile requests -----------------------------------------------------------------

BAD_CHARSETS = [
    "klingon",
    "rot13",
    "hex",
    "zlib",
    "base64",
    "uu",
    "utf-16",
    "utf-32",
    "utf-7",
    "idna",
    "punycode",
    "unicode_escape",
    "latin-1",
    "ascii",
    "cp1252",
    "gb18030",
    "",
    "utf-8\\",
]
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=xx",
            "application/octet-stream",
            "application/json; charset=",
            "*/*",
            'application/json; charset="utf-8"',
            "application/x-www-form-urlencoded; charset=klingon",
        ]
    ),
    st.builds("application/json; charset={}".format, st.sampled_from(BAD_CHARSETS)),
    st.builds(
        "application/json; charset={}".format,
        st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=12),
    ),
)
HUGE_INTS = [2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 10, -(2**63) - 1, 10**30, -(10**30)]
TIMES = [
    "2000-01-01T00:00:00+14:00",
    "2100-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-23:59",
    "2026-11-20T09:00:00",
    "2026-11-20",
    "2026-13-45T99:00:00+08:00",
    "2026-11-20T09:00:00+08:00",
    "1999-12-31T23:59:59+08:00",
    "2101-01-01T00:00:00+08:00",
    "2026-11-20T09:00:00+24:00",
    "2026-11-20T09:00:00Z",
    "0000-01-01T00:00:00Z",
]
TZ = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
)
TIME_TEXT = st.one_of(st.sampled_from(TIMES), st.datetimes(timezones=TZ).map(lambda d: d.isoformat()))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "a" * 10_000, "日" * 300, "\u202e"]),
    TIME_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=10
)
RAW_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,
    b"[" * 50_000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b"[" * 990 + b"]" * 990,
    b"1" * 5000,
    b"1e999",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b"[NaN]",
    b'{"x": 1e400}',
    b"\xff\xfe",
    b"\xff\xfe\x00\xd8",
    b"\xc3\x28",
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b'"x"',
    b"token=\xff\xfe",
    b"token=%ff%fe",
    b"token=" + b"a" * 5000,
    b"--xx\r\nbogus\r\n",
    b'--xx\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\xfe\r\n--xx--\r\n',
    b'--xx\r\nContent-Disposition: form-data; name="token"; filename="a"\r\n\r\nabc\r\n--xx--\r\n',
]
QUERY_VALUES = st.one_of(
    st.sampled_from(
        [
            "9" * 20,
            "99999999999999999999",
            "-1",
            "1" * 5000,
            "",
            "\x00",
            "日本",
            "1e3",
            " 1",
            "0x10",
            "recent",
            "urgency",
            "true",
            "1",
            "S01",
        ]
    ),
    st.text(max_size=12),
)
RAW_QUERIES = [
    "%ff%fe=1",
    "offset=%ff",
    "limit=%00",
    "a=%",
    "=&&=",
    "code=%ff&code=1",
    "offset=1" * 500,
    "x=" + "%41" * 3000,
]


@dataclass
class Target:
    """A served app and what the walk needs to know about it."""

    loop: asyncio.AbstractEventLoop
    base: str  # http://127.0.0.1:port
    app: object  # aiohttp web.Application
    credentials: dict[str, dict[str, str]]  # name -> headers (admin bearer first: drawn most often)
    known: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> seeded values
    bodies: dict[str, dict] = field(default_factory=dict)  # route canonical -> a valid body
    fields: list[str] = field(default_factory=list)  # field names the app's models know
    query_keys: list[str] = field(default_factory=list)
    # (method, canonical) -> (status, marker): a 5xx our code returns on purpose, with that text
    deliberate_5xx: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)


@dataclass
class Outcome:
    requests: int = 0
    seconds: float = 0.0  # time spent generating and sending this route's requests
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _group_patterns(pattern: str) -> dict[str, str]:
    """The sub-pattern of each named group `(?P<name>...)` of a route's compiled pattern."""
    out = {}
    for m in re.finditer(r"\(\?P<([_a-zA-Z][_a-zA-Z0-9]*)>", pattern):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(pattern[i], 0) if pattern[i - 1] != "\\" else 0
            i += 1
        out[m.group(1)] = pattern[m.end() : i - 1]
    return out


def routes(app) -> list[tuple[str, str]]:
    """(method, route) of every route registered on the app, each path parameter written with its
    pattern as in add_route ({id:\\d{1,18}}); static files as /static/{filename:.*}."""
    out = []
    for r in app.router.routes():
        res, info = r.resource, r.resource.get_info()
        if "prefix" in info:  # add_static
            path = res.canonical.rstrip("/") + "/{filename:.*}"
        elif "pattern" in info:  # a route with parameters
            groups = _group_patterns(info["pattern"].pattern)
            path = PARAM.sub(lambda m: f"{{{m.group('name')}:{groups[m.group('name')]}}}", info["formatter"])
        else:
            path = res.canonical
        out.append((r.method, path))
    return sorted(set(out))


def _param(name: str, regex: str | None, known: dict[str, list[str]]):
    pattern = regex or DEFAULT_PARAM_RE
    drawn = st.from_regex(re.compile(pattern), fullmatch=True)
    if name == "filename":
        drawn = st.one_of(
            drawn.map(lambda s: s[:300]),
            st.sampled_from(
                [
                    "a" * 5000,
                    "x/" * 200 + "y" * 300,
                    "../../etc/passwd",
                    "..",
                    "style.css",
                    "%00",
                    "\x00",
                    "日" * 200,
                    ".",
                ]
            ),
        )
    seeded = known.get(name)
    return st.one_of(st.sampled_from(seeded), drawn) if seeded else drawn


def _path(canonical: str, values: dict[str, str]) -> str:
    def sub(m):
        safe = "/" if m.group("name") == "filename" else ""
        return quote(values[m.group("name")], safe=safe)

    return PARAM.sub(sub, canonical)


def _near_valid(target: Target, canonical: str):
    """The route's valid body, or it with one field made hostile (None when the route has none)."""
    valid = target.bodies.get(canonical)
    if valid is None:
        return st.none()
    hostile = st.builds(lambda k, v: {**valid, k: v}, st.sampled_from(sorted(valid) + target.fields), JSON_VALUES)
    return st.one_of(st.just(valid), hostile).map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))


def _bodies(target: Target, canonical: str):
    valid = target.bodies.get(canonical)
    names = st.sampled_from(target.fields) if target.fields else st.text(max_size=8)
    json_like = st.one_of(
        JSON_VALUES,
        st.dictionaries(st.one_of(names, st.text(max_size=6)), JSON_VALUES, max_size=6),
    )
    choices = [
        st.none(),
        st.binary(max_size=300),
        st.sampled_from(RAW_BODIES),
        json_like.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
    ]
    if valid is not None:
        hostile = st.builds(lambda k, v: {**valid, k: v}, st.sampled_from(sorted(valid) + target.fields), JSON_VALUES)
        choices += [st.just(valid).map(lambda v: json.dumps(v).encode())] * 2 + [
            hostile.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
            hostile.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
            st.just(valid).map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-16")),
        ]
    return st.one_of(*choices)


def _query(target: Target):
    keys = (
        st.one_of(st.sampled_from(target.query_keys), st.text(max_size=6)) if target.query_keys else st.text(max_size=6)
    )
    encoded = st.dictionaries(keys, QUERY_VALUES, max_size=4).map(
        lambda d: "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in d.items())
    )
    return st.one_of(st.just(""), encoded, encoded, st.sampled_from(RAW_QUERIES))


def _headers(target: Target):
    return st.fixed_dictionaries(
        {
            "credentials": st.sampled_from([next(iter(target.credentials))] * 4 + sorted(target.credentials)),
            "content_type": CONTENT_TYPES,
            "origin": st.sampled_from([None] * 4 + ["same", "null", "http://evil.example"]),
            "fetch_site": st.sampled_from([None] * 4 + ["same-origin", "cross-site", "none"]),
        }
    )


CATALOGUE_QUERY_VALUES = ["99999999999999999999", "-99999999999999999999", "1" * 5000, "%ff%fe%00"]
CATALOGUE_PARAMS = ["a" * 5000, "%ff", "\x00", "..", "9" * 30]


def catalogue(target: Target, method: str, canonical: str) -> list[tuple[str, dict, str, bytes | None, dict]]:
    """Known-hostile requests every route gets before the random ones: (method, path values, query,
    body, headers). Deterministic, so a regression of an issue-8 item is always caught."""
    admin = dict(next(iter(target.credentials.values())))
    params = [m.group("name") for m in PARAM.finditer(canonical)]
    seeded = {n: (target.known.get(n) or ["x"])[0] for n in params}
    out = []
    for name in params:  # each parameter hostile, the others seeded
        for v in CATALOGUE_PARAMS:
            out.append((method, {**seeded, name: v}, "", None, admin))
    if method in ("GET", "HEAD"):
        for key in target.query_keys if method == "GET" else ():
            for v in CATALOGUE_QUERY_VALUES:
                out.append((method, seeded, f"{quote(key, safe='')}={v}", None, admin))
        return out
    valid = target.bodies.get(canonical, {})
    raw = [*RAW_BODIES, json.dumps(valid).encode()]
    for body in raw:
        out.append((method, seeded, "", body, {**admin, "Content-Type": "application/json"}))
    for charset in BAD_CHARSETS:
        for ctype in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data"):
            out.append(
                (
                    method,
                    seeded,
                    "",
                    json.dumps(valid).encode() if valid else b"token=x",
                    {**admin, "Content-Type": f"{ctype}; charset={charset}"},
                )
            )
    for key in valid:
        for v in [*HUGE_INTS, *TIMES, [[[]]], {"a": 1}, "x" * 100_000, True, None, 1.5]:
            out.append(
                (
                    method,
                    seeded,
                    "",
                    json.dumps({**valid, key: v}).encode(),
                    {**admin, "Content-Type": "application/json"},
                )
            )
    return out


async def _send(session: aiohttp.ClientSession, method: str, url: str, headers: dict, body: bytes | None):
    """(status, body); aiohttp's own refusal of a malformed request (a head line over 8 KiB) may
    reach the client as a parse error carrying the status, or as a closed connection (status 0)."""
    try:
        async with session.request(
            method, URL(url, encoded=True), headers=headers, data=body, allow_redirects=False
        ) as r:
            if r.content_type == "text/event-stream":  # a live stream never ends: its first line will do
                return r.status, await r.content.readline()
            return r.status, await r.read()
    except aiohttp.ClientResponseError as exc:
        return exc.status, str(exc.message).encode()
    except aiohttp.ServerDisconnectedError:
        return 0, b""


def walk(target: Target, session: aiohttp.ClientSession, *, max_examples: int) -> dict[tuple[str, str], Outcome]:
    """Every route, `max_examples` hostile requests each; the outcome per route."""
    results: dict[tuple[str, str], Outcome] = {}
    for method, canonical in routes(target.app):  # canonical: the route with its parameters' patterns
        outcome = results[(method, canonical)] = Outcome()
        params = [(m.group("name"), m.group("re")) for m in PARAM.finditer(canonical)]
        values = st.fixed_dictionaries({n: _param(n, rx, target.known) for n, rx in params})
        seeded = st.fixed_dictionaries(
            {
                n: st.sampled_from(target.known[n]) if target.known.get(n) else _param(n, rx, target.known)
                for n, rx in params
            }
        )
        methods = st.sampled_from([method] * 15 + ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])

        @settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            near=st.booleans(),
            how=methods,
            path_values=values,
            query=_query(target),
            body=_bodies(target, canonical),
            near_body=_near_valid(target, canonical),
            head=_headers(target),
            near_values=seeded,
        )
        def one(near, how, path_values, query, body, near_body, head, near_values):
            if near:  # half the requests as a client of ours would send them, with hostile content
                how, body, path_values = method, near_body, near_values
                head = {
                    **head,
                    "credentials": next(iter(target.credentials)),
                    "origin": None,
                    "fetch_site": None,
                    "content_type": "application/json",
                }
            headers = dict(target.credentials[head["credentials"]])
            if head["content_type"] is not None and body is not None:
                headers["Content-Type"] = head["content_type"]
            if head["origin"] is not None:
                headers["Origin"] = target.base if head["origin"] == "same" else head["origin"]
            if head["fetch_site"] is not None:
                headers["Sec-Fetch-Site"] = head["fetch_site"]
            check(how, path_values, query, body, headers)

        def check(how, path_values, query, body, headers):
            url = target.base + _path(canonical, path_values) + (f"?{query}" if query else "")
            status, text = target.loop.run_until_complete(_send(session, how, url, headers, body))
            outcome.requests += 1
            outcome.statuses[status] += 1
            if status >= 500:
                allowed = target.deliberate_5xx.get((how, canonical))
                if allowed is None or allowed[0] != status or allowed[1].encode() not in text:
                    outcome.failures.append(
                        f"{status} for {how} {url[:300]} headers={headers} body={(body or b'')[:200]!r}: {text[:300]!r}"
                    )
            if b"Traceback (most recent call last)" in text:
                outcome.failures.append(f"traceback in the answer to {how} {url[:300]}")

        t0 = time.monotonic()
        for how, path_values, query, body, headers in catalogue(target, method, canonical):
            check(how, path_values, query, body, headers)
        one()
        outcome.seconds = time.monotonic() - t0
    return results


def slowest(results: dict[tuple[str, str], Outcome], n: int = 8) -> str:
    """The routes that took the longest to walk, for the test's printed summary."""
    top = sorted(results.items(), key=lambda kv: -kv[1].seconds)[:n]
    return ", ".join(f"{m} {c} {o.seconds:.1f} s/{o.requests}" for (m, c), o in top)


def report(results: dict[tuple[str, str], Outcome]) -> str:
    """Every 5xx found, grouped by route (at most 3 per route), for an assertion message."""
    lines = []
    for (method, canonical), o in results.items():
        if o.failures:
            lines.append(f"{method} {canonical}: {len(o.failures)} of {o.requests} requests answered 5xx, e.g.")
            lines += [f"    {f}" for f in o.failures[:3]]
    return "\n".join(lines)
