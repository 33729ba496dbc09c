"""MQTT sync: drains the outbox to the hub over TLS with paho-mqtt 2.x.

Sparkplug-style session: birth (retained) on connect, death as the MQTT Will; drain only while
the hub's retained state says online; live records before backlog; bounded rate; acks drive
progress and are persisted; silence after sending rewinds to the last ack (idempotent resend).
"""

from __future__ import annotations

import asyncio
import logging
import time

import paho.mqtt.client as mqtt

from agent.aio import cancel, release_memory
from agent.clock import BoxClock
from agent.config import AgentConfig
from agent.drain import DrainPlan, TokenBucket
from agent.store import AgentStore
from iobase.mqtt import make_tls_client
from protocol import SCHEMA_VERSION, topics
from protocol.crypto import load_private_pem, load_public_pem
from protocol.records import record_hash
from protocol.wire import MAX_BATCH_RECORDS, WireError, decode_msg, encode_msg, open_config, seal_batch

log = logging.getLogger("jiancha.agent.sync")
SOFTWARE = "jiancha-agent/0.1"


class Syncer:
    """Owns the MQTT connection of one site and the drain loop."""

    def __init__(self, cfg: AgentConfig, store: AgentStore, clock: BoxClock):
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.site = cfg.site.code
        self.sign_key = load_private_pem(cfg.sign_key.read_bytes(), "ed25519")
        self.hub_seal = load_public_pem(cfg.hub.seal_pub.read_bytes(), "x25519")
        self.hub_verify = load_public_pem(cfg.hub.sign_pub.read_bytes(), "ed25519")
        self.connected = False
        self.hub_online = False
        self.plan: DrainPlan | None = None
        self.bucket = TokenBucket(cfg.sync.rate_per_s, max(cfg.sync.batch_max_records, cfg.sync.rate_per_s / 10))
        self.last_progress = time.monotonic()
        self.counters = {
            "batches_sent": 0,
            "records_sent": 0,
            "acks": 0,
            "acks_diverged": 0,
            "rewinds": 0,
            "config_applied": 0,
            "config_refused": 0,
        }
        self.on_command: list = []  # fn(msg) for commands other than resync
        self.on_clip_ack: list = []  # fn(ack) for clip chunk acks
        self._trimmed_at = 0
        self.diverged = False
        self._stalls = 0
        self._hub_started = None  # the `ms` of the hub connection we last saw online
        self._hub_seen = False  # a hub state arrived since our connect
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        will = encode_msg({"online": False, "site": self.site, "epoch": store.epoch, "boot_id": clock.boot_id})
        self.client = make_tls_client(
            cfg.broker.client_id or f"site-{self.site}",
            cfg.broker.ca,
            cfg.broker.cert,
            cfg.broker.key,
            will=(topics.site_state(self.site), will),
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background and start draining."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.client.connect_async(self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive)
        self.client.loop_start()
        self._task = asyncio.create_task(self._drain_loop(), name="drain")

    async def stop(self) -> None:
        """Say goodbye (retained offline state) and disconnect."""
        await cancel(self._task)
        if self.connected:
            info = self.client.publish(topics.site_state(self.site), self._state(False), qos=1, retain=True)
            try:
                await asyncio.wait_for(asyncio.to_thread(info.wait_for_publish, 2.0), 3.0)
            except (TimeoutError, RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def publish_raw(self, topic: str, payload: bytes) -> None:
        """Publish bytes (QoS 1) if connected; callers resend on their own acks."""
        if self.connected:
            self.client.publish(topic, payload, qos=1)

    def kick(self) -> None:
        """A new record was written: wake the drain loop (thread-safe)."""
        if self._loop and self._wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    def status(self) -> dict:
        """Sync state for /api/health."""
        return {
            "connected": self.connected,
            "hub_online": self.hub_online,
            "diverged": self.diverged,
            "clock": self.clock.quality(),
            "hub_offset_s": self.clock.hub_offset_s,
            "inflight": self.plan.inflight() if self.plan else 0,
            **self.counters,
        }

    def _state(self, online: bool) -> bytes:
        c = self.store.counts()
        return encode_msg(
            {
                "online": online,
                "site": self.site,
                "software": SOFTWARE,
                "schema": SCHEMA_VERSION,
                "epoch": self.store.epoch,
                "boot_id": self.clock.boot_id,
                "last_seq": c["last_seq"],
                "acked_seq": c["acked_seq"],
                "backlog": c["backlog"],
                "clock": self.clock.quality(),
                "config": {"catalog": c["catalog_version"], "calendar": c["calendar_version"]},
                "ms": int(time.time() * 1000),
            }
        )

    # -- paho callbacks (paho's thread) -------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.warning("broker refused connection: %s", reason_code)
            return
        self.connected = True
        self._hub_seen = False
        client.subscribe([(topics.site_down_filter(self.site), 1), (topics.HUB_STATE, 1)])
        client.publish(topics.site_state(self.site), self._state(True), qos=1, retain=True)
        log.info("connected to broker %s:%s", self.cfg.broker.host, self.cfg.broker.port)
        self._call(self._restart_plan)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self.connected = False
        self.hub_online = False
        log.info("disconnected from broker: %s", reason_code)

    def _on_message(self, client, userdata, msg):
        try:
            self._handle(msg)
        except Exception:
            self.counters["callback_errors"] = self.counters.get("callback_errors", 0) + 1
            log.exception("handling a message on %s failed", msg.topic)
        self._call(lambda: None)

    def _handle(self, msg) -> None:
        try:
            if msg.topic == topics.HUB_STATE:
                st = decode_msg(msg.payload)
                online = bool(st.get("online"))
                # a hub (re)connected after our own connection: it holds our retained birth from
                # when we connected, which is stale (and after a restored database its records
                # are behind ours); announce again so it reconciles our backlog and acks now.
                # (The first hub state after our connect is older than our birth: nothing to do.)
                reborn = False
                if online:
                    started = st.get("ms")
                    reborn = self._hub_seen and (started is None or started != self._hub_started)
                    self._hub_started = started
                self._hub_seen = True
                if online and (reborn or not self.hub_online):
                    self._call(self._hub_online, reborn)
                self.hub_online = online
            elif msg.topic == topics.site_ack(self.site):
                self._call(self._on_ack, decode_msg(msg.payload))
            elif msg.topic.startswith(topics.site_config(self.site, "")):
                self._apply_config(msg.payload)
            elif msg.topic == topics.site_cmd(self.site):
                self._call(self._on_cmd, decode_msg(msg.payload))
            elif msg.topic == topics.site_clip_ack(self.site):
                ack = decode_msg(msg.payload)
                for fn in self.on_clip_ack:
                    fn(ack)
        except WireError as exc:
            log.warning("refused message on %s: %s", msg.topic, exc)

    def _call(self, fn, *args) -> None:
        if self._loop:

            def run():
                fn(*args)
                self._wake.set()

            self._loop.call_soon_threadsafe(run)

    def _apply_config(self, payload: bytes) -> None:
        try:
            cfg = open_config(payload, verify_key=self.hub_verify)
        except WireError as exc:
            self.counters["config_refused"] += 1
            log.warning("refused config not signed by our hub: %s", exc)
            return
        try:
            applied = self.store.save_config(cfg.kind, cfg.version, cfg.issued_ms, cfg.payload, payload)
        except ValueError as exc:  # signed by our hub but not usable by this software version
            self.counters["config_refused"] += 1
            log.error("refused %s config version %s: %s", cfg.kind, cfg.version, exc)
            return
        if applied:
            self.counters["config_applied"] += 1
            log.info("applied %s config version %s", cfg.kind, cfg.version)
            # keep our retained birth true: a hub that starts later reads which version we hold
            # from it, and one that read an older birth would push a version we then ignore
            if self.connected:
                self.client.publish(topics.site_state(self.site), self._state(True), qos=1, retain=True)

    # -- loop-side handlers ---------------------------------------------------------------------
    def _hub_online(self, reborn: bool) -> None:
        """The hub came (back) online: restart the drain from our ack; if it is a new hub
        connection, send a fresh birth after that (its answer, a resend request, must meet the
        restarted plan, not be undone by it)."""
        self._restart_plan()
        if reborn and self.connected:
            self.counters["births_resent"] = self.counters.get("births_resent", 0) + 1
            self.client.publish(topics.site_state(self.site), self._state(True), qos=1, retain=True)
            log.info("hub reconnected: announced ourselves again")

    def _restart_plan(self) -> None:
        self.plan = DrainPlan.start(self.store.acked_seq(), self.store.head_seq)
        self.last_progress = time.monotonic()

    def _on_ack(self, msg: dict) -> None:
        acked = msg.get("acked")
        hub_ms = msg.get("hub_ms")
        if isinstance(hub_ms, int):
            self.clock.observe_hub_time(hub_ms)
        if not isinstance(acked, int) or self.plan is None:
            return
        self.counters["acks"] += 1
        if acked > self.store.head_seq:
            # the hub holds more of "our" log than we ever wrote: this box was reset or reinstalled
            # under the same site code. Never mark our new records as synced; say it loudly.
            if not self.diverged:
                log.error(
                    "DIVERGED: the hub acknowledges seq %d but this box's log ends at %d (epoch %s). "
                    "The box was reset; re-provision it under a new site code (docs/operations.md).",
                    acked,
                    self.store.head_seq,
                    self.store.epoch,
                )
            self.diverged = True
            return
        conflict = msg.get("conflict")
        if (
            isinstance(conflict, int)
            and 0 < conflict <= self.store.head_seq
            and not self.diverged
            and self._same_record(conflict, msg.get("conflict_hash"), missing=False)
        ):
            # the hub turned away OUR record at that seq (the ack topic is shared by every box
            # using this identity: an ack about the other box's record says nothing about ours)
            log.error(
                "DIVERGED: the hub holds a different record %d under this site's identity (epoch %s): "
                "another box may use it, or this box was reset. Records from %d on stay unsynced here; "
                "see docs/operations.md.",
                conflict,
                self.store.epoch,
                conflict,
            )
            self.diverged = True
        if acked > 0 and not self._same_record(acked, msg.get("acked_hash")):
            # the hub holds a different record at that seq: another box uses this identity, or
            # this one was reset. Our records are not the ones the hub has: never mark them synced.
            if not self.diverged:
                log.error(
                    "DIVERGED: the hub's record %d is not this box's (epoch %s): another box may use "
                    "this site's identity, or this box was reset. Its records stay unsynced here; "
                    "see docs/operations.md.",
                    acked,
                    self.store.epoch,
                )
            self.diverged = True
            self.counters["acks_diverged"] += 1
            return
        if self.plan.on_ack(acked):
            self.store.set_acked(acked)
            self.last_progress = time.monotonic()
            self._stalls = 0
            if self.plan.is_idle(self.store.head_seq) and self.counters["records_sent"] - self._trimmed_at > 1000:
                self._trimmed_at = self.counters["records_sent"]
                release_memory()  # a drained backlog leaves freed heap behind
        resend = msg.get("resend_from")
        if isinstance(resend, int) and resend >= 1:
            self.counters["rewinds"] += 1
            self.plan.rewind(resend)

    def _same_record(self, seq: int, acked_hash, missing: bool = True) -> bool:
        """Whether our record at `seq` has that hash (`missing` when the hub sent none: hubs
        older than the hash in acks are trusted as before)."""
        if not isinstance(acked_hash, str) or not acked_hash:
            return missing
        enc = self.store.read_log(seq, seq)
        return bool(enc) and record_hash(enc[0]).hex() == acked_hash

    def _on_cmd(self, msg: dict) -> None:
        if msg.get("cmd") == "resync":
            if self.plan is not None:
                self.counters["rewinds"] += 1
                self.plan.rewind(int(msg.get("from", 1)))
            return
        for fn in self.on_command:  # devices: sign_text, clip, ...
            try:
                fn(msg)
            except Exception:
                log.exception("command %r failed", msg.get("cmd"))

    # -- drain ------------------------------------------------------------------------------------
    async def _drain_loop(self) -> None:
        cfg = self.cfg.sync
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()
            if not (self.connected and self.hub_online and self.plan):
                continue
            try:
                await self._drain_once(cfg)
            except Exception:
                self.counters["drain_errors"] = self.counters.get("drain_errors", 0) + 1
                log.exception("drain pass failed; retrying")
                await asyncio.sleep(2.0)

    async def _drain_once(self, cfg) -> None:
        self._check_stall(cfg.ack_timeout_s)
        while self.connected and self.hub_online:
            rng = self.plan.next_range(self.store.head_seq, cfg.batch_max_records, cfg.max_inflight_records)
            if rng is None:
                break
            delay = self.bucket.wait_time(rng[1] - rng[0] + 1, time.monotonic())
            if delay:
                await asyncio.sleep(delay)
            if not self._send(*rng):
                # paho's queue is full (a half-open link): send nothing more; the stall rewind resends
                break
            await asyncio.sleep(0)

    def _check_stall(self, timeout: float) -> None:
        # consecutive stalls wait longer each time (10 s, 20 s, ... 5 min): a slow hub is not
        # buried under every box's whole window again and again
        wait = min(timeout * 2**self._stalls, 300.0)
        if self.plan.inflight() and time.monotonic() - self.last_progress > wait:
            log.info(
                "no ack for %.0fs with %d in flight: resending from %d", wait, self.plan.inflight(), self.plan.acked + 1
            )
            self.counters["rewinds"] += 1
            self._stalls += 1
            self.plan = DrainPlan.start(self.plan.acked, self.store.head_seq)
            self.last_progress = time.monotonic()

    def _send(self, first: int, last: int) -> bool:
        """Seal and publish first..last; False when paho refused (queue full, not connected)."""
        data = self.store.read_log(first, last)
        if len(data) != last - first + 1:
            log.error("log read %d..%d returned %d records", first, last, len(data))
            return False
        for start, chunk in split_by_size(first, data, BATCH_BYTES):
            payload = seal_batch(
                self.site,
                chunk,
                sign_key=self.sign_key,
                hub_seal_pub=self.hub_seal,
                sent_ms=int(time.time() * 1000),
                first_seq=start,
            )
            info = self.client.publish(topics.site_batch(self.site), payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.counters["publish_refused"] = self.counters.get("publish_refused", 0) + 1
                return False
            self.counters["batches_sent"] += 1
            self.counters["records_sent"] += len(chunk)
        return True


BATCH_BYTES = 512 * 1024  # well under the wire limit (1 MiB) and Mosquitto's packet limit


def split_by_size(first: int, data: list[bytes], limit: int) -> list[tuple[int, list[bytes]]]:
    """Contiguous chunks of encoded records, each at most `limit` bytes (one record at least)."""
    out, chunk, size, start = [], [], 0, first
    for i, rec in enumerate(data):
        if chunk and (size + len(rec) > limit or len(chunk) >= MAX_BATCH_RECORDS):
            out.append((start, chunk))
            chunk, size, start = [], 0, first + i
        chunk.append(rec)
        size += len(rec) + 3
    if chunk:
        out.append((start, chunk))
    return out
