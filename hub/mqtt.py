"""The hub's MQTT link: retained online state with a Will, ingest subscription, publishing."""

from __future__ import annotations

import logging
import os
import threading
import time

import paho.mqtt.client as mqtt

from hub.config import HubConfig
from iobase.mqtt import make_tls_client
from protocol import topics
from protocol.wire import encode_msg

log = logging.getLogger("jiancha.hub.mqtt")


SHARE_GROUP = "jc-hub"  # the shared subscription of ingest workers: $share/jc-hub/<filter>


def worker_state_topic(identity: str) -> str:
    """Where one ingest worker's online state (and Will) goes; the hub's state stays online
    while any worker lives."""
    return f"{topics.ROOT}/hub/worker/{identity}/state"


class HubLink:
    """Connects as identity 'hub' (or, as one of several ingest workers, as `identity` with its
    own certificate, on the shared subscription); hands every up-message to
    `on_message(topic, payload)`."""

    def __init__(self, cfg: HubConfig, on_message, *, identity: str | None = None, cert=None, key=None):
        self.cfg = cfg
        self.on_message_cb = on_message
        self.connected = threading.Event()
        self.identity = identity  # None: the one hub process
        # when this hub started, as its state tells the boxes: a worker under `hub run --workers`
        # tells its supervisor's start (hub/workers.py EPOCH_ENV), so restarting one alone is quiet
        epoch = os.environ.get("JIANCHA_HUB_EPOCH_MS", "") if identity else ""
        self.epoch_ms = int(epoch) if epoch.isdigit() else int(time.time() * 1000)
        # a worker's Will must not say the hub is offline: the other workers still ingest
        will_topic = worker_state_topic(identity) if identity else topics.HUB_STATE
        self.client = make_tls_client(
            identity or cfg.broker.client_id or f"hub-{cfg.region}",
            cfg.broker.ca,
            cert or cfg.broker.cert,
            key or cfg.broker.key,
            will=(will_topic, encode_msg({"online": False, "hub": cfg.name})),
            clean_session=False,
        )  # batches sent while we restart wait for us (a worker's share too: the broker keeps
        # queueing to a persistent session's share while it is away, and `hub run --workers`
        # restarts a dead worker under the same identity)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.max_queued_messages_set(0)

    def start(self) -> None:
        """Connect in the background."""
        self.client.connect_async(self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        """Publish offline state, then disconnect."""
        if self.connected.is_set():
            topic = worker_state_topic(self.identity) if self.identity else topics.HUB_STATE
            info = self.client.publish(topic, self._state(False), qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        """Publish bytes or a dict (encoded as a plain message); thread-safe."""
        if isinstance(payload, dict):
            payload = encode_msg(payload)
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def _ms(self) -> int:
        """The one hub: the time of this (re)connection, as always. A worker: its hub's start."""
        return self.epoch_ms if self.identity else int(time.time() * 1000)

    def _state(self, online: bool) -> bytes:
        state = {"online": online, "hub": self.cfg.name, "region": self.cfg.region, "ms": self._ms()}
        if self.identity:
            state["worker"] = self.identity
        return encode_msg(state)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.warning("broker refused the hub: %s", reason_code)
            return
        filters = [topics.ALL_BATCHES, topics.ALL_STATES, topics.ALL_CLIPS]
        filters += [topics.ALL_CHILD_BATCHES, topics.ALL_CHILD_STATES]  # child hubs (hub/children.py)
        if self.identity:  # each message to one worker. A shared subscription gets no retained
            # messages: the sites' births come again when they see this worker's new hub state
            filters = [f"$share/{SHARE_GROUP}/{f}" for f in filters]
            client.publish(worker_state_topic(self.identity), self._state(True), qos=1, retain=True)
        client.subscribe([(f, 1) for f in filters])
        client.publish(topics.HUB_STATE, self._state(True), qos=1, retain=True)
        self.connected.set()
        log.info("hub%s connected to broker", f" worker {self.identity}" if self.identity else "")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self.connected.clear()
        log.info("hub disconnected from broker: %s", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage):
        self.on_message_cb(msg.topic, msg.payload)
