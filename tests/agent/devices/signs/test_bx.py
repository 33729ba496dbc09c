"""BX-5/6 frames: golden vectors, CRC, escaping, the dynamic-area command layout."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.devices.signs.bx import (
    BxFrameError,
    area_text,
    crc16,
    decode_frame,
    dynamic_area_data,
    encode_frame,
    escape,
    split_frames,
    unescape,
)

# Frames published with a public BX-5/6 client (controller address 1, device type 0xFE):
# "ping" (A2 00) and "clear screen" (A3 10). They pin the header layout, CRC and byte order.
PING = bytes.fromhex("a5a5a5a5a5a5a5a501000080000000000000fe020500a20001000068f85a")
CLEAR = bytes.fromhex("a5a5a5a5a5a5a5a501000080000000000000fe020500a31001000051f85a")


def test_crc_is_crc16_arc():
    assert crc16(b"123456789") == 0xBB3D  # the catalogue check value of CRC-16/ARC


@pytest.mark.parametrize("data, frame", [(bytes.fromhex("a200010000"), PING), (bytes.fromhex("a310010000"), CLEAR)])
def test_golden_frames(data, frame):
    assert encode_frame(data, address=1, device_type=0xFE) == frame
    decoded = decode_frame(frame)
    assert (decoded.dst, decoded.src, decoded.device_type, decoded.version, decoded.data) == (1, 0x8000, 0xFE, 2, data)


def test_escaping_table():
    assert escape(bytes([0xA5, 0xA6, 0x5A, 0x5B, 0x00])) == bytes.fromhex("a602a601 5b025b01 00")


@given(st.binary(max_size=300))
def test_escape_round_trip(body):
    escaped = escape(body)
    assert 0xA5 not in escaped and 0x5A not in escaped
    assert unescape(escaped) == body


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_frame_round_trip(data, address):
    frame = encode_frame(data, address=address)
    assert frame.startswith(b"\xa5" * 8) and frame.endswith(b"\x5a")
    assert frame.count(0x5A) == 1
    assert decode_frame(frame).data == data and decode_frame(frame).dst == address


@pytest.mark.parametrize(
    "raw, message",
    [
        (PING[8:], "A5 sync"),
        (PING[:-1], "end with 5A"),
        (PING[:-3] + bytes([PING[-3] ^ 1]) + PING[-2:], "CRC mismatch"),
        (PING[:10] + b"\xa6\x07" + PING[10:], "bad escape"),
        (PING[:10] + b"\x5a" + PING[10:], "unescaped 0x5a"),
        (b"\xa5" * 8 + escape(b"\x01\x00") + b"\x5a", "too short"),
    ],
)
def test_bad_frames_are_named(raw, message):
    with pytest.raises(BxFrameError, match=message):
        decode_frame(raw)


def test_length_field_is_checked():
    body = bytearray(unescape(PING[8:-1])[:-2])
    body[12] = 9  # data length field says 9 bytes, there are 5
    raw = b"\xa5" * 8 + escape(bytes(body) + struct.pack("<H", crc16(bytes(body)))) + b"\x5a"
    with pytest.raises(BxFrameError, match="length field says 9"):
        decode_frame(raw)


def test_split_frames_from_a_stream():
    frames, rest = split_frames(b"\x00" + PING + CLEAR + PING[:12])
    assert frames == [PING, CLEAR] and rest == PING[:12]
    assert split_frames(b"\x00\x01") == ([], b"")


def test_dynamic_area_layout():
    text = "一二".encode("gbk")
    data = dynamic_area_data(2, 8, 16, 192, 32, text, init=True, stay_s=7)
    assert data[:7] == bytes([0xA3, 0x06, 0x01, 0x01, 0x00, 0x00, 0x01])
    (area_len,) = struct.unpack_from("<H", data, 7)
    area = data[9:]
    assert area_len == len(area)
    assert area[0] == 0x00  # text area
    assert struct.unpack_from("<HHHH", area, 1) == (8 | 0x8000, 16, 192 | 0x8000, 32)
    assert area[9:12] == bytes([2, 0, 0])  # id, spacing, cycle
    assert area[17:23] == bytes([0x02, 0x02, 0x01, 0x00, 0x00, 7])  # multi-line, wrap, static
    assert struct.unpack_from("<I", area, 23) == (len(text),) and area[27:] == text
    assert dynamic_area_data(0, 0, 0, 64, 16, b"", init=False)[3] == 0x00


def test_dynamic_area_bounds():
    with pytest.raises(ValueError, match="area_id"):
        dynamic_area_data(300, 0, 0, 64, 16, b"", init=False)


def test_area_text_pads_lines_and_pages():
    pages = (("3号窗口", "设立登记"), ("3号窗口",))
    raw = area_text(pages, cells=12, rows=2, encoding="gbk")
    assert len(raw) == 4 * 12
    rows = [raw[i : i + 12].decode("gbk") for i in range(0, len(raw), 12)]
    assert rows == ["3号窗口     ", "设立登记    ", "3号窗口     ", " " * 12]
