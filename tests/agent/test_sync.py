"""Syncer decisions that need no broker: divergence after a box reset, callback errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agent.clock import BoxClock
from agent.config import AgentConfig
from agent.store import AgentStore
from agent.sync import Syncer
from iobase.config import load_config
from protocol import topics
from protocol.wire import encode_msg
from provisioning.setup import add_site, init_hub


@pytest.fixture
def syncer(tmp_path):
    init_hub(tmp_path / "h", region="1", name="x")
    cfg = load_config(add_site(tmp_path / "h", code="S01", name="a"), AgentConfig)
    store = AgentStore(tmp_path / "a.db", "S01")
    s = Syncer(cfg, store, BoxClock(force="ntp"))
    yield s
    store.close()


def test_an_ack_beyond_our_log_is_divergence_not_progress(syncer):
    """A reinstalled box (empty log) must not mark its new records as synced."""
    syncer._restart_plan()
    syncer._on_ack({"acked": 500, "hub_ms": 1})
    assert syncer.diverged and syncer.store.acked_seq() == 0 and syncer.status()["diverged"]


def test_a_failing_handler_does_not_escape_the_paho_callback(syncer):
    def boom(msg):
        raise RuntimeError("bad clip ack")

    syncer.on_clip_ack.append(boom)
    msg = SimpleNamespace(topic=topics.site_clip_ack("S01"), payload=encode_msg({"clip_id": "x", "index": 0}))
    syncer._on_message(None, None, msg)  # must not raise into paho's thread
    assert syncer.counters["callback_errors"] == 1
    assert syncer.client.suppress_exceptions is True


def test_an_ack_naming_another_record_at_that_seq_is_divergence(syncer):
    """Two boxes with one identity: the hub holds the other box's record 2. This box must learn
    it diverged and keep its records unsynced; an ack naming its own record moves the mark."""
    from protocol.records import record_hash

    for i in range(3):
        syncer.store.append("heartbeat", {"at": "2026-11-02T09:00:00+08:00", "n": i})
    syncer._restart_plan()
    own = record_hash(syncer.store.read_log(1, 1)[0]).hex()
    syncer._on_ack({"acked": 1, "hub_ms": 1, "acked_hash": own})
    assert syncer.store.acked_seq() == 1 and not syncer.diverged
    syncer._on_ack({"acked": 2, "hub_ms": 1, "acked_hash": "00" * 32})
    assert syncer.diverged and syncer.store.acked_seq() == 1
    assert syncer.counters["acks_diverged"] == 1


def test_a_conflict_about_the_other_boxs_record_does_not_make_us_diverge(syncer):
    """Every box using this identity reads the same ack topic: a conflict naming a record that
    is not ours is about the other box."""
    from protocol.records import record_hash

    for i in range(3):
        syncer.store.append("heartbeat", {"at": "2026-11-02T09:00:00+08:00", "n": i})
    syncer._restart_plan()
    ours = record_hash(syncer.store.read_log(2, 2)[0]).hex()
    syncer._on_ack({"acked": 0, "hub_ms": 1, "conflict": 2, "conflict_hash": "11" * 32})
    assert not syncer.diverged
    syncer._on_ack({"acked": 0, "hub_ms": 1, "conflict": 2, "conflict_hash": ours})
    assert syncer.diverged and syncer.store.acked_seq() == 0


def test_applying_a_config_refreshes_the_retained_birth(syncer, tmp_path):
    """A hub that starts later reads from our retained birth which catalog we hold; a stale birth
    (catalog 0) made a hub with a lost database push its own version 1, which the box ignored as
    not newer, and never re-sign above it (tests/e2e/test_hub_recovery.py flaked on this)."""
    from hub.config import HubConfig
    from protocol.crypto import load_private_pem
    from protocol.wire import decode_msg, sign_config

    hub_cfg = load_config(tmp_path / "h" / "hub.yaml", HubConfig)
    key = load_private_pem(hub_cfg.keys.sign_key.read_bytes(), "ed25519")
    item = {
        "code": "XK-001", "name": "排水许可", "department": "住建局", "item_type": "licensing",
        "case_type": "promised", "legal_days": 20, "promised_days": 10, "yellow_days": 2,
    }  # fmt: skip
    signed = sign_config("catalog", 3, {"items": [item]}, sign_key=key, issued_ms=1)
    sent = []
    syncer.client.publish = lambda topic, payload, qos=0, retain=False: sent.append((topic, payload, retain))
    syncer.connected = True
    syncer._apply_config(signed)
    assert [(t, r) for t, _, r in sent] == [(topics.site_state("S01"), True)]
    assert decode_msg(sent[0][1])["config"]["catalog"] == 3
    syncer._apply_config(signed)  # not newer: nothing changed, nothing announced
    assert len(sent) == 1
