"""The hub's MQTT link: retained online state with a Will, ingest subscription, publishing."""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as mqtt

from hub.config import HubConfig
from iobase.mqtt import make_tls_client
from protocol import topics
from protocol.wire import encode_msg

log = logging.getLogger("jiancha.hub.mqtt")


class HubLink:
    """Connects as identity 'hub'; hands every up-message to `on_message(topic, payload)`."""

    def __init__(self, cfg: HubConfig, on_message):
        self.cfg = cfg
        self.on_message_cb = on_message
        self.connected = threading.Event()
        self.client = make_tls_client(
            cfg.broker.client_id or f"hub-{cfg.region}",
            cfg.broker.ca,
            cfg.broker.cert,
            cfg.broker.key,
            will=(topics.HUB_STATE, encode_msg({"online": False, "hub": cfg.name})),
            clean_session=False,
        )  # batches sent while we restart wait for us
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
            info = self.client.publish(topics.HUB_STATE, self._state(False), qos=1, retain=True)
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

    def _state(self, online: bool) -> bytes:
        return encode_msg(
            {"online": online, "hub": self.cfg.name, "region": self.cfg.region, "ms": int(time.time() * 1000)}
        )

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.warning("broker refused the hub: %s", reason_code)
            return
        client.subscribe([(topics.ALL_BATCHES, 1), (topics.ALL_STATES, 1), (topics.ALL_CLIPS, 1)])
        client.publish(topics.HUB_STATE, self._state(True), qos=1, retain=True)
        self.connected.set()
        log.info("hub connected to broker")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self.connected.clear()
        log.info("hub disconnected from broker: %s", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage):
        self.on_message_cb(msg.topic, msg.payload)
