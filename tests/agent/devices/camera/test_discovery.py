import asyncio
from string import Template

from agent.devices.camera.discovery import build_probe, parse_probe_matches, probe

from .soap_camera import PAYLOADS

RECORDED = Template((PAYLOADS / "ProbeMatches.xml").read_text(encoding="utf-8"))
PROBE_ID = "uuid:6a0d4a6c-3b8a-4d6f-9a53-0d1c2e3f4a5b"


def reply(relates_to=PROBE_ID, host="192.168.10.61", port=80):
    return RECORDED.substitute(relates_to=relates_to, host=host, port=port).encode()


def test_parse_recorded_probe_match():
    [dev] = parse_probe_matches(reply(), PROBE_ID)
    assert dev.address == "urn:uuid:3fa1fe68-b915-4053-a3e1-c42f90f1a2b3"
    assert dev.xaddrs[0] == "http://192.168.10.61:80/onvif/device_service"
    assert "dn:NetworkVideoTransmitter" in dev.types
    assert dev.name == "HIKVISION DS-2CD2T47G2-L" and dev.hardware == "DS-2CD2T47G2-L"
    assert dev.scope("location/city") == "hangzhou"
    assert dev.host_port == ("192.168.10.61", 80)  # the IPv6 link-local XAddr is skipped


def test_replies_to_other_probes_and_garbage_are_ignored():
    assert parse_probe_matches(reply(relates_to="uuid:someone-else"), PROBE_ID) == []
    assert parse_probe_matches(b"<not-xml", PROBE_ID) == []
    assert parse_probe_matches(b"<a/>", None) == []
    assert len(parse_probe_matches(reply(), None)) == 1  # no filter


def test_ws_discovery_1_1_namespace_parses_too():
    data = reply().replace(
        b"http://schemas.xmlsoap.org/ws/2005/04/discovery", b"http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"
    )
    assert len(parse_probe_matches(data, PROBE_ID)) == 1


def test_probe_message_has_its_id_and_asks_for_video_transmitters():
    msg = build_probe("uuid:abc")
    assert b"<a:MessageID>uuid:abc</a:MessageID>" in msg
    assert b"dn:NetworkVideoTransmitter" in msg


class Responder(asyncio.DatagramProtocol):
    """A camera answering probes on 127.0.0.1 (twice, like cameras that repeat themselves)."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        import re

        mid = re.search(rb"<a:MessageID>(.*?)</a:MessageID>", data).group(1).decode()
        for _ in range(2):
            self.transport.sendto(reply(mid, "127.0.0.1", 8080), addr)
        self.transport.sendto(reply("uuid:stale"), addr)


async def test_probe_over_loopback_collects_and_deduplicates():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        found = await probe(timeout=0.3, target=("127.0.0.1", port), bind="127.0.0.1")
    finally:
        transport.close()
    assert [d.host_port for d in found] == [("127.0.0.1", 8080)]
