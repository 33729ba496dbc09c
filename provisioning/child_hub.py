"""Provisioning of a child hub (county → city, city → province; DESIGN §7, docs/rollup.md).

On the parent: `add_child_hub` writes DIR/children/hub-REGION/ (the child's Ed25519 key, a
client certificate CN = hub-REGION from the parent's CA, the CA, the parent's public keys and
parent.yaml) and registers the child in the parent's registry as a sender of kind "hub"; the
parent's broker ACL then lets it write only its own up-topics. Revocation is `revoke-site`
with the child's sender id, as for a site.

On the child: `install_parent` copies that folder to CHILD/parent/ and adds parent.yaml as the
`parent:` section of the child's hub.yaml; `jiancha hub run` then forwards to the parent.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import yaml

from hub.config import HubConfig, HubParent, RegistrySite
from iobase.config import BrokerClient, ConfigError, dump_config, load_config, validate_site_code
from iobase.files import private_dir
from provisioning.broker import signal_reload
from provisioning.brokerconf import write_acl
from provisioning.ca import CertificateAuthority, write_private, write_public
from provisioning.errors import ProvisioningError
from provisioning.setup import _load_hub, _locked_hub, _now_iso, _write_keypair

REGION_RE = re.compile(r"[0-9]{6,12}")
BUNDLE_FILES = ("sign.key", "sign.pub", "mqtt.crt", "mqtt.key", "ca.crt", "parent_sign.pub", "parent_seal.pub")


def child_sender(region: str) -> str:
    """The sender id (certificate CN, registry code, topic level) of the child hub of `region`."""
    return f"hub-{region}"


def add_child_hub(dir: Path, *, code: str, name: str, level: str = "county") -> Path:
    """Provision a child hub under the hub in `dir`; returns the bundle folder for the child."""
    root = Path(dir)
    if not REGION_RE.fullmatch(code or ""):
        raise ProvisioningError(f"--code {code!r}: the child's region code, 6-12 digits (e.g. 140721)")
    if level not in ("county", "city"):
        raise ProvisioningError(f"--level {level!r}: county or city")
    if not name.strip():
        raise ProvisioningError("--name must not be empty")
    sender = validate_site_code(child_sender(code))
    with _locked_hub(root):
        hub, registry_path, registry = _load_hub(root)
        if hub.level == "county" or (hub.level == "city" and level != "county"):
            raise ProvisioningError(
                f"a {hub.level} hub cannot take a {level} child (county → city → province; DESIGN §7)"
            )
        for s in registry.sites:
            if s.code.lower() == sender.lower():
                state = f"revoked at {s.revoked_at}" if s.revoked else f"added at {s.added_at}"
                raise ProvisioningError(f"{s.code!r} is already in {registry_path} ({state}); ids are never reused")
        folder = root / "children" / sender
        if folder.exists():
            raise ProvisioningError(f"{folder} already exists but is not in the registry; move it away first")
        sign_pub = _write_bundle(root, folder, hub, sender)
        registry.sites.append(
            RegistrySite(
                code=sender,
                name=name,
                kind="hub",
                level=level,
                region=code,
                sign_pub=sign_pub.decode("ascii"),
                added_at=_now_iso(),
            )
        )
        dump_config(registry, registry_path)
        write_acl(root, registry)
    signal_reload(root)
    return folder


def _write_bundle(root: Path, folder: Path, hub: HubConfig, sender: str) -> bytes:
    """children/SENDER/: the child's key, certificate, CA, parent keys, parent.yaml."""
    private_dir(folder.parent)
    folder.mkdir(mode=0o700)
    private_dir(folder)
    sign_pub = _write_keypair("ed25519", folder / "sign.key", folder / "sign.pub")
    ca = CertificateAuthority(root / "ca")
    ca.issue_client(sender, folder / "mqtt.crt", folder / "mqtt.key")
    write_public(folder / "ca.crt", ca.cert_path.read_bytes())
    write_public(folder / "parent_sign.pub", (root / "hub" / "sign.pub").read_bytes())
    write_public(folder / "parent_seal.pub", (root / "hub" / "seal.pub").read_bytes())
    section = HubParent(  # paths relative to the child's hub directory once installed in parent/
        sender=sender,
        broker=BrokerClient(
            host=hub.broker.host,
            port=hub.broker.port,
            ca=Path("parent/ca.crt"),
            cert=Path("parent/mqtt.crt"),
            key=Path("parent/mqtt.key"),
            client_id=f"{sender}-{secrets.token_hex(6)}",
        ),
        sign_key=Path("parent/sign.key"),
        parent_seal_pub=Path("parent/parent_seal.pub"),
        parent_sign_pub=Path("parent/parent_sign.pub"),
    )
    dump_config(section, folder / "parent.yaml")
    return sign_pub


def install_parent(dir: Path, *, bundle: Path) -> Path:
    """Copy a child-hub bundle into DIR/parent/ and set hub.yaml's `parent:`; returns hub.yaml."""
    root, bundle = Path(dir), Path(bundle)
    hub_yaml = root / "hub.yaml"
    missing = [f for f in (*BUNDLE_FILES, "parent.yaml") if not (bundle / f).is_file()]
    if missing:
        raise ProvisioningError(f"{bundle}: not a child-hub bundle (missing {', '.join(missing)})")
    try:
        cfg = load_config(hub_yaml, HubConfig)
    except ConfigError as exc:
        raise ProvisioningError(str(exc)) from None
    raw = yaml.safe_load(hub_yaml.read_text(encoding="utf-8"))
    raw["parent"] = yaml.safe_load((bundle / "parent.yaml").read_text(encoding="utf-8"))
    sender = (raw["parent"] or {}).get("sender") if isinstance(raw["parent"], dict) else None
    if sender != child_sender(cfg.region):  # another county's bundle would speak under its id
        raise ProvisioningError(
            f"{bundle} was issued for {sender!r}, but this hub's region is {cfg.region} "
            f"(expected {child_sender(cfg.region)!r}); install the bundle issued for this hub"
        )
    if cfg.level == "province":
        raise ProvisioningError("a province hub has no parent hub")
    try:
        HubConfig.model_validate(raw)
    except ValueError as exc:
        raise ProvisioningError(f"{bundle / 'parent.yaml'}: {exc}") from None
    dest = root / "parent"
    private_dir(dest)
    for f in BUNDLE_FILES:
        data = (bundle / f).read_bytes()
        (write_private if f.endswith(".key") else write_public)(dest / f, data)
    write_private(hub_yaml, yaml.safe_dump(raw, allow_unicode=True, sort_keys=False).encode("utf-8"))
    return hub_yaml
