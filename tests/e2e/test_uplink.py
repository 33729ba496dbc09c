"""Three levels, the spine (issue 14): a real agent under a county hub (its own Mosquitto) under
a city hub (its own Mosquitto). A red card at the county reaches the city exactly once; with the
county → city link down (the city's broker stopped) more cards wait in the county's outbox and
all arrive once, in order, when it returns; a county hub killed in the middle of forwarding
loses and doubles nothing. Every byte the county published to the city is decrypted with the
city's key and searched for the applicants' names, ID numbers and phones."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from hub.config import HubConfig
from iobase.config import load_config
from protocol import topics
from protocol.crypto import load_private_pem, load_public_pem
from protocol.records import record_hash
from protocol.wire import open_batch
from provisioning.child_hub import add_child_hub, install_parent
from tests.e2e.harness import Env, at, wait_for, working_days_ago
from tests.provisioning.mqtt_helpers import connect, issue_identity

CHILD = "hub-140721"
APPLICANTS = [("张三", "140702199001011234", "13800000000"), ("李四", "140702198505054321", "13911112222")]


def _rows(env: Env, sql: str, *args) -> list[tuple]:
    """Rows of a query on a hub's store (read only), whichever engine it is on."""
    url = getattr(env, "store_url", None)
    if url is None:
        with sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True, timeout=10) as c:
            return c.execute(sql, args).fetchall()
    import psycopg

    with psycopg.connect(url) as c:
        return c.execute(sql.replace("?", "%s"), args).fetchall()


def _store_bytes(env: Env) -> bytes:
    """Everything a hub's store holds: its SQLite files, or every value of every table."""
    url = getattr(env, "store_url", None)
    if url is None:
        return b"".join(f.read_bytes() for f in (env.root / "data").glob("hub.db*"))
    tables = [r[0] for r in _rows(env, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    out = []
    for t in tables:
        for row in _rows(env, f'SELECT * FROM "{t}"'):
            out += [bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for v in row]
    return b"\0".join(out)


def _outbox(county: Env) -> list[tuple[int, bytes, str | None]]:
    return [(s, bytes(d), n) for s, d, n in _rows(county, "SELECT seq, data, case_no FROM uplink_log ORDER BY seq")]


def _received(city: Env) -> list[tuple[int, bytes]]:
    return [
        (s, bytes(h)) for s, h in _rows(city, "SELECT seq, hash FROM child_records WHERE child=? ORDER BY seq", CHILD)
    ]


def _red_cards(env: Env, case_no: str) -> int:
    return _rows(env, "SELECT count(*) FROM child_cards WHERE case_no=? AND kind='red'", case_no)[0][0]


def _late_case(county: Env, who: int) -> str:
    """A case received 30 working days ago and accepted then: promised 10 days, long red."""
    late = working_days_ago(30)
    name, id_no, phone = APPLICANTS[who % 2]
    st, case = county.register(
        "S01",
        "XK-001",
        received_at=at(late, 9).isoformat(),
        applicant={"name": name, "id_no": id_no, "phone": phone},
    )
    assert st == 201, case
    assert county.event("S01", case["case_no"], "accept", at=at(late, 10).isoformat())[0] == 201
    return case["case_no"]


def _carded(county: Env, cases: list[str]) -> int:
    """Until each case's red card is in the county's outbox; the outbox head then."""

    def done():
        log = _outbox(county)
        with_card = {n for _, d, n in log if b"\xa4card\xa3red" in d}
        return log[-1][0] if log and set(cases) <= with_card else None

    return wait_for(done, 60, 0.2, what=f"red cards of {cases} in the county's outbox")


def _all_arrived(city: Env, county: Env, timeout: float = 60) -> list:
    """Until the city holds exactly the county's outbox, record for record (same hashes, same seqs)."""

    def done():
        theirs = [(s, record_hash(d)) for s, d, _ in _outbox(county)]
        ours = _received(city)
        return ours if ours == theirs else None

    return wait_for(done, timeout, 0.2, what="the city holding the county's whole outbox")


def _set_parent(county: Env, **values) -> None:
    path = county.root / "hub.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["parent"].update(values)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_county_forwards_cards_to_the_city_exactly_once(tmp_path, engine, request):
    urls = {"city": None, "county": None}
    if engine == "postgresql":  # both hubs on the test session's PostgreSQL (empty: each migrates)
        server = request.getfixturevalue("pg_server")
        urls = {k: server.create_db(k) for k in urls}
    city = Env(tmp_path / "city", (), urls["city"], region="140700", level="city", name="晋中市政务服务中心")
    county = Env(
        tmp_path / "county", ("S01",), urls["county"], region="140721", level="county", name="榆次区政务服务中心"
    )
    city.store_url, county.store_url = urls["city"], urls["county"]
    bundle = add_child_hub(city.root, code="140721", name="榆次区政务服务中心", level="county")
    spy_files = issue_identity(city.root, "jc-test-spy", [f"topic read {topics.ALL_CHILD_BATCHES}"])
    install_parent(county.root, bundle=bundle)
    # one record per batch and 4 records/s: the forwarding of a few cards takes seconds, so the
    # county hub can be killed in the middle of it
    _set_parent(
        county, batch_max_records=1, max_inflight_records=2, rate_per_s=4.0, ack_timeout_s=3.0, rollup_every_s=1.0
    )
    spy = None
    try:
        city.start_broker()
        county.start_broker()
        city.start_hub(wait=False)
        county.start_hub_and_agents("S01")
        city.hub.wait_healthy()
        spy = connect(
            city.root, "jc-test-spy", city.broker, clean_session=False, client_id="jc-test-spy", files=spy_files
        )
        spy.subscribe(topics.ALL_CHILD_BATCHES)
        wait_for(lambda: county.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")

        # 1. one red card at the county reaches the city, once
        first = _late_case(county, 0)
        _carded(county, [first])
        _all_arrived(city, county)
        assert _red_cards(city, first) == 1

        # 2. the county → city link down: cards wait in the county's outbox, then all arrive once
        city.broker.stop()
        down = [_late_case(county, i) for i in range(1, 4)]
        head = _carded(county, down)
        assert _received(city)[-1][0] < head  # nothing of it reached the city meanwhile
        city.broker.start()
        got = _all_arrived(city, county)
        # in order, no gap, none twice (hourly roll-ups of the cases' hours may follow the cards)
        assert [s for s, _ in got] == list(range(1, len(got) + 1)) and len(got) >= head
        # the cards of the cases made while the link was down, in the order they were made
        firsts = [
            _rows(city, "SELECT first_seq FROM child_cards WHERE case_no=? AND kind='red'", n)[0][0] for n in down
        ]
        assert firsts == sorted(firsts)
        assert [_red_cards(city, n) for n in [first, *down]] == [1, 1, 1, 1]

        # 3. the county hub killed in the middle of forwarding, then restarted
        city.broker.stop()
        more = [_late_case(county, i) for i in range(4, 8)]
        head = _carded(county, more)
        before = _received(city)[-1][0]
        city.broker.start()
        wait_for(lambda: before < _received(city)[-1][0] < head, 30, 0.05, what="forwarding under way")
        county.hub.kill()
        assert _received(city)[-1][0] < head  # killed mid-forwarding
        county.start_hub()
        got = _all_arrived(city, county)
        assert [s for s, _ in got] == list(range(1, len(got) + 1)) and len(got) >= head
        head = got[-1][0]
        assert [_red_cards(city, n) for n in [first, *down, *more]] == [1] * 8
        up = wait_for(lambda: (u := county.hub_get("/api/health")["uplink"])["acked"] == head and u, 30, what="acked")
        assert (up["sender"], up["connected"], up["parent_online"], up["inflight"]) == (CHILD, True, True, 0)
        assert _rows(city, "SELECT count(*) FROM quarantine")[0][0] == 0  # nothing rejected on the way

        # 3b. the hourly roll-ups (their hours ended 30 working days ago): after the link was down
        # and the county restarted, the city's sum equals a direct count of the county's cases,
        # and every roll-up key is held once, at the revision the county sent last
        cases = _rows(county, "SELECT count(*) FROM cases")[0][0]
        assert cases == 8

        def city_rollups():
            bodies = [json.loads(b) for (b,) in _rows(city, "SELECT body_json FROM child_rollups")]
            arrived = _received(city) == [(s, record_hash(d)) for s, d, _ in _outbox(county)]
            return bodies if sum(b["received"] for b in bodies) == cases and arrived else None

        bodies = wait_for(city_rollups, 60, 0.5, what="the city's roll-ups summing to the county's cases")
        sent = {
            (r, d, h): v for r, d, h, v in _rows(county, "SELECT region, department, hour, revision FROM rollup_sent")
        }
        assert {(b["region"], b["department"], b["hour"]): b["revision"] for b in bodies} == sent
        status = dict(_rows(county, "SELECT status, count(*) FROM cases GROUP BY status"))
        got_status = {}
        for b in bodies:
            for k, v in b["status"].items():
                got_status[k] = got_status.get(k, 0) + v
        assert got_status == status, (got_status, status, bodies, _rows(county, "SELECT * FROM rollup_dirty"))

        # 4. no personal data left the county: every batch the city's broker carried, decrypted
        city_cfg = load_config(city.root / "hub.yaml", HubConfig)
        seal = load_private_pem(city_cfg.keys.seal_key.read_bytes(), "x25519")
        verify = load_public_pem((bundle / "sign.pub").read_bytes(), "ed25519")
        batches = [m.payload for m in spy.received if m.topic == topics.child_batch(CHILD)]
        seen = set()
        plain = b""
        for payload in batches:
            header, recs = open_batch(payload, site=CHILD, verify_key=verify, hub_seal_key=seal)
            seen.update(r.seq for r, _ in recs)
            plain += payload + b"".join(enc for _, enc in recs)
        assert set(range(1, head + 1)) <= seen  # the spy saw every record travel (and roll-ups after)
        for name, id_no, phone in APPLICANTS:
            for secret in (name, id_no, phone):
                assert secret.encode() not in plain, secret
        # ... and none of it is stored at the city, while the county does hold it (the search finds it there)
        city_bytes, county_bytes = _store_bytes(city), _store_bytes(county)
        for name, id_no, phone in APPLICANTS:
            for secret in (name, id_no, phone):
                assert secret.encode() not in city_bytes, secret
                assert secret.encode() in county_bytes, secret
    finally:
        if spy is not None:
            spy.close()
        county.close()
        city.close()
