"""Keys the hub holds (its own) and the site public keys it trusts (from registry.yaml).

The registry is re-read when its file changes, so `jiancha provision revoke-site` takes effect
in a running hub within about a second: the revoked site's batches are refused from then on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hub.config import HubConfig, Registry
from iobase.config import ConfigError, load_config
from protocol.crypto import load_private_pem, load_public_pem

log = logging.getLogger("jiancha.hub.keys")


@dataclass
class HubKeys:
    """The hub's signing key (config to agents) and sealing key (batches from agents)."""

    sign_key: object
    seal_key: object

    @classmethod
    def load(cls, cfg: HubConfig) -> HubKeys:
        """Read both keys named in hub.yaml."""
        return cls(
            sign_key=load_private_pem(cfg.keys.sign_key.read_bytes(), "ed25519"),
            seal_key=load_private_pem(cfg.keys.seal_key.read_bytes(), "x25519"),
        )


class SiteKeys:
    """Trusted site verify keys, reloaded from registry.yaml when it changes."""

    def __init__(self, registry_path: Path, check_every_s: float = 1.0):
        self.path = Path(registry_path)
        self.check_every_s = check_every_s
        self._mtime = None
        self._checked = 0.0
        self._keys: dict[str, object] = {}
        self._names: dict[str, str] = {}
        self._revoked: set[str] = set()
        self._children: dict[str, object] = {}  # child hubs (registry kind "hub"), by sender id
        self._lock = threading.Lock()
        self.version = 0
        self.maybe_reload(force=True)

    def maybe_reload(self, force: bool = False) -> bool:
        """Re-read the registry if its mtime changed (at most once per `check_every_s`)."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_every_s:
            return False
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime and not force:
            return False
        try:
            reg = load_config(self.path, Registry) if mtime is not None else Registry()
        except ConfigError as exc:
            log.error("keeping the previous site registry: %s", exc)
            return False
        keys, names, revoked, children = {}, {}, set(), {}
        for s in reg.sites:
            names[s.code] = s.name
            if s.revoked:
                revoked.add(s.code)
                continue
            if s.kind == "feed":  # a feed consumer sends no records (docs/feed.md)
                continue
            try:
                pub = load_public_pem(s.sign_pub.encode(), "ed25519")
            except ValueError as exc:
                log.error("sender %s has an unusable key in the registry: %s", s.code, exc)
                continue
            # a child hub's key never verifies a site's batch, nor a site's a child's
            (children if s.kind == "hub" else keys)[s.code] = pub
        with self._lock:
            self._keys, self._names, self._revoked, self._mtime = keys, names, revoked, mtime
            self._children = children
            self.version += 1
        log.info("site registry loaded: %d active, %d revoked", len(keys), len(revoked))
        return True

    def verify_key(self, site: str):
        """Ed25519 public key of an active site, or None (unknown or revoked)."""
        return self._keys.get(site)

    def child_key(self, child: str):
        """Ed25519 public key of an active child hub, or None (unknown, revoked, or a site)."""
        return self._children.get(child)

    def children(self) -> list[str]:
        """Sender ids of active child hubs."""
        return sorted(self._children)

    def is_revoked(self, site: str) -> bool:
        """True if the site was revoked."""
        return site in self._revoked

    def name(self, site: str) -> str:
        """Human name of the site."""
        return self._names.get(site, "")

    def active(self) -> list[str]:
        """Codes of active sites."""
        return sorted(self._keys)
