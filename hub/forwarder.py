"""The forwarder (上报): drains a child hub's uplink outbox (hub/uplink.py) to its parent.

The agent's approach (agent/sync.py) with the same pure cursor (protocol/drain.py): birth
(retained) on connect and death as the MQTT Will on the child's up/state; drain only while the
parent's retained state says online; live records before backlog; at most
`max_inflight_records` unacknowledged; the parent's contiguous ack moves the persisted mark;
a resend request or silence after sending rewinds (the parent dedupes by (child, seq)).

Runs in its own thread with its own store connection; paho's callbacks only queue events.
`run_once` is one pass (events, then drain) so tests can step it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt

from hub import uplink
from hub.config import HubConfig
from hub.db import connect
from iobase.mqtt import make_tls_client
from iobase.sqlite import transaction
from protocol import topics
from protocol.crypto import load_private_pem, load_public_pem
from protocol.drain import DrainPlan, TokenBucket
from protocol.wire import MAX_BATCH_RECORDS, WireError, decode_msg, encode_msg, seal_batch

log = logging.getLogger("jiancha.hub.forwarder")
BATCH_BYTES = 512 * 1024  # as the agent's (agent/sync.py): well under the broker's packet limit


class Forwarder:
    """Owns the connection to the parent's broker and the drain of the uplink outbox."""

    def __init__(self, cfg: HubConfig, store_url: str):
        p = cfg.parent
        if p is None:
            raise ValueError("hub.yaml has no parent: section")
        self.cfg = p
        self.hub_name = cfg.name
        self.sender = p.sender
        self.sign_key = load_private_pem(p.sign_key.read_bytes(), "ed25519")
        self.parent_seal = load_public_pem(p.parent_seal_pub.read_bytes(), "x25519")
        self.conn = connect(store_url)
        self.events: queue.Queue = queue.Queue()
        self.connected = False
        self.parent_online = False
        self.plan: DrainPlan | None = None
        self.last_progress = time.monotonic()
        self.bucket = TokenBucket(p.rate_per_s, max(p.batch_max_records, p.rate_per_s / 10))
        self._stalls = 0
        self._head = 0
        self._parent_started = None
        self.counters = {"batches_sent": 0, "records_sent": 0, "acks": 0, "rewinds": 0, "acks_diverged": 0}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        will = encode_msg({"online": False, "hub": self.hub_name, "sender": self.sender})
        self.client = make_tls_client(
            p.broker.client_id or self.sender,
            p.broker.ca,
            p.broker.cert,
            p.broker.key,
            will=(topics.child_state(self.sender), will),
        )
        self.client.on_connect = lambda c, u, f, rc, pr=None: self.events.put(("connect", rc))
        self.client.on_disconnect = lambda c, u, f, rc, pr=None: self.events.put(("disconnect", rc))
        self.client.on_message = lambda c, u, m: self.events.put(("message", (m.topic, m.payload)))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background and start the drain thread."""
        self.client.connect_async(self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive)
        self.client.loop_start()
        self.thread.start()

    def stop(self) -> None:
        """Say goodbye (retained offline state), disconnect, close the store connection."""
        self.stopping.set()
        self.events.put(("stop", None))
        self.thread.join(timeout=10)
        if self.connected:
            info = self.client.publish(topics.child_state(self.sender), self._state(False), qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self.conn.close()

    def status(self) -> dict:
        """For /api/health (any thread: no store access; head as of the last pass)."""
        plan = self.plan
        return {
            "sender": self.sender,
            "connected": self.connected,
            "parent_online": self.parent_online,
            "head": self._head,
            "acked": plan.acked if plan else None,
            "inflight": plan.inflight() if plan else 0,
            **self.counters,
        }

    def _state(self, online: bool) -> bytes:
        return encode_msg(
            {
                "online": online,
                "hub": self.hub_name,
                "sender": self.sender,
                "last_seq": uplink.head(self.conn),
                "acked_seq": uplink.acked(self.conn),
                "ms": int(time.time() * 1000),
            }
        )

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.run_once(wait=0.5)
            except Exception:  # a store or broker hiccup: log, wait, go on
                log.exception("forwarder pass failed; retrying")
                self.stopping.wait(2.0)

    def run_once(self, wait: float = 0.0) -> None:
        """Handle queued events (waiting up to `wait` for the first), then drain what may go."""
        try:
            ev = self.events.get(timeout=wait) if wait else self.events.get_nowait()
        except queue.Empty:
            ev = None
        while ev is not None:
            self._event(*ev)
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                ev = None
        if self.connected and self.parent_online and self.plan is not None:
            self._check_stall()
            self._drain()

    def _event(self, kind: str, arg) -> None:
        if kind == "connect":
            if arg.is_failure:
                log.warning("parent broker refused the connection: %s", arg)
                return
            self.connected = True
            self.client.subscribe([(topics.child_down_filter(self.sender), 1), (topics.HUB_STATE, 1)])
            self.client.publish(topics.child_state(self.sender), self._state(True), qos=1, retain=True)
            self._restart()
            log.info("connected to the parent's broker %s:%s", self.cfg.broker.host, self.cfg.broker.port)
        elif kind == "disconnect":
            self.connected = self.parent_online = False
        elif kind == "message":
            try:
                self._message(*arg)
            except WireError as exc:
                log.warning("refused a message on %s: %s", arg[0], exc)

    def _message(self, topic: str, payload: bytes) -> None:
        if topic == topics.HUB_STATE:
            st = decode_msg(payload) if payload else {}
            online = bool(st.get("online"))
            reborn = online and self.parent_online and st.get("ms") != self._parent_started
            if online:
                self._parent_started = st.get("ms")
            if online and (reborn or not self.parent_online):
                self._restart()
                if reborn:  # a restarted parent: announce again so it answers with where it stands
                    self.client.publish(topics.child_state(self.sender), self._state(True), qos=1, retain=True)
            self.parent_online = online
        elif topic == topics.child_ack(self.sender):
            self._on_ack(decode_msg(payload))

    def _restart(self) -> None:
        self.plan = DrainPlan.start(uplink.acked(self.conn), uplink.head(self.conn))
        self.last_progress = time.monotonic()

    def _on_ack(self, msg: dict) -> None:
        acked = msg.get("acked")
        if type(acked) is not int or self.plan is None:
            return
        self.counters["acks"] += 1
        head = uplink.head(self.conn)
        ours = uplink.record_hash_at(self.conn, acked) if 0 < acked <= head else None
        if acked > head or (acked > 0 and ours is not None and ours.hex() != msg.get("acked_hash")):
            # the parent holds another history under our id (this hub's store was replaced):
            # never mark our records as delivered; an operator must look (docs/rollup.md)
            self.counters["acks_diverged"] += 1
            log.error("DIVERGED: the parent acknowledges seq %d that is not ours (our head %d)", acked, head)
            return
        if self.plan.on_ack(acked):
            with transaction(self.conn):
                uplink.set_acked(self.conn, acked, ours, int(time.time() * 1000))
            self.last_progress = time.monotonic()
            self._stalls = 0
        resend = msg.get("resend_from")
        if type(resend) is int and resend >= 1:
            self.counters["rewinds"] += 1
            self.plan.rewind(resend)

    def _check_stall(self) -> None:
        wait = min(self.cfg.ack_timeout_s * 2**self._stalls, 300.0)
        if self.plan.inflight() and time.monotonic() - self.last_progress > wait:
            log.info("no ack for %.0fs: resending from %d", wait, self.plan.acked + 1)
            self.counters["rewinds"] += 1
            self._stalls += 1
            self._restart()

    def _drain(self) -> None:
        head = self._head = uplink.head(self.conn)
        while True:
            rng = self.plan.next_range(head, self.cfg.batch_max_records, self.cfg.max_inflight_records)
            if rng is None:
                return
            delay = self.bucket.wait_time(rng[1] - rng[0] + 1, time.monotonic())
            if delay and self.stopping.wait(delay):
                return
            if not self._send(*rng):
                return

    def _send(self, first: int, last: int) -> bool:
        """Seal and publish first..last; False when paho refused (the stall rewind resends)."""
        data = uplink.read(self.conn, first, last)
        if len(data) != last - first + 1:
            log.error("uplink read %d..%d returned %d records", first, last, len(data))
            return False
        for start, chunk in _split(first, data):
            payload = seal_batch(
                self.sender,
                chunk,
                sign_key=self.sign_key,
                hub_seal_pub=self.parent_seal,
                sent_ms=int(time.time() * 1000),
                first_seq=start,
            )
            info = self.client.publish(topics.child_batch(self.sender), payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            self.counters["batches_sent"] += 1
            self.counters["records_sent"] += len(chunk)
        return True


def _split(first: int, data: list[bytes]) -> list[tuple[int, list[bytes]]]:
    """Contiguous chunks of at most BATCH_BYTES and MAX_BATCH_RECORDS (one record at least)."""
    out, chunk, size, start = [], [], 0, first
    for i, rec in enumerate(data):
        if chunk and (size + len(rec) > BATCH_BYTES or len(chunk) >= MAX_BATCH_RECORDS):
            out.append((start, chunk))
            chunk, size, start = [], 0, first + i
        chunk.append(rec)
        size += len(rec) + 3
    return out + [(start, chunk)] if chunk else out
