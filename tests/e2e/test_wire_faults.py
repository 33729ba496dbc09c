"""Bad input on the wire through the real broker: counted, quarantined, never stops ingest.
A revoked site's records no longer arrive; agents refuse config not signed by their hub."""

from __future__ import annotations

import sqlite3

from hub.config import HubConfig, Registry
from iobase.config import dump_config, load_config
from protocol import topics
from protocol.crypto import generate_ed25519
from protocol.wire import sign_config
from provisioning.broker import signal_reload
from provisioning.brokerconf import BrokerLayout, write_acl
from provisioning.ca import CertificateAuthority, write_public
from provisioning.setup import revoke_site
from tests.craft import SiteSigner, chain
from tests.e2e.harness import wait_for
from tests.provisioning.mqtt_helpers import connect, issue_identity, try_connect


def _records(env, site):
    with sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM records WHERE site=?", (site,)).fetchone()[0]


def test_bad_batches_are_counted_and_ingest_continues(env):
    s3 = SiteSigner(env.root, "S03")
    recs, _ = chain("S03", 6)
    good_late = s3.seal(recs[3:], 4)  # out of order: 4..6 before 1..3
    good_early = s3.seal(recs[:3], 1)
    bad_sig = SiteSigner(env.root, "S03")
    bad_sig.sign_key = generate_ed25519()
    # the duplicate counter is the hub's, over every site: first let the running agents' own
    # start-up records be acknowledged (a box resends what is unacknowledged after its birth, and
    # the hub counts a record it already holds as a duplicate), then count from here
    for code in ("S01", "S02"):
        env.wait_synced(code)
    dup = "jiancha_records_duplicate_total"
    dup0 = env.metrics().get(dup, 0)
    client = connect(env.root, "S03", env.broker)
    try:
        t = topics.site_batch("S03")
        client.publish(t, b"\x00garbage")  # garbage
        client.publish(t, good_early[: len(good_early) // 2])  # truncated
        client.publish(t, b"\x94" + b"\x01" * 1_100_000)  # oversized
        client.publish(t, bad_sig.seal(recs[:3], 1))  # wrong signature
        client.publish(t, s3.seal(recs[:3], 1, site="S01"))  # wrong site in the header
        client.publish(t, good_late)  # out of order
        client.publish(t, good_early)
        client.publish(t, good_early)  # replay
        wait_for(lambda: _records(env, "S03") == 6, 20, what="6 good records of S03")
    finally:
        client.close()
    m = wait_for(  # (the replay may still be on its way when the 6th record is stored)
        lambda: (m := env.metrics()).get('jiancha_rejected_total{reason="wrong_site"}') and m[dup] - dup0 >= 3 and m,
        10,
        what="metrics",
    )
    assert m['jiancha_rejected_total{reason="malformed"}'] == 2
    assert m['jiancha_rejected_total{reason="oversize"}'] == 1
    assert m['jiancha_rejected_total{reason="bad_signature"}'] == 1
    assert m['jiancha_rejected_total{reason="wrong_site"}'] == 1
    assert m[dup] - dup0 == 3, (m[dup], dup0)  # the replay's three records
    assert m['jiancha_site_acked_seq{site="S03"}'] == 6
    # and the real agents keep syncing after all that
    assert env.register("S01", "XK-001")[0] == 201
    env.wait_synced("S01")


def _revoke_at_broker_only(root, code: str) -> None:
    """The broker's half of revoke-site alone: the ACL without the site, its certificate on the
    CRL, the broker reloaded; the hub's registry still lists the site as active."""
    hub = load_config(root / "hub.yaml", HubConfig)
    registry = load_config(hub.registry, Registry)
    for s in registry.sites:
        if s.code == code:
            s.revoked = True
    write_acl(root, registry)
    ca = CertificateAuthority(root / "ca")
    ca.revoke_identity(code)
    write_public(BrokerLayout(root).crl, ca.crl_path.read_bytes())
    assert signal_reload(root)


def _revoke_at_hub_only(root, code: str) -> None:
    """The hub's half alone: the registry flag (the hub re-reads it within a second); the broker's
    ACL and CRL still let the site in (a broker not yet reloaded, or one that is not trusted)."""
    hub = load_config(root / "hub.yaml", HubConfig)
    registry = load_config(hub.registry, Registry)
    for s in registry.sites:
        if s.code == code:
            s.revoked = True
    dump_config(registry, hub.registry)


def _hub_sees_revoked(env, code: str) -> None:
    wait_for(
        lambda: any(s["code"] == code and s["revoked"] for s in env.hub_get("/api/sites")),
        10,
        what="hub sees revocation",
    )


def _then_s01_flows(env) -> None:
    """A positive sign that the hub is ingesting (after anything sent before it)."""
    assert env.register("S01", "XK-001")[0] == 201
    env.wait_synced("S01")


def test_revoked_site_records_no_longer_arrive(env):
    s3 = SiteSigner(env.root, "S03")
    recs, _ = chain("S03", 4)
    client = connect(env.root, "S03", env.broker)
    try:
        client.publish(topics.site_batch("S03"), s3.seal(recs[:2], 1))
        wait_for(lambda: _records(env, "S03") == 2, 20, what="S03 before revocation")
        m0 = env.metrics()
        revoke_site(env.root, code="S03")  # hub and broker pick it up without restart
        _hub_sees_revoked(env, "S03")
        wait_for(lambda: not try_connect(env.root, "S03", env.broker), 10, what="the broker reloaded")
        client.publish(topics.site_batch("S03"), s3.seal(recs[2:], 3))  # acked by the broker, then dropped
    finally:
        client.close()
    _then_s01_flows(env)  # an untouched site still flows; S03's later records never arrive
    assert _records(env, "S03") == 2
    # stopped at the broker: nothing reached the hub to be refused there (the hub's own layer is
    # tested alone below)
    m = env.metrics()
    rejected = {k: v - m0.get(k, 0) for k, v in m.items() if k.startswith("jiancha_rejected_total")}
    assert not any(rejected.values()), rejected


def test_revocation_at_the_broker_alone_stops_a_live_site(env):
    """The broker layer on its own (the hub would still take S03's records): its ACL, reloaded
    without a restart, stops the live connection's publishes; its CRL refuses a new one."""
    s3 = SiteSigner(env.root, "S03")
    recs, _ = chain("S03", 4)
    client = connect(env.root, "S03", env.broker)
    try:
        client.publish(topics.site_batch("S03"), s3.seal(recs[:2], 1))
        wait_for(lambda: _records(env, "S03") == 2, 20, what="S03 before revocation")
        m0 = env.metrics()
        _revoke_at_broker_only(env.root, "S03")
        # the reload is asynchronous (SIGHUP): once a new S03 connection is refused (CRL), the
        # reloaded ACL applies too
        wait_for(lambda: not try_connect(env.root, "S03", env.broker), 10, what="the broker reloaded")
        client.publish(topics.site_batch("S03"), s3.seal(recs[2:], 3))  # acked by the broker, then dropped
    finally:
        client.close()
    _then_s01_flows(env)
    assert _records(env, "S03") == 2
    m = env.metrics()
    rejected = {k: v - m0.get(k, 0) for k, v in m.items() if k.startswith("jiancha_rejected_total")}
    assert not any(rejected.values()), rejected  # nothing reached the hub to be refused there
    assert not try_connect(env.root, "S03", env.broker)


def test_revocation_at_the_hub_alone_refuses_what_the_broker_lets_through(env):
    """The hub layer on its own: the broker still passes S03's batches; the hub quarantines them
    as revoked_site and stores nothing more."""
    s3 = SiteSigner(env.root, "S03")
    recs, _ = chain("S03", 4)
    client = connect(env.root, "S03", env.broker)
    try:
        client.publish(topics.site_batch("S03"), s3.seal(recs[:2], 1))
        wait_for(lambda: _records(env, "S03") == 2, 20, what="S03 before revocation")
        _revoke_at_hub_only(env.root, "S03")
        _hub_sees_revoked(env, "S03")
        client.publish(topics.site_batch("S03"), s3.seal(recs[2:], 3))  # the broker passes it
        wait_for(
            lambda: env.metrics().get('jiancha_rejected_total{reason="revoked_site"}', 0) >= 1,
            20,
            what="the batch refused by the hub as revoked_site",
        )
    finally:
        client.close()
    assert _records(env, "S03") == 2
    _then_s01_flows(env)


def test_agent_refuses_config_not_signed_by_its_hub(env):
    h0 = env.agent_health("S01")
    forged = sign_config("catalog", 99, {"items": []}, sign_key=generate_ed25519(), issued_ms=0)
    # whoever could write S01's config topic (the hub's certificate, a compromised broker) --
    # as its own identity: a second connection with the hub's certificate would be the hub's
    # session and throw the running hub off (one session per identity)
    issue_identity(env.root, "jc-test-forger", [f"topic write {topics.site_down_filter('S01')}"], env.broker)
    forger = connect(env.root, "jc-test-forger", env.broker)
    try:
        forger.publish(topics.site_config("S01", "catalog"), forged)
    finally:
        forger.close()
    wait_for(lambda: env.agent_health("S01")["config_refused"] > h0["config_refused"], 10, what="forged config refused")
    h = env.agent_health("S01")
    assert h["catalog_version"] == h0["catalog_version"] == 1
    assert env.register("S01", "XK-001")[0] == 201  # catalog intact
