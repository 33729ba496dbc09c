"""HTTPS on the box (DESIGN §10): the server context of the clerk page and API when agent.yaml
names a certificate (http.tls). Checked before the agent starts: a missing, unreadable or
mismatched file is one clear ConfigError naming it, never a half-started box."""

from __future__ import annotations

import ssl

from iobase.tls import server_context as tls_server_context

PLAIN_HTTP_WARNING = (
    "http.tls is not set: the clerk page is plain HTTP and clerks' PINs and session cookies cross the hall LAN "
    "in clear; issue a certificate with `jiancha provision agent-https` (docs/clerk.md)"
)


def server_context(tls) -> ssl.SSLContext:
    """A server SSLContext (TLS 1.2 at least) with `tls.cert` (chain) and `tls.key` (agent.yaml http.tls)."""
    return tls_server_context(tls.cert, tls.key, section="http.tls")
