"""The mutual-TLS MQTT client both sides use (paho-mqtt 2.x): the box's syncer and the hub's link."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt


def make_tls_client(
    client_id: str, ca, cert, key, *, will: tuple[str, bytes] | None = None, clean_session: bool = True
) -> mqtt.Client:
    """A paho 2.x client with mutual TLS (the agent's outbox is its session: clean by default)."""
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, protocol=mqtt.MQTTv311
    )
    c.tls_set(
        ca_certs=str(ca),
        certfile=str(cert),
        keyfile=str(key),
        cert_reqs=ssl.CERT_REQUIRED,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    c.reconnect_delay_set(min_delay=1, max_delay=5)  # a box must start draining soon after the network returns
    c.suppress_exceptions = True  # an error in one callback must never kill paho's network thread
    c.max_queued_messages_set(2000)  # bounded: publish fails (and the drain rewinds) rather than fill RAM
    c.max_inflight_messages_set(100)
    if will:
        c.will_set(will[0], will[1], qos=1, retain=True)
    return c
