"""Mosquitto configuration and ACL for a provisioned hub directory.

Text is built by pure functions (`mosquitto_conf_text`, `acl_text`); `write_broker_conf` and
`write_acl` put it into DIR/broker/. The conf holds absolute paths, so it is rendered again
at every broker start: a provisioned directory can be moved or copied as a whole.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from hub.config import HubConfig, Registry
from hub.workers import worker_identity
from iobase.config import BROKER_TOOL_IDENTITY, HUB_IDENTITY, load_config
from iobase.files import private_dir
from protocol import topics
from protocol.wire import MAX_BATCH_BYTES, MAX_CONFIG_BYTES
from provisioning.ca import write_public

# Size and queue bounds (issue 7, section 3). One township box holding its certificate must not
# be able to grow Mosquitto without limit: before these bounds, 150 x 8 MB publishes while the
# hub was down took Mosquitto from 18 MB to 1.19 GB, and 40 retained 8 MB messages left a 320 MB
# mosquitto.db that was reloaded at every start.
#
# Largest packet: the largest legitimate message is a sealed batch (MAX_BATCH_BYTES = 1 MiB, the
# hub refuses anything larger); clip chunks are 128 KiB (at most 256 KiB + 4 KiB); the hub's own
# publishes are small acks, commands and the signed config -- a catalog of ~5,000 items fits
# (`jiancha catalog import` refuses larger ones, see MAX_HUB_PUBLISH_BYTES). 64 KiB on top
# covers the fixed header, the topic and the envelope. Mosquitto reads the length prefix first
# and disconnects the client before allocating an oversize packet. This bound is global: it
# applies to the hub's connection too.
MAX_PACKET_SIZE = MAX_BATCH_BYTES + 64 * 1024  # 1,114,112 bytes
MAX_HUB_PUBLISH_BYTES = MAX_CONFIG_BYTES  # payloads the hub may publish (config)
# Queue per client beyond what is in flight. Agents only send while the hub's retained state
# says online and keep at most max_inflight_records unacknowledged, so the hub's queue holds
# little in normal operation; what a full queue drops (silently) the agents resend from their
# outbox after ack_timeout_s. 64 MiB is 60 full batches, or ~400 batches of the usual size.
MAX_QUEUED_MESSAGES = 10_000
MAX_QUEUED_BYTES = 64 * 1024 * 1024
# In flight per client: the count keeps the QoS 1 stream to the hub flowing without waiting for
# every PUBACK; the byte bound stops 100 full-size packets (~106 MB) waiting on one slow client.
MAX_INFLIGHT_MESSAGES = 100
MAX_INFLIGHT_BYTES = 8 * 1024 * 1024
# A retained up/state (birth/death) is a few hundred bytes; a larger one is cleared at start.
MAX_RETAINED_STATE_BYTES = 64 * 1024
AUTOSAVE_INTERVAL_S = 10
PERSISTENT_CLIENT_EXPIRATION = "30d"


@dataclass(frozen=True)
class BrokerLayout:
    """Where the broker files of a hub directory live."""

    root: Path  # DIR (the hub directory)

    @property
    def folder(self) -> Path:
        return self.root / "broker"

    conf = property(lambda self: self.folder / "mosquitto.conf")
    acl = property(lambda self: self.folder / "acl")
    server_crt = property(lambda self: self.folder / "server.crt")
    server_key = property(lambda self: self.folder / "server.key")
    ca_crt = property(lambda self: self.folder / "ca.crt")
    crl = property(lambda self: self.folder / "crl.pem")
    data = property(lambda self: self.folder / "data")
    conf_d = property(lambda self: self.folder / "conf.d")
    log = property(lambda self: self.folder / "mosquitto.log")
    pid = property(lambda self: self.folder / "broker.pid")
    # the broker runner's own client certificate (CN jc-broker-tool): probe and retained sweep
    tool_crt = property(lambda self: self.folder / "tool.crt")
    tool_key = property(lambda self: self.folder / "tool.key")
    tool_lock = property(lambda self: self.folder / "tool.lock")


def bind_address(host: str) -> str | None:
    """Address the listener binds to: the host if it is an IP, loopback for localhost, else all."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a DNS name may resolve to a NAT address we do not own: listen on all
    return host


def _run_as_user(folder: Path) -> str | None:
    """Mosquitto started as root drops to user `mosquitto` unless told otherwise; keep the
    owner of the broker folder so the ACL, CRL and persistence files stay readable/writable."""
    try:
        return pwd.getpwuid(folder.stat().st_uid).pw_name
    except (KeyError, OSError):
        return None


def mosquitto_conf_text(layout: BrokerLayout, *, host: str, port: int, user: str | None = None) -> str:
    """The broker configuration: one mTLS listener, identity = certificate CN, ACL, persistence."""
    f = layout.folder.resolve()
    bind = bind_address(host)
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        f"# Generated by jiancha at {stamp} from hub.yaml; rewritten at every broker start.",
        f"# Put local additions in {f / 'conf.d'}/*.conf -- they are kept.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {f / 'acl'}",
    ]
    if user:
        lines.append(f"user {user}")
    lines += [
        "",
        "# Persistence: queued QoS 1 messages and retained state survive a broker restart.",
        "persistence true",
        f"persistence_location {f / 'data'}/",
        f"autosave_interval {AUTOSAVE_INTERVAL_S}",
        f"persistent_client_expiration {PERSISTENT_CLIENT_EXPIRATION}",
        "",
        "# Bounds: one client cannot grow the broker without limit (a largest batch fits).",
        f"max_packet_size {MAX_PACKET_SIZE}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"max_inflight_bytes {MAX_INFLIGHT_BYTES}",
        "",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "connection_messages true",
        "",
        "# The only listener: TLS with client certificates. No plain 1883.",
        f"listener {port} {bind}" if bind else f"listener {port}",
        "protocol mqtt",
        f"cafile {f / 'ca.crt'}",
        f"certfile {f / 'server.crt'}",
        f"keyfile {f / 'server.key'}",
        f"crlfile {f / 'crl.pem'}",
        "require_certificate true",
        "use_identity_as_username true",
        "# Client id := username (the CN), whatever the client sends: one session per identity,",
        "# so no certificate can take over (or wipe) another identity's session.",
        "use_username_as_clientid true",
        "tls_version tlsv1.2",
        "",
        f"include_dir {f / 'conf.d'}",
        "",
    ]
    return "\n".join(lines)


def acl_text(registry: Registry, workers: int = 0) -> str:
    """ACL: the hub (and each of its `workers` ingest worker identities, jc-hub-1…) reads and
    writes the whole root; the broker tool only the sites' up-topics (for the retained sweep);
    each active site only its own topics.

    Identities that are not listed (revoked sites, unknown CNs) match no rule and get nothing.
    """
    out = [
        "# Generated by jiancha from registry.yaml; rewritten by add-site and revoke-site.",
        "# Username = TLS client certificate CN. Identities not listed here get no access.",
        "",
    ]
    out += topics.acl_lines_for_hub(HUB_IDENTITY) + [""]
    for k in range(1, workers + 1):
        out += topics.acl_lines_for_hub(worker_identity(k)) + [""]
    out += topics.acl_lines_for_broker_tool(BROKER_TOOL_IDENTITY) + [""]
    for code in sorted(registry.active()):
        out += topics.acl_lines_for_site(code) + [""]
    for code in sorted(registry.active_children()):  # child hubs: only their own child topics
        out += topics.acl_lines_for_child_hub(code) + [""]
    if registry.active_feeds():  # the hub's feed publisher and each feed: only feed topics (docs/feed.md)
        out += topics.acl_lines_for_feed_publisher() + [""]
    for code in sorted(registry.active_feeds()):
        out += topics.acl_lines_for_feed(code) + [""]
    return "\n".join(out)


def write_acl(root: Path, registry: Registry, workers: int | None = None) -> Path:
    """Write DIR/broker/acl for `registry` (and the worker identities hub.yaml counts)."""
    layout = BrokerLayout(Path(root))
    if workers is None:
        hub_yaml = Path(root) / "hub.yaml"
        workers = load_config(hub_yaml, HubConfig).workers.count if hub_yaml.exists() else 0
    write_public(layout.acl, acl_text(registry, workers).encode("utf-8"))
    return layout.acl


def write_broker_conf(root: Path, port: int | None = None) -> Path:
    """Render DIR/broker/mosquitto.conf from DIR/hub.yaml with absolute paths (port overridable)."""
    root = Path(root).resolve()
    hub = load_config(root / "hub.yaml", HubConfig)
    layout = BrokerLayout(root)
    for folder in (layout.folder, layout.data, layout.conf_d):
        private_dir(folder)  # data/ holds queued batches and retained state
    user = _run_as_user(layout.folder) if os.geteuid() == 0 else None
    text = mosquitto_conf_text(layout, host=hub.broker.host, port=port or hub.broker.port, user=user)
    write_public(layout.conf, text.encode("utf-8"))
    return layout.conf
