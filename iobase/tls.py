"""HTTPS server contexts for the hub's web and the box's clerk page (DESIGN §10): one place that
checks the configured certificate and key before anything starts, so a missing, unreadable or
mismatched file is one clear ConfigError naming it, never a half-started server."""

from __future__ import annotations

import ssl
from pathlib import Path

from iobase.config import ConfigError


def server_context(cert: Path | str, key: Path | str, *, section: str) -> ssl.SSLContext:
    """A server SSLContext (TLS 1.2 at least) with `cert` (PEM chain) and `key` (unencrypted PEM);
    `section` names the config keys in errors (e.g. "api.tls", "http.tls")."""
    for what, path in ((f"{section}.cert", cert), (f"{section}.key", key)):
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except FileNotFoundError:
            raise ConfigError(f"{what}: {path}: file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{what}: {path}: is a folder, expected a PEM file") from None
        except OSError as exc:
            raise ConfigError(f"{what}: {path}: cannot read: {exc.strerror or exc}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{section}: {cert} and {key}: not a PEM certificate chain with its matching "
            f"unencrypted private key ({exc.reason or exc})"
        ) from None
    return ctx
