"""Provisioning (开通) steps behind `jiancha provision ...`: init-hub, add-site, revoke-site.

Layout of a hub directory (all paths inside the YAML files are relative to the file):

    hub.yaml            HubConfig (admin token, keys, broker client settings)
    registry.yaml       Registry of sites (public signing keys, revoked flags)
    ca/                 ca.key, ca.crt, crl.pem, serials/index
    hub/                sign.key/.pub (Ed25519), seal.key/.pub (X25519), mqtt.crt/.key (CN hub),
                        https.crt/.key (the web's HTTPS certificate, with --https-name / hub-https)
    broker/             mosquitto.conf, acl, server.crt/.key, ca.crt, crl.pem, data/, conf.d/,
                        tool.crt/.key (CN jc-broker-tool: the broker runner's probe and sweep)
    sites/CODE/         agent.yaml, sign.key/.pub, mqtt.crt/.key (CN CODE), ca.crt,
                        hub_sign.pub, hub_seal.pub -- copy this folder to the site's box
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from agent.config import AgentConfig, AgentHttp, AgentHub, AgentSite, load_board
from hub.config import HubApi, HubConfig, HubKeys, HubTls, Registry, RegistrySite
from hub.workers import MAX_WORKERS, worker_cert_paths, worker_identity
from iobase.config import (
    BROKER_TOOL_IDENTITY,
    HUB_IDENTITY,
    BrokerClient,
    ConfigError,
    dump_config,
    load_config,
    validate_site_code,
)
from iobase.files import make_private, private_dir
from provisioning.broker import signal_reload
from provisioning.brokerconf import BrokerLayout, write_acl, write_broker_conf
from provisioning.ca import CertificateAuthority, web_san, write_private, write_public
from provisioning.errors import ProvisioningError

WEB_CERT = Path("hub/https.crt")  # the web's HTTPS certificate and key, relative to the hub directory
WEB_KEY = Path("hub/https.key")
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991


def _now_iso() -> str:
    return dt.datetime.now(CHINA_TZ).isoformat(timespec="seconds")


def _write_keypair(kind: Literal["ed25519", "x25519"], key_path: Path, pub_path: Path) -> bytes:
    """New key pair as PKCS8 PEM (0600) + SubjectPublicKeyInfo PEM; returns the public PEM."""
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else x25519.X25519PrivateKey.generate()
    write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_public(pub_path, pub)
    return pub


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One provisioning step at a time per hub directory (registry and index are rewritten)."""
    with open(os.open(root / ".provision.lock", os.O_RDWR | os.O_CREAT, 0o600), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def init_hub(
    dir: Path,
    *,
    region: str,
    name: str,
    level: str = "city",
    broker_host: str = "127.0.0.1",
    broker_port: int = 8883,
    http_port: int = 8080,
    https_names: list[str] | None = None,
) -> Path:
    """Create a hub directory: CA, hub keys, broker config, empty registry; returns hub.yaml.
    With `https_names` (DNS names / IP addresses) also the web's HTTPS certificate from the
    project CA (hub/https.crt/.key) and api.tls naming it: the hub then serves HTTPS only."""
    root = Path(dir)
    hub_yaml = root / "hub.yaml"
    if hub_yaml.exists():
        raise ProvisioningError(
            f"{hub_yaml} already exists; refusing to overwrite a provisioned "
            f"hub (choose another --dir, or remove it deliberately)"
        )
    if (root / "ca" / "ca.key").exists():
        raise ProvisioningError(
            f"{root / 'ca' / 'ca.key'} exists but hub.yaml does not: a previous "
            f"init-hub stopped halfway; remove {root} and run it again"
        )
    if not region.strip() or not name.strip():
        raise ProvisioningError("--region and --name must not be empty")
    if not broker_host.strip():
        raise ProvisioningError("--broker-host must not be empty")
    for https_name in https_names or []:
        web_san(https_name)  # raises CAError naming the bad one, before anything is written
    try:  # validate everything before writing anything
        config = HubConfig(
            region=region,
            name=name,
            level=level,
            broker=BrokerClient(
                host=broker_host,
                port=broker_port,
                ca=Path("ca/ca.crt"),
                cert=Path("hub/mqtt.crt"),
                key=Path("hub/mqtt.key"),
                client_id=f"hub-{secrets.token_hex(8)}",
            ),
            keys=HubKeys(sign_key=Path("hub/sign.key"), seal_key=Path("hub/seal.key")),
            api=HubApi(
                port=http_port,
                admin_token=secrets.token_urlsafe(32),
                tls=HubTls(cert=WEB_CERT, key=WEB_KEY) if https_names else None,
            ),
        )
    except ValueError as exc:
        raise ProvisioningError(f"invalid hub settings: {exc}") from None
    private_dir(root)  # 0700: hub.yaml holds tokens, data/ the personal data of every site
    ca = CertificateAuthority.create(root / "ca", region)
    hub = root / "hub"
    _write_keypair("ed25519", hub / "sign.key", hub / "sign.pub")
    _write_keypair("x25519", hub / "seal.key", hub / "seal.pub")
    ca.issue_client(HUB_IDENTITY, hub / "mqtt.crt", hub / "mqtt.key")
    if https_names:
        ca.issue_web(list(https_names), root / WEB_CERT, root / WEB_KEY)
    layout = BrokerLayout(root)
    ca.issue_server(broker_host, layout.server_crt, layout.server_key)
    ca.issue_client(BROKER_TOOL_IDENTITY, layout.tool_crt, layout.tool_key)
    _publish_ca_files(ca, layout)
    dump_config(Registry(), root / config.registry)
    write_acl(root, Registry())
    private_dir(root / config.data_dir)
    private_dir(root / "sites")
    dump_config(config, hub_yaml)  # last: its presence means "fully provisioned"
    write_broker_conf(root)
    return hub_yaml


def ensure_broker_tool(dir: Path) -> bool:
    """Give a hub directory made by an older version the broker tool's identity: a client
    certificate CN jc-broker-tool in broker/tool.crt/.key (0600 key) and its ACL entry.
    Returns True if anything was written. Called at every broker start (cheap when present).

    The broker runner probes and sweeps as this identity, never as the hub: with
    `use_username_as_clientid` a connection with the hub's certificate *is* the hub's session,
    and a clean-session probe would throw the hub off and wipe its queued batches.
    """
    root = Path(dir)
    layout = BrokerLayout(root)

    def acl_has_tool() -> bool:
        try:
            return f"user {BROKER_TOOL_IDENTITY}" in layout.acl.read_text(encoding="utf-8").splitlines()
        except OSError:
            return False

    if layout.tool_crt.is_file() and layout.tool_key.is_file() and acl_has_tool():
        return False
    with _locked_hub(root):
        _, _, registry = _load_hub(root)
        wrote = False
        if not (layout.tool_crt.is_file() and layout.tool_key.is_file()):
            CertificateAuthority(root / "ca").issue_client(BROKER_TOOL_IDENTITY, layout.tool_crt, layout.tool_key)
            wrote = True
        if not acl_has_tool():
            write_acl(root, registry)
            wrote = True
    return wrote


def _publish_ca_files(ca: CertificateAuthority, layout: BrokerLayout) -> None:
    """Copy the CA certificate and current CRL where Mosquitto reads them."""
    write_public(layout.ca_crt, ca.cert_path.read_bytes())
    write_public(layout.crl, ca.crl_path.read_bytes())


def _load_hub(root: Path) -> tuple[HubConfig, Path, Registry]:
    hub_yaml = root / "hub.yaml"
    if not hub_yaml.exists():
        raise ProvisioningError(f"{hub_yaml} not found; run `jiancha provision init-hub --dir {root}` first")
    try:
        hub = load_config(hub_yaml, HubConfig)
        registry = load_config(hub.registry, Registry)
    except ConfigError as exc:
        raise ProvisioningError(str(exc)) from None
    return hub, hub.registry, registry


def add_site(dir: Path, *, code: str, name: str, board: str = "generic") -> Path:
    """Provision a site: keys, client certificate CN=code, agent.yaml; returns agent.yaml."""
    root = Path(dir)
    try:
        validate_site_code(code)
    except ValueError as exc:
        raise ProvisioningError(str(exc)) from None
    if not name.strip():
        raise ProvisioningError("--name must not be empty")
    load_board(board)  # raises BoardError naming the board and what is wrong
    with _locked_hub(root):
        hub, registry_path, registry = _load_hub(root)
        for s in registry.sites:
            if s.code.lower() == code.lower():
                state = f"revoked at {s.revoked_at}" if s.revoked else f"added at {s.added_at}"
                raise ProvisioningError(
                    f"site {s.code!r} is already in {registry_path} ({state}); site codes are never reused"
                )
        folder = root / "sites" / code
        if folder.exists():
            raise ProvisioningError(f"{folder} already exists but is not in the registry; move it away first")
        sign_pub = _write_site_folder(root, folder, hub, code=code, name=name, board=board)
        registry.sites.append(
            RegistrySite(code=code, name=name, board=board, sign_pub=sign_pub.decode("ascii"), added_at=_now_iso())
        )
        dump_config(registry, registry_path)
        write_acl(root, registry)
    signal_reload(root)
    return folder / "agent.yaml"


def _write_site_folder(root: Path, folder: Path, hub: HubConfig, *, code: str, name: str, board: str) -> bytes:
    """sites/CODE/: keys, client certificate, hub public keys, agent.yaml; returns sign.pub."""
    private_dir(folder.parent)
    folder.mkdir(mode=0o700)
    private_dir(folder)
    private_dir(folder / "data")  # agent.yaml's data_dir: agent.db (names, ID numbers, phones)
    sign_pub = _write_keypair("ed25519", folder / "sign.key", folder / "sign.pub")
    ca = CertificateAuthority(root / "ca")
    ca.issue_client(code, folder / "mqtt.crt", folder / "mqtt.key")
    write_public(folder / "ca.crt", ca.cert_path.read_bytes())
    write_public(folder / "hub_sign.pub", (root / "hub" / "sign.pub").read_bytes())
    write_public(folder / "hub_seal.pub", (root / "hub" / "seal.pub").read_bytes())
    agent = AgentConfig(
        site=AgentSite(code=code, name=name, board=board),
        hub=AgentHub(sign_pub=Path("hub_sign.pub"), seal_pub=Path("hub_seal.pub")),
        broker=BrokerClient(
            host=hub.broker.host,
            port=hub.broker.port,
            ca=Path("ca.crt"),
            cert=Path("mqtt.crt"),
            key=Path("mqtt.key"),
            client_id=f"site-{code}-{secrets.token_hex(8)}",
        ),
        sign_key=Path("sign.key"),
        http=AgentHttp(token=secrets.token_urlsafe(32)),
    )
    dump_config(agent, folder / "agent.yaml")
    return sign_pub


def add_hub_workers(dir: Path, *, count: int) -> list[Path]:
    """Broker identities for `count` ingest workers (jc-hub-1 … jc-hub-N; `jiancha hub run
    --workers N`): a client certificate each in hub/workers/, their ACL entries (the hub's), and
    workers.count in hub.yaml. Identities already issued are kept; returns the new certificates."""
    root = Path(dir)
    if not 1 <= count <= MAX_WORKERS:
        raise ProvisioningError(f"--count {count}: between 1 and {MAX_WORKERS}")
    issued = []
    with _locked_hub(root):
        hub, _, registry = _load_hub(root)
        ca = CertificateAuthority(root / "ca")
        for k in range(1, count + 1):
            crt, key = worker_cert_paths(hub, k)
            if crt.is_file() and key.is_file():
                continue
            private_dir(crt.parent)
            ca.issue_client(worker_identity(k), crt, key)
            issued.append(crt)
        if count > hub.workers.count:
            _set_workers_count(root / "hub.yaml", count)
        write_acl(root, registry, max(count, hub.workers.count))
    signal_reload(root)
    return issued


def hub_https(dir: Path, *, names: list[str]) -> Path:
    """Issue (or renew) the web's HTTPS certificate of an existing hub from the project CA:
    hub/https.crt/.key (key 0600), SANs `names`, and api.tls in hub.yaml naming them (replacing
    an operator's own certificate named there). Takes effect at the hub's next start; returns
    the certificate's path."""
    import yaml

    root = Path(dir)
    if not names:
        raise ProvisioningError("give at least one --name (a DNS name or IP address the operators' browsers use)")
    for name in names:
        web_san(name)
    with _locked_hub(root):
        _load_hub(root)  # a readable, valid hub.yaml before anything is issued
        hub_yaml = root / "hub.yaml"
        raw = yaml.safe_load(hub_yaml.read_text(encoding="utf-8"))
        raw.setdefault("api", {})["tls"] = {"cert": str(WEB_CERT), "key": str(WEB_KEY)}
        HubConfig.model_validate(raw)
        CertificateAuthority(root / "ca").issue_web(list(names), root / WEB_CERT, root / WEB_KEY)
        write_private(hub_yaml, yaml.safe_dump(raw, allow_unicode=True, sort_keys=False).encode("utf-8"))
    return root / WEB_CERT


def _set_workers_count(hub_yaml: Path, count: int) -> None:
    """workers.count in hub.yaml, everything else as written (paths stay relative)."""
    import yaml

    raw = yaml.safe_load(hub_yaml.read_text(encoding="utf-8"))
    raw.setdefault("workers", {})["count"] = count
    HubConfig.model_validate(raw)
    write_private(hub_yaml, yaml.safe_dump(raw, allow_unicode=True, sort_keys=False).encode("utf-8"))


def revoke_site(dir: Path, *, code: str) -> None:
    """Revoke a site: registry flag, certificate on the CRL, ACL without it, broker reloaded."""
    root = Path(dir)
    with _locked_hub(root):
        _, registry_path, registry = _load_hub(root)
        site = next((s for s in registry.sites if s.code == code), None)
        if site is None:
            raise ProvisioningError(f"site {code!r} is not in {registry_path}")
        if site.revoked:
            raise ProvisioningError(f"site {code!r} was already revoked at {site.revoked_at}")
        site.revoked = True
        site.revoked_at = _now_iso()
        write_acl(root, registry)  # first: the ACL is what cuts off a live connection
        ca = CertificateAuthority(root / "ca")
        ca.revoke_identity(code)
        _publish_ca_files(ca, BrokerLayout(root))
        dump_config(registry, registry_path)
    signal_reload(root)


def tighten_modes(root: Path) -> None:
    """Bring a hub directory written by an older version to 0600 secrets in 0700 folders:
    the folders, config files, private keys and databases (public files keep 0644)."""
    root = Path(root)
    folders = [
        root,
        root / "ca",
        root / "ca" / "serials",
        root / "hub",
        root / "broker",
        root / "broker" / "data",
        root / "broker" / "conf.d",
        root / "data",
        root / "sites",
    ]
    sites = root / "sites"
    if sites.is_dir():
        for site in sites.iterdir():
            if site.is_dir() and not site.is_symlink():
                folders += [site, site / "data"]
    children = root / "children"  # child-hub bundles (provisioning/child_hub.py)
    if children.is_dir():
        folders.append(children)
        folders += [c for c in children.iterdir() if c.is_dir() and not c.is_symlink()]
    folders.append(root / "parent")  # this hub's own bundle from its parent
    files = [root / "hub.yaml", root / "registry.yaml", root / ".provision.lock"]
    for folder in folders:
        if not folder.is_dir():
            continue
        make_private(folder)
        for f in folder.iterdir():
            if f.is_file() and (f.suffix in (".key", ".yaml", ".db") or f.name.endswith(("-wal", "-shm"))):
                files.append(f)
    for f in files:
        if f.is_file():
            make_private(f)


@contextlib.contextmanager
def _locked_hub(root: Path) -> Iterator[None]:
    if not (root / "hub.yaml").exists():
        raise ProvisioningError(f"{root / 'hub.yaml'} not found; run `jiancha provision init-hub --dir {root}` first")
    with _locked(root):
        tighten_modes(root)
        yield
