"""`jiancha provision agent-https`: a box's LAN HTTPS certificate (the clerk's window page) from the
project CA, as `provision hub-https` does for the hub's web (DESIGN §10)."""

from __future__ import annotations

from pathlib import Path

import yaml

from agent.config import AgentConfig
from iobase.config import ConfigError, load_config
from provisioning.ca import CertificateAuthority, web_san, write_private
from provisioning.errors import ProvisioningError
from provisioning.setup import _load_hub, _locked_hub

AGENT_CERT = Path("https.crt")  # relative to the site's folder (sites/CODE/), like its other files
AGENT_KEY = Path("https.key")


def agent_https(dir: Path, *, code: str, names: list[str]) -> Path:
    """Issue (or renew) sites/CODE/https.crt/.key (key 0600) with SANs `names` (the box's LAN
    address and/or name), and name them in the site's agent.yaml (http.tls). The agent then
    serves HTTPS only from its next start. Returns the certificate's path."""
    root = Path(dir)
    if not names:
        raise ProvisioningError("give at least one --name (the LAN address or name the clerks' browsers use)")
    for name in names:
        web_san(name)  # CAError naming the bad one, before anything is written
    with _locked_hub(root):
        _, _, registry = _load_hub(root)
        site = next((s for s in registry.sites if s.code == code), None)
        if site is None or site.revoked:
            raise ProvisioningError(f"site {code!r} is not a live site of {root} (see registry.yaml)")
        folder = root / "sites" / code
        agent_yaml = folder / "agent.yaml"
        try:
            load_config(agent_yaml, AgentConfig)
        except ConfigError as exc:
            raise ProvisioningError(str(exc)) from None
        raw = yaml.safe_load(agent_yaml.read_text(encoding="utf-8"))
        raw.setdefault("http", {})["tls"] = {"cert": str(AGENT_CERT), "key": str(AGENT_KEY)}
        AgentConfig.model_validate(raw)
        CertificateAuthority(root / "ca").issue_web(list(names), folder / AGENT_CERT, folder / AGENT_KEY)
        write_private(agent_yaml, yaml.safe_dump(raw, allow_unicode=True, sort_keys=False).encode("utf-8"))
    return folder / AGENT_CERT
