"""BxSign: the hall sign on an ONBON BX-5/6 card over TCP (tcp://HOST:PORT) or serial (/dev/tty…).

One exchange per write: connect, send one A3 06 frame, read the answer, close. Writes are rare
(only on change, at most every min_interval_s), and a fresh connection per write survives card
reboots and half-open TCP without keep-alive logic. pyserial is imported lazily.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from agent.devices.config import SignArea, SignConfig
from agent.devices.signs.base import AreaSign, Pages, SignError
from agent.devices.signs.bx import (
    BxFrameError,
    area_text,
    decode_frame,
    describe_answer,
    dynamic_area_data,
    encode_frame,
    is_ack,
    split_frames,
)

MAX_ANSWER = 4096


class Transport:
    """Sends one frame and returns the card's answer frame (raw bytes)."""

    def exchange(self, frame: bytes) -> bytes:  # pragma: no cover - interface
        """Send `frame`, read one answer frame."""
        raise NotImplementedError


def _read_answer(read: Callable[[int], bytes]) -> bytes:
    buffer = b""
    while len(buffer) < MAX_ANSWER:
        chunk = read(256)
        if not chunk:
            break
        buffer += chunk
        frames, _ = split_frames(buffer)
        if frames:
            return frames[0]
    raise SignError(f"no complete answer from the card ({len(buffer)} bytes received)")


class TcpTransport(Transport):
    """BX card on the LAN (the cards listen on TCP, usually port 5005)."""

    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout

    def exchange(self, frame: bytes) -> bytes:
        """Connect, send, read the answer, close."""
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            sock.settimeout(self.timeout)
            sock.sendall(frame)
            return _read_answer(sock.recv)


class SerialTransport(Transport):
    """BX card on RS-232/RS-485 through pyserial."""

    def __init__(self, device: str, baudrate: int, timeout: float):
        self.device, self.baudrate, self.timeout = device, baudrate, timeout

    def exchange(self, frame: bytes) -> bytes:
        """Open the port, send, read the answer, close."""
        try:
            import serial  # lazy: pyserial is only needed for serial signs
        except ImportError as exc:
            raise SignError(
                "a serial sign needs pyserial: pip install pyserial (or apt-get install python3-serial)"
            ) from exc
        try:
            with serial.Serial(self.device, self.baudrate, timeout=self.timeout, write_timeout=self.timeout) as port:
                port.write(frame)
                # read what has arrived (at least one byte), not a fixed count that would
                # wait for the whole timeout
                return _read_answer(lambda _n: port.read(max(1, port.in_waiting)))
        except serial.SerialException as exc:
            raise SignError(f"{self.device}: {exc}") from exc


def open_transport(config: SignConfig) -> Transport:
    """Transport for the sign's port: tcp://HOST:PORT or a serial device path."""
    port = config.port
    if port.startswith("tcp://"):
        url = urlsplit(port)
        if not url.hostname or not url.port:
            raise ValueError(f"sign port {port!r}: expected tcp://HOST:PORT")
        return TcpTransport(url.hostname, url.port, config.timeout_s)
    if port.startswith("/dev/") or port.upper().startswith("COM"):
        return SerialTransport(port, config.baudrate, config.timeout_s)
    raise ValueError(f"sign port {port!r}: expected tcp://HOST:PORT or /dev/tty...")


class BxSign(AreaSign):
    """Sign protocol on an ONBON BX-5/6 card; only dynamic (RAM) areas are ever written."""

    def __init__(
        self, config: SignConfig, transport: Transport | None = None, clock: Callable[[], float] = time.monotonic
    ):
        super().__init__(config, clock)
        self.transport = transport or open_transport(config)

    def frame_for(self, area: SignArea, pages: Pages, first: bool) -> bytes:
        """The frame that puts `pages` on `area` (pure; used by tests and the bench)."""
        cells, rows = self.geometry(area)
        text = area_text(pages, cells, rows, self.config.encoding)
        data = dynamic_area_data(
            area.id, area.x, area.y, area.width, area.height, text, init=first, stay_s=self.config.stay_s
        )
        return encode_frame(data, self.config.address, self.config.device_type)

    def _write(self, area: SignArea, pages: Pages, first: bool) -> None:
        answer = self.transport.exchange(self.frame_for(area, pages, first))
        try:
            frame = decode_frame(answer)
        except BxFrameError as exc:
            raise SignError(f"bad answer from the card: {exc}") from None
        if not is_ack(frame):
            raise SignError(describe_answer(frame))
