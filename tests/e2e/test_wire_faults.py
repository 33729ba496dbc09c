"""Bad input on the wire through the real broker: counted, quarantined, never stops ingest.
A revoked site's records no longer arrive; agents refuse config not signed by their hub."""

from __future__ import annotations

import sqlite3

from protocol import topics
from protocol.crypto import generate_ed25519
from protocol.wire import sign_config
from provisioning.setup import revoke_site
from tests.craft import SiteSigner, chain
from tests.e2e.harness import wait_for
from tests.provisioning.mqtt_helpers import connect, issue_identity


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


def test_revoked_site_records_no_longer_arrive(env):
    s3 = SiteSigner(env.root, "S03")
    recs, _ = chain("S03", 4)
    client = connect(env.root, "S03", env.broker)
    try:
        client.publish(topics.site_batch("S03"), s3.seal(recs[:2], 1))
        wait_for(lambda: _records(env, "S03") == 2, 20, what="S03 before revocation")
        revoke_site(env.root, code="S03")  # hub and broker pick it up without restart
        wait_for(
            lambda: any(s["code"] == "S03" and s["revoked"] for s in env.hub_get("/api/sites")),
            10,
            what="hub sees revocation",
        )
        try:
            client.publish(topics.site_batch("S03"), s3.seal(recs[2:], 3), timeout=2)
        except (RuntimeError, ValueError, AssertionError):
            pass  # the broker may cut the revoked client off: also fine
    finally:
        client.close()
    # an untouched site still flows; S03's later records never arrive
    assert env.register("S01", "XK-001")[0] == 201
    env.wait_synced("S01")
    assert _records(env, "S03") == 2


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
