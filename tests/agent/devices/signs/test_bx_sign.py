"""BxSign against local fake controller cards: a TCP server and a serial pty that decode
every frame (sync, escaping, CRC, length) and answer like a card."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from agent.devices.config import SignConfig
from agent.devices.signs import SignContent, SignItem
from agent.devices.signs.bx import decode_frame, encode_frame, split_frames
from agent.devices.signs.bx_sign import BxSign, SerialTransport, TcpTransport, open_transport

ACK = encode_frame(bytes([0xA0, 0x00, 0x00, 0x00, 0x00]), address=0x8000)
NACK = encode_frame(bytes([0xA0, 0x01, 0x05, 0x00, 0x00]), address=0x8000)


class FakeCard:
    """A TCP 'controller card' on 127.0.0.1: decodes frames, records them, answers."""

    def __init__(self):
        self.frames = []
        self.answer = ACK
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                buffer = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    frames, buffer = split_frames(buffer + chunk)
                    for raw in frames:
                        self.frames.append(decode_frame(raw))  # raises on bad CRC/escaping
                        conn.sendall(self.answer)
                    if frames:
                        break

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def card():
    c = FakeCard()
    yield c
    c.close()


def config(port, **kw):
    return SignConfig(type="onbon-bx", port=port, width=192, height=32, windows=["1", "3"], timeout_s=2, **kw)


def content(window="3", received=0):
    return SignContent(window, f"{window}号窗口", "张三", (SignItem("个体工商户设立登记", 3, "免费"),), received, 0)


def area_of(frame):
    text_len = int.from_bytes(frame.data[9 + 23 : 9 + 27], "little")
    return frame.data[3], frame.data[9 + 27 :].decode("gbk"), text_len


def test_writes_a_dynamic_area_over_tcp(card):
    sign = BxSign(config(f"tcp://127.0.0.1:{card.port}"))
    assert sign.show(content(), now_mono=0)
    (frame,) = card.frames
    assert frame.command == (0xA3, 0x06) and frame.dst == 1 and frame.device_type == 0xFE
    init, text, text_len = area_of(frame)
    assert init == 1 and len(text.encode("gbk")) == text_len
    assert text.startswith("3号窗口 当班:张三") and "个体工商户设立登记" in text
    assert len(text.encode("gbk")) % (24 * 2) == 0  # whole pages of 2 rows x 24 cells


def test_only_changes_and_only_ram_areas(card):
    sign = BxSign(config(f"tcp://127.0.0.1:{card.port}", min_interval_s=5))
    sign.show(content(), now_mono=0)
    sign.show(content(), now_mono=1)  # unchanged: nothing sent
    sign.show(content(received=1), now_mono=2)
    sign.show(content("1"), now_mono=3)  # too soon: held back ...
    sign.flush(now_mono=5)  # ... and sent as one write
    assert len(card.frames) == 2
    assert {f.command for f in card.frames} == {(0xA3, 0x06)}  # never a program (flash) write
    assert [area_of(f)[0] for f in card.frames] == [1, 0]  # set up once, then just text
    assert "1号窗口" in area_of(card.frames[-1])[1]


def test_refusal_and_retry(card, caplog):
    sign = BxSign(config(f"tcp://127.0.0.1:{card.port}", min_interval_s=5))
    card.answer = NACK
    assert not sign.show(content(), now_mono=0)
    assert "not an ACK" in caplog.text
    card.answer = ACK
    assert not sign.flush(now_mono=1)
    assert sign.flush(now_mono=5)
    assert area_of(card.frames[-1])[0] == 1  # state unknown after a failure: set the area up again


def test_garbage_answer(card):
    card.answer = b"\xa5\xa5\x00\x5a"
    assert not BxSign(config(f"tcp://127.0.0.1:{card.port}")).show(content(), now_mono=0)


def test_card_offline_is_not_an_exception():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    sign = BxSign(config(f"tcp://127.0.0.1:{port}"))
    assert not sign.show(content(), now_mono=0)


def test_ports():
    assert isinstance(open_transport(config("tcp://10.0.0.5:5005")), TcpTransport)
    assert isinstance(open_transport(config("/dev/ttyUSB0")), SerialTransport)
    for bad in ("tcp://nohost", "udp://1.2.3.4:5"):
        with pytest.raises(ValueError, match="expected tcp://HOST:PORT"):
            open_transport(config(bad))


def test_serial_over_a_pty():
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    received = []

    def card():
        buffer = b""
        while not received:
            frames, buffer = split_frames(buffer + os.read(master, 4096))
            for raw in frames:
                received.append(decode_frame(raw))
                os.write(master, ACK)

    thread = threading.Thread(target=card, daemon=True)
    thread.start()
    try:
        sign = BxSign(config(os.ttyname(slave), baudrate=57600))
        assert sign.show(content(), now_mono=0)
        thread.join(5)
        assert received[0].command == (0xA3, 0x06)
    finally:
        os.close(slave)
        os.close(master)
