"""Three levels with real processes (issue 14): a real agent under a county hub under a city hub
under a province hub, each with its own Mosquitto. Late cases make red cards and hourly
roll-ups at the county; the city → province link is taken down and brought back while they
travel, and the city hub is restarted: at the end the province's roll-up totals equal the
county's records exactly (received and by status), every red card is held once at the city and
once at the province (named by its county), and nothing personal reached the province."""

from __future__ import annotations

import json

import pytest

from provisioning.child_hub import add_child_hub, install_parent
from tests.e2e.harness import Env, wait_for
from tests.e2e.test_uplink import APPLICANTS, CHILD, _carded, _late_case, _rows, _set_parent, _store_bytes

CITY = "hub-140700"


def _sums(bodies: list[dict]) -> tuple[int, dict]:
    status: dict[str, int] = {}
    for b in bodies:
        for k, v in b["status"].items():
            status[k] = status.get(k, 0) + v
    return sum(b["received"] for b in bodies), status


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_province_totals_equal_the_sites_records_after_the_links_were_down(tmp_path, engine, request):
    urls = {"province": None, "city": None, "county": None}
    if engine == "postgresql":
        server = request.getfixturevalue("pg_server")
        urls = {k: server.create_db(k) for k in urls}
    province = Env(tmp_path / "province", (), urls["province"], region="140000", level="province", name="山西省")
    city = Env(tmp_path / "city", (), urls["city"], region="140700", level="city", name="晋中市政务服务中心")
    county = Env(tmp_path / "county", ("S01",), urls["county"], region="140721", level="county", name="榆次区")
    for env in (province, city, county):
        env.store_url = urls[env.root.name]
    install_parent(city.root, bundle=add_child_hub(province.root, code="140700", name="晋中市", level="city"))
    install_parent(county.root, bundle=add_child_hub(city.root, code="140721", name="榆次区", level="county"))
    _set_parent(county, rollup_every_s=1.0, ack_timeout_s=3.0)
    _set_parent(city, rollup_every_s=1.0, ack_timeout_s=3.0, rate_per_s=20.0, batch_max_records=2)
    try:
        for env in (province, city, county):
            env.start_broker()
        province.start_hub(wait=False)
        city.start_hub(wait=False)
        county.start_hub_and_agents("S01")
        province.hub.wait_healthy()
        city.hub.wait_healthy()
        wait_for(lambda: county.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")

        first = [_late_case(county, i) for i in range(2)]
        _carded(county, first)
        province.broker.stop()  # the city → province link down
        more = [_late_case(county, i) for i in range(2, 5)]
        _carded(county, more)
        cases = first + more

        def at_city():  # the county's whole outbox is at the city
            head = _rows(county, "SELECT max(seq) FROM uplink_log")[0][0]
            return _rows(city, "SELECT acked_seq FROM child_hubs WHERE code=?", CHILD)[0][0] == head

        wait_for(at_city, 60, 0.3, what="the city holding the county's outbox")
        backlog = _rows(city, "SELECT max(seq) FROM uplink_log")[0][0]
        acked = _rows(province, "SELECT acked_seq FROM child_hubs WHERE code=?", CITY) or [(0,)]
        assert acked[0][0] < backlog  # the city has a backlog for the province
        province.broker.start()
        city.hub.kill()  # and the city hub restarted while it has a backlog for the province
        city.start_hub()

        def complete():
            bodies = [json.loads(b) for (b,) in _rows(province, "SELECT body_json FROM child_rollups")]
            head = _rows(city, "SELECT max(seq) FROM uplink_log")[0][0]
            acked = _rows(province, "SELECT acked_seq FROM child_hubs WHERE code=?", CITY)
            done = acked and acked[0][0] == head and _sums(bodies)[0] == len(cases) and at_city()
            return bodies if done else None

        bodies = wait_for(complete, 120, 0.5, what="the province complete")
        status = dict(_rows(county, "SELECT status, count(*) FROM cases GROUP BY status"))
        assert _sums(bodies) == (len(cases), status)  # exactly the county's records
        sent = {
            (r, d, h): v for r, d, h, v in _rows(county, "SELECT region, department, hour, revision FROM rollup_sent")
        }
        assert {(b["region"], b["department"], b["hour"]): b["revision"] for b in bodies} == sent
        assert {b["origin"] for b in bodies} == {CHILD}
        assert max(b["revision"] for b in bodies) > 1  # late cases revised their past hour
        for n in cases:  # every red card once at each level, named by its county at the province
            assert _rows(city, "SELECT count(*) FROM child_cards WHERE case_no=? AND kind='red'", n)[0][0] == 1
            rows = _rows(province, "SELECT child, origin FROM child_cards WHERE case_no=? AND kind='red'", n)
            assert [tuple(r) for r in rows] == [(CITY, CHILD)]
        assert _rows(province, "SELECT count(*) FROM quarantine")[0][0] == 0
        held = _store_bytes(province)
        for name, id_no, phone in APPLICANTS:
            for secret in (name, id_no, phone):
                assert secret.encode() not in held, secret
    finally:
        county.close()
        city.close()
        province.close()
