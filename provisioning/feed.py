"""Provisioning of a feed consumer: a third-party platform reading this hub's feed (docs/feed.md).

`add_feed` writes DIR/feeds/feed-NAME/: the consumer's X25519 key (the feed is sealed to it),
a client certificate CN = feed-NAME from the hub's CA, the CA, the hub's public signing key and
FEED.yaml (paths relative to FEED.yaml, so the folder can be copied anywhere); registers the feed
in the registry as a sender of kind "feed"; issues the hub's feed-publisher identity (`jc-feed`,
beside the hub's own certificate) the first time; rewrites the ACL. Revocation is `revoke-site`
with the feed's id, as for a site.
"""

from __future__ import annotations

import re
from pathlib import Path

from hub.config import RegistrySite
from hub.feeds import publisher_cert_paths
from iobase.config import BrokerClient, dump_config, validate_site_code
from iobase.feedconfig import FeedConfig
from iobase.files import private_dir
from protocol.topics import FEED_PUBLISHER_IDENTITY
from provisioning.broker import signal_reload
from provisioning.brokerconf import write_acl
from provisioning.ca import CertificateAuthority, write_public
from provisioning.errors import ProvisioningError
from provisioning.setup import _load_hub, _locked_hub, _now_iso, _write_keypair

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,26}")
BUNDLE_FILES = ("FEED.yaml", "seal.key", "seal.pub", "mqtt.crt", "mqtt.key", "ca.crt", "hub_sign.pub")


def feed_id(name: str) -> str:
    """The feed's sender id (certificate CN, registry code, topic level)."""
    return f"feed-{name}"


def add_feed(dir: Path, *, name: str, title: str = "") -> Path:
    """Provision feed `name` on the hub in `dir`; returns the bundle folder for the consumer."""
    root = Path(dir)
    if not NAME_RE.fullmatch(name or ""):
        raise ProvisioningError(
            f"--name {name!r}: 1-27 lowercase letters, digits, '-' or '_' (e.g. shanxi-platform); "
            "it becomes the MQTT identity feed-NAME"
        )
    fid = validate_site_code(feed_id(name))
    with _locked_hub(root):
        hub, registry_path, registry = _load_hub(root)
        for s in registry.sites:
            if s.code.lower() == fid.lower():
                state = f"revoked at {s.revoked_at}" if s.revoked else f"added at {s.added_at}"
                raise ProvisioningError(f"{s.code!r} is already in {registry_path} ({state}); ids are never reused")
        folder = root / "feeds" / fid
        if folder.exists():
            raise ProvisioningError(f"{folder} already exists but is not in the registry; move it away first")
        private_dir(folder.parent)
        folder.mkdir(mode=0o700)
        private_dir(folder)
        seal_pub = _write_keypair("x25519", folder / "seal.key", folder / "seal.pub")
        ca = CertificateAuthority(root / "ca")
        ca.issue_client(fid, folder / "mqtt.crt", folder / "mqtt.key")
        write_public(folder / "ca.crt", ca.cert_path.read_bytes())
        write_public(folder / "hub_sign.pub", (root / "hub" / "sign.pub").read_bytes())
        crt, key = publisher_cert_paths(hub)
        if not (crt.is_file() and key.is_file()):
            private_dir(crt.parent)
            ca.issue_client(FEED_PUBLISHER_IDENTITY, crt, key)
        cfg = FeedConfig(
            feed=fid,
            hub=f"hub-{hub.region}",
            hub_name=hub.name,
            broker=BrokerClient(
                host=hub.broker.host,
                port=hub.broker.port,
                ca=Path("ca.crt"),
                cert=Path("mqtt.crt"),
                key=Path("mqtt.key"),
            ),
            seal_key=Path("seal.key"),
            hub_sign_pub=Path("hub_sign.pub"),
        )
        dump_config(cfg, folder / "FEED.yaml")
        registry.sites.append(
            RegistrySite(
                code=fid,
                name=title or name,
                kind="feed",
                sign_pub="",
                seal_pub=seal_pub.decode("ascii"),
                added_at=_now_iso(),
            )
        )
        dump_config(registry, registry_path)
        write_acl(root, registry)
    signal_reload(root)
    return folder
