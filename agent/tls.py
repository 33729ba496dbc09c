"""HTTPS on the box (DESIGN §10): the server context of the clerk page and API when agent.yaml
names a certificate (http.tls). Checked before the agent starts: a missing, unreadable or
mismatched file is one clear ConfigError naming it, never a half-started box."""

from __future__ import annotations

import ssl

from iobase.config import ConfigError

PLAIN_HTTP_WARNING = (
    "http.tls is not set: the clerk page is plain HTTP and clerks' PINs and session cookies cross the hall LAN "
    "in clear; issue a certificate with `jiancha provision agent-https` (docs/clerk.md)"
)


def server_context(tls) -> ssl.SSLContext:
    """A server SSLContext (TLS 1.2 at least) with `tls.cert` (chain) and `tls.key` (agent.yaml http.tls)."""
    for what, path in (("http.tls.cert", tls.cert), ("http.tls.key", tls.key)):
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
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"http.tls: {tls.cert} and {tls.key}: not a PEM certificate chain with its matching "
            f"unencrypted private key ({exc.reason or exc})"
        ) from None
    return ctx
