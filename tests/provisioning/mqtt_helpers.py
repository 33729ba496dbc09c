"""Reusable helpers for tests against a real Mosquitto with the generated TLS config.

    root = provision(tmp_path, sites=["S01", "S02"])
    with ManagedBroker(root, port=free_port()) as broker:
        hub = connect(root, "hub", broker)
        hub.subscribe(topics.ALL_BATCHES)
        site = connect(root, "S01", broker)
        site.publish(topics.site_batch("S01"), b"x")
        assert hub.wait_for(topics.site_batch("S01")).payload == b"x"

The broker names every session after the certificate's CN (`use_username_as_clientid`): two
clients with one certificate throw each other off (and paho's reconnect makes them take turns),
so a test that needs two parties at once uses two identities -- a site, the hub, the broker
tool, or one made with `issue_identity`.

Negative checks need no sleeps: MQTT keeps one publisher's messages in order, so publish the
forbidden message, then an allowed one, and once the allowed one has arrived the forbidden
one would have arrived before it (`assert_not_received`).
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from iobase.config import BROKER_TOOL_IDENTITY, HUB_IDENTITY
from provisioning.broker import ManagedBroker
from provisioning.brokerconf import BrokerLayout
from provisioning.ca import CertificateAuthority
from provisioning.setup import add_site, init_hub
from tests.ports import free_port

__all__ = [
    "ManagedBroker",
    "free_port",
    "provision",
    "tls_files",
    "TlsFiles",
    "connect",
    "try_connect",
    "TestClient",
    "start_broker",
    "issue_identity",
]

TIMEOUT = 5.0


def provision(
    root: Path,
    sites: Iterable[str] = ("S01", "S02"),
    *,
    board: str = "generic",
    region: str = "140700",
    port: int = 8883,
) -> Path:
    """init_hub + add_site for each code; returns the hub directory."""
    init_hub(root, region=region, name="测试市政务服务中心", broker_port=port)
    for code in sites:
        add_site(root, code=code, name=f"{code} 便民服务中心", board=board)
    return root


def start_broker(root: Path, port: int | None = None, **kw) -> ManagedBroker:
    """A ManagedBroker on a free port (call .close() or use it as a context manager)."""
    return ManagedBroker(root, port=port or free_port(), **kw)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path | None
    key: Path | None


def tls_files(root: Path, identity: str) -> TlsFiles:
    """CA, certificate and key of `identity` ("hub", the broker tool, a site code, or one made
    by `issue_identity`) in a hub directory."""
    root = Path(root)
    if identity == HUB_IDENTITY:
        return TlsFiles(root / "ca" / "ca.crt", root / "hub" / "mqtt.crt", root / "hub" / "mqtt.key")
    if identity == BROKER_TOOL_IDENTITY:
        lay = BrokerLayout(root)
        return TlsFiles(lay.ca_crt, lay.tool_crt, lay.tool_key)
    extra = root / "test-identities" / identity
    if extra.is_dir():
        return TlsFiles(root / "ca" / "ca.crt", extra / "mqtt.crt", extra / "mqtt.key")
    site = root / "sites" / identity
    return TlsFiles(site / "ca.crt", site / "mqtt.crt", site / "mqtt.key")


def issue_identity(
    root: Path, identity: str, acl_lines: Iterable[str], broker: ManagedBroker | None = None
) -> TlsFiles:
    """A test-only identity: a client certificate from the hub's CA (DIR/test-identities/) and
    `topic ...` ACL lines appended to DIR/broker/acl (until add-site/revoke-site rewrite it);
    reloads `broker` so the lines apply. Use a CN that cannot be a site code ("jc-test-...")."""
    root = Path(root)
    folder = root / "test-identities" / identity
    CertificateAuthority(root / "ca").issue_client(identity, folder / "mqtt.crt", folder / "mqtt.key")
    acl = BrokerLayout(root).acl
    text = acl.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
    acl.write_text(text + "\n".join([f"user {identity}", *acl_lines]) + "\n", encoding="utf-8")
    if broker is not None:
        broker.reload()
    return tls_files(root, identity)


class TestClient:
    """A connected paho 2.x client that records every message it receives."""

    __test__ = False  # not a pytest class

    def __init__(self, client: mqtt.Client, name: str) -> None:
        self.client = client
        self.name = name
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.received: list[mqtt.MQTTMessage] = []
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.failed = threading.Event()  # refused, or the connection could not be made
        self.connack: mqtt.ReasonCode | None = None
        self.session_present = False
        self._subacks: dict[int, tuple[threading.Event, list]] = {}
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = lambda client, userdata: self.failed.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code
        self.session_present = bool(flags.session_present)
        if reason_code.is_failure:
            self.failed.set()
        else:
            self.disconnected.clear()
            self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self.connected.is_set():
            self.failed.set()  # cut off before a CONNACK: TLS refused the certificate
        self.connected.clear()
        self.disconnected.set()

    def _on_message(self, client, userdata, msg) -> None:
        self.received.append(msg)
        self.messages.put(msg)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        ev, out = self._subacks.setdefault(mid, (threading.Event(), []))
        out.extend(reason_codes)
        ev.set()

    def subscribe(self, topic: str, qos: int = 1, timeout: float = TIMEOUT) -> list:
        """Subscribe and wait for the SUBACK; returns its reason codes."""
        ev, out = threading.Event(), []
        rc, mid = self.client.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: subscribe {topic}: {rc}"
        ev, out = self._subacks.setdefault(mid, (ev, out))
        assert ev.wait(timeout), f"{self.name}: no SUBACK for {topic}"
        return out

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False, timeout: float = TIMEOUT
    ) -> None:
        """Publish and wait until the broker acknowledged it (PUBACK for QoS 1)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)

    def wait_for(self, topic: str, timeout: float = TIMEOUT, payload: bytes | None = None) -> mqtt.MQTTMessage:
        """The next message on `topic` (optionally with `payload`); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: nothing on {topic} within {timeout} s; got {[m.topic for m in self.received]}"
                )
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if msg.topic == topic and (payload is None or msg.payload == payload):
                return msg

    def topics_received(self) -> list[str]:
        return [m.topic for m in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _client(
    root: Path, identity: str, client_id: str | None, clean_session: bool, files: TlsFiles | None
) -> mqtt.Client:
    files = files or tls_files(root, identity)
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"test-{identity}-{time.monotonic_ns()}" if client_id is None else client_id,
        clean_session=clean_session,
    )
    c.tls_set(
        ca_certs=str(files.ca),
        certfile=str(files.cert) if files.cert else None,
        keyfile=str(files.key) if files.key else None,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    c.tls_insecure_set(False)
    c.reconnect_delay_set(0.1, 1)
    return c


def connect(
    root: Path,
    identity: str,
    broker: ManagedBroker | int,
    *,
    client_id: str | None = None,
    clean_session: bool = True,
    files: TlsFiles | None = None,
    timeout: float = TIMEOUT,
) -> TestClient:
    """Connect as `identity` with its client certificate and wait for a successful CONNACK."""
    port = broker if isinstance(broker, int) else broker.port
    tc = TestClient(_client(root, identity, client_id, clean_session, files), identity)
    tc.client.connect("127.0.0.1", port, keepalive=30)
    tc.client.loop_start()
    if not tc.connected.wait(timeout):
        tc.close()
        raise AssertionError(f"{identity}: no successful CONNACK within {timeout} s (connack={tc.connack})")
    return tc


def try_connect(
    root: Path, identity: str, broker: ManagedBroker | int, *, files: TlsFiles | None = None, timeout: float = 2.0
) -> bool:
    """True if `identity` (or `files`) gets a successful CONNACK; False if refused or cut off."""
    port = broker if isinstance(broker, int) else broker.port
    tc = TestClient(_client(root, identity, None, True, files), identity)
    try:
        tc.client.connect("127.0.0.1", port, keepalive=30)
    except (OSError, ssl.SSLError):
        return False
    tc.client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if tc.connected.is_set():
                return True
            if tc.failed.is_set():
                return False
            time.sleep(0.01)
        return False
    finally:
        tc.close()
