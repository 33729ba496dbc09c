"""ONVIF WS-Discovery: find cameras on the hall's LAN (a thin wrapper over one UDP probe).

`probe()` multicasts one WS-Discovery ``Probe`` for ``dn:NetworkVideoTransmitter`` to
239.255.255.250:3702 and collects ``ProbeMatches`` until the timeout; `parse_probe_matches`
is the pure part (tested with a recorded reply). Replies are matched on ``RelatesTo`` and
de-duplicated by endpoint address. Element names are matched by local name, so the 2005/04
and the 1.1 (2009/01) discovery namespaces both parse.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MULTICAST = ("239.255.255.250", 3702)
MAX_REPLY_BYTES = 65_535
_SCOPE_PREFIX = "onvif://www.onvif.org/"

PROBE_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<s:Header>
<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>
<a:MessageID>{message_id}</a:MessageID>
<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
</s:Header>
<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>
</s:Envelope>"""


@dataclass(frozen=True)
class DiscoveredDevice:
    """One ONVIF device that answered a probe."""

    address: str  # endpoint reference, e.g. urn:uuid:...
    xaddrs: tuple[str, ...]  # device service URLs
    types: tuple[str, ...]
    scopes: tuple[str, ...]

    def scope(self, key: str) -> str | None:
        """Value of an ONVIF scope such as 'name', 'hardware' or 'location/city' (URL-decoded)."""
        prefix = f"{_SCOPE_PREFIX}{key}/"
        for s in self.scopes:
            if s.startswith(prefix):
                return unquote(s[len(prefix) :])
        return None

    @property
    def name(self) -> str | None:
        """The camera's advertised name."""
        return self.scope("name")

    @property
    def hardware(self) -> str | None:
        """The camera's advertised model."""
        return self.scope("hardware")

    @property
    def host_port(self) -> tuple[str, int] | None:
        """(host, port) of the first IPv4 http XAddr, for `OnvifDevice`."""
        for x in self.xaddrs:
            u = urlsplit(x)
            if u.scheme in ("http", "https") and u.hostname and ":" not in u.hostname:
                return u.hostname, u.port or (443 if u.scheme == "https" else 80)
        return None


def build_probe(message_id: str) -> bytes:
    """The Probe datagram for message id `message_id` (``uuid:...``)."""
    return PROBE_TEMPLATE.format(message_id=message_id).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def parse_probe_matches(data: bytes, relates_to: str | None = None) -> list[DiscoveredDevice]:
    """Devices in one ProbeMatches reply; [] for other messages, malformed XML, or another probe's."""
    if len(data) > MAX_REPLY_BYTES:
        return []
    try:
        root = ET.fromstring(data)  # expat in Python >= 3.7.1 refuses entity expansion bombs
    except ET.ParseError:
        return []
    header, body = _child(root, "Header"), _child(root, "Body")
    if body is None:
        return []
    if relates_to is not None:
        rel = _text(_child(header, "RelatesTo")) if header is not None else ""
        if rel != relates_to:
            return []
    matches = _child(body, "ProbeMatches")
    if matches is None:
        return []
    out = []
    for m in matches:
        if _local(m.tag) != "ProbeMatch":
            continue
        epr = _child(m, "EndpointReference")
        address = _text(_child(epr, "Address")) if epr is not None else ""
        xaddrs = tuple(_text(_child(m, "XAddrs")).split())
        if not address or not xaddrs:
            continue
        out.append(
            DiscoveredDevice(
                address, xaddrs, tuple(_text(_child(m, "Types")).split()), tuple(_text(_child(m, "Scopes")).split())
            )
        )
    return out


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str):
        self.message_id = message_id
        self.found: dict[str, DiscoveredDevice] = {}

    def datagram_received(self, data: bytes, addr) -> None:
        for d in parse_probe_matches(data, self.message_id):
            self.found.setdefault(d.address, d)


async def probe(
    timeout: float = 3.0, target: tuple[str, int] = MULTICAST, bind: str = "0.0.0.0", ttl: int = 1
) -> list[DiscoveredDevice]:
    """Send one Probe to `target` and return the devices that answered within `timeout` s."""
    message_id = f"uuid:{uuid.uuid4()}"
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _Collector(message_id), local_addr=(bind, 0), family=socket.AF_INET
    )
    try:
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)  # stay on the LAN
        transport.sendto(build_probe(message_id), target)
        await asyncio.sleep(timeout)
    finally:
        transport.close()
    return sorted(proto.found.values(), key=lambda d: d.xaddrs)
