"""ONBON (仰邦) BX-5/BX-6 controller card protocol, dynamic (RAM) areas only. Pure bytes.

Frame on the wire (serial or TCP, see docs/devices.md "Signs" for sources and caveats):

    A5 ×8 | header 14 B | data | CRC16 (LE) | 5A
    header: dst address u16 | src address u16 (0x8000) | reserved 3 B | option | check mode
            (0 = CRC16) | display mode | device type (0xFE = any) | protocol version (2) |
            data length u16              (all integers little-endian)
    CRC: CRC-16/ARC (poly 0x8005 reflected, init 0) over header + data, before escaping.
    Escaping between the sync run and the end byte: A5→A6 02, A6→A6 01, 5A→5B 02, 5B→5B 01.

Data is a command: group, code, "answer wanted", then its fields. We only ever build
A3 06 (send dynamic area): dynamic areas live in the card's RAM and vanish at power-off,
programs live in flash (~100k erase cycles) — this module has no way to write a program.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from agent.devices.signs.content import text_cells

SYNC = b"\xa5" * 8
END = 0x5A
SRC_ADDRESS = 0x8000
PROTOCOL_VERSION = 0x02
DEVICE_ANY = 0xFE
HEADER = struct.Struct("<HH3sBBBBBH")  # dst, src, reserved, option, check, display, dev, ver, len
CMD_DYNAMIC_AREA = (0xA3, 0x06)
CMD_PING = (0xA2, 0x00)
ACK = (0xA0, 0x00)

_ESCAPE = {0xA5: b"\xa6\x02", 0xA6: b"\xa6\x01", 0x5A: b"\x5b\x02", 0x5B: b"\x5b\x01"}
_UNESCAPE = {(0xA6, 0x02): 0xA5, (0xA6, 0x01): 0xA6, (0x5B, 0x02): 0x5A, (0x5B, 0x01): 0x5B}

# display effects (显示方式) and run modes (动态区运行模式) we use
SHOW_STATIC = 0x01
RUN_CYCLE = 0x00


class BxFrameError(ValueError):
    """Bytes that are not a valid BX frame; the message says what is wrong."""


@dataclass(frozen=True)
class BxFrame:
    """A decoded frame: addresses, device type and the command data."""

    dst: int
    src: int
    device_type: int
    version: int
    data: bytes

    @property
    def command(self) -> tuple[int, int]:
        """(group, code) of the command, e.g. (0xA3, 0x06)."""
        return (self.data[0], self.data[1]) if len(self.data) >= 2 else (-1, -1)


def crc16(data: bytes) -> int:
    """CRC-16/ARC (IBM): reflected poly 0x8005, init 0x0000, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def escape(body: bytes) -> bytes:
    """Escape the bytes between the sync run and the end byte."""
    return b"".join(_ESCAPE.get(b, bytes((b,))) for b in body)


def unescape(body: bytes) -> bytes:
    """Undo `escape`; BxFrameError on a dangling or unknown escape."""
    out, i = bytearray(), 0
    while i < len(body):
        b = body[i]
        if b in (0xA6, 0x5B):
            pair = (b, body[i + 1]) if i + 1 < len(body) else None
            if pair not in _UNESCAPE:
                raise BxFrameError(f"bad escape at byte {i}: {body[i : i + 2].hex(' ')}")
            out.append(_UNESCAPE[pair])
            i += 2
            continue
        if b in (0xA5, 0x5A):
            raise BxFrameError(f"unescaped {b:#04x} inside the frame at byte {i}")
        out.append(b)
        i += 1
    return bytes(out)


def encode_frame(data: bytes, address: int = 1, device_type: int = DEVICE_ANY) -> bytes:
    """A complete frame carrying `data` to the card at `address`."""
    header = HEADER.pack(address, SRC_ADDRESS, b"\0\0\0", 0, 0, 0, device_type, PROTOCOL_VERSION, len(data))
    body = header + data
    return SYNC + escape(body + struct.pack("<H", crc16(body))) + bytes((END,))


def decode_frame(raw: bytes) -> BxFrame:
    """Check sync, end byte, escaping, length and CRC; return the frame."""
    start = 0
    while start < len(raw) and raw[start] == 0xA5:
        start += 1
    if start == 0:
        raise BxFrameError("frame does not start with the A5 sync bytes")
    if not raw or raw[-1] != END:
        raise BxFrameError("frame does not end with 5A")
    body = unescape(raw[start:-1])
    if len(body) < HEADER.size + 2:
        raise BxFrameError(f"frame too short: {len(body)} bytes after unescaping")
    payload, (crc,) = body[:-2], struct.unpack("<H", body[-2:])
    if crc16(payload) != crc:
        raise BxFrameError(f"CRC mismatch: frame says {crc:#06x}, bytes give {crc16(payload):#06x}")
    dst, src, _, _, check, _, dev, ver, length = HEADER.unpack(payload[: HEADER.size])
    data = payload[HEADER.size :]
    if length != len(data):
        raise BxFrameError(f"length field says {length} bytes, frame has {len(data)}")
    if check != 0:
        raise BxFrameError(f"check mode {check} not supported (only 0 = CRC16)")
    return BxFrame(dst, src, dev, ver, data)


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete raw frames in a stream buffer, and the unfinished rest."""
    frames = []
    while True:
        start = buffer.find(b"\xa5")
        if start < 0:
            return frames, b""
        end = buffer.find(bytes((END,)), start)
        if end < 0:
            return frames, buffer[start:]
        frames.append(buffer[start : end + 1])
        buffer = buffer[end + 1 :]


def _pixels(value: int) -> bytes:
    # high bit of the high byte = the value is in pixels, not 8-pixel bytes
    return struct.pack("<H", value | 0x8000)


def dynamic_area_data(
    area_id: int,
    x: int,
    y: int,
    width: int,
    height: int,
    text: bytes,
    *,
    init: bool,
    stay_s: int = 5,
    run_mode: int = RUN_CYCLE,
    effect: int = SHOW_STATIC,
    speed: int = 0,
    answer: bool = True,
) -> bytes:
    """Command A3 06: replace one dynamic area's text (already encoded, e.g. GBK)."""
    for name, v, hi in (
        ("area_id", area_id, 0xFF),
        ("stay_s", stay_s, 0xFF),
        ("x", x, 0x7FFF),
        ("y", y, 0xFFFF),
        ("width", width, 0x7FFF),
        ("height", height, 0xFFFF),
    ):
        if not 0 <= v <= hi:
            raise ValueError(f"{name}: {v} is outside 0..{hi}")
    area = (
        bytes((0x00,))  # area type: text
        + _pixels(x)
        + struct.pack("<H", y)
        + _pixels(width)
        + struct.pack("<H", height)
        + bytes((area_id, 0x00, run_mode))  # id, line spacing, run mode
        + struct.pack("<H", 0)  # timeout (run modes 2/3 only)
        + bytes((0x00, 0x00))  # no sound, no extended fields
        + bytes((0x00, 0x02, 0x02))  # left/top aligned, multi-line, wrap
        + bytes((effect, 0x00, speed, stay_s))  # show effect, exit, speed, stay
        + struct.pack("<I", len(text))
        + text
    )
    head = bytes(
        (
            *CMD_DYNAMIC_AREA,
            0x01 if answer else 0x00,
            0x01 if init else 0x00,  # clear and set up the area first
            0x00,  # reserved
            0x00,  # delete no areas
            0x01,
        )
    )  # one area follows
    return head + struct.pack("<H", len(area)) + area


def area_text(pages: tuple[tuple[str, ...], ...], cells: int, rows: int, encoding: str) -> bytes:
    """Pages as the card's text: each line padded to the area width, each page to `rows` lines.

    The area is multi-line with automatic wrapping, so padding makes every line break exactly
    where we broke it and every page start on the area's top line.
    """
    out = []
    for page in pages:
        lines = list(page) + [""] * (rows - len(page))
        out += [line + " " * max(0, cells - text_cells(line)) for line in lines]
    return "".join(out).encode(encoding, errors="replace")


def is_ack(frame: BxFrame) -> bool:
    """True for the card's success answer."""
    return frame.command == ACK


def describe_answer(frame: BxFrame) -> str:
    """Human text for a card's answer, for logs and errors."""
    if is_ack(frame):
        return "ok"
    return f"card answered {frame.data[:4].hex(' ') or 'nothing'} (not an ACK)"
