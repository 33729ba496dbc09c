"""Clip chunks (site → hub): a recorded clip the hub asked for, in signed, resumable chunks.

Envelope: msgpack [body, signature]; body = msgpack [1, clip_id, index, total, sha256_hex,
camera, start_ms, end_ms, data]; signature = Ed25519 over b"JC1K" + body with the site key.
The hub acks each stored chunk ({clip_id, index} on the site's down/clip topic); the site
resends unacknowledged chunks, so an upload survives restarts on both ends. Every chunk but
the last has the same size, at least MIN_CHUNK_BYTES (the agent sends 128 KiB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgpack
from cryptography.exceptions import InvalidSignature

from protocol.wire import WireError

CHUNK_PREFIX = b"JC1K"
MAX_CHUNK_BYTES = 256 * 1024
MIN_CHUNK_BYTES = 16 * 1024  # every chunk but the last: bounds the files per clip
MAX_CHUNKS = 20_000  # 5 GB at the largest chunk size
CLIP_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")  # always fullmatch: "$" lets a trailing newline pass


CLIP_REFUSALS = ("unrequested_clip", "clip_too_large", "clip_quota", "chunk_too_small")


class ClipRefused(WireError):
    """A well-formed, signed chunk the hub will not store: a clip it never asked that site for,
    one over a storage cap, or a chunk other than the last under MIN_CHUNK_BYTES. A WireError
    (quarantined and counted as rejected_<reason> like any other) whose reasons are the hub's
    clip policy rather than the wire format's REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in CLIP_REFUSALS:
            raise ValueError(f"unknown clip refusal {reason!r}")
        Exception.__init__(self, reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ClipChunk:
    """One chunk of a clip."""

    clip_id: str
    index: int
    total: int
    sha256: str  # hex digest of the whole clip
    camera: str
    start_ms: int
    end_ms: int
    data: bytes


def seal_chunk(c: ClipChunk, *, sign_key) -> bytes:
    """Encode and sign a chunk with the site's Ed25519 key."""
    body = msgpack.packb(
        [1, c.clip_id, c.index, c.total, c.sha256, c.camera, c.start_ms, c.end_ms, c.data], use_bin_type=True
    )
    return msgpack.packb([body, sign_key.sign(CHUNK_PREFIX + body)], use_bin_type=True)


def open_chunk(data: bytes, *, verify_key) -> ClipChunk:
    """Verify (before anything else is trusted) and decode a chunk; WireError naming the reason."""
    if len(data) > MAX_CHUNK_BYTES + 4096:
        raise WireError("oversize", f"clip chunk of {len(data)} bytes")
    try:
        body, sig = msgpack.unpackb(
            data, raw=False, max_bin_len=MAX_CHUNK_BYTES + 2048, max_array_len=16, max_str_len=256
        )
        if not isinstance(body, bytes) or not isinstance(sig, bytes):
            raise ValueError("envelope is not [body, signature]")
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError("malformed", f"clip chunk: {exc}") from None
    try:
        verify_key.verify(sig, CHUNK_PREFIX + body)
    except InvalidSignature:
        raise WireError("bad_signature", "clip chunk not signed by the site") from None
    try:
        v, clip_id, index, total, sha, camera, start_ms, end_ms, payload = msgpack.unpackb(
            body, raw=False, max_bin_len=MAX_CHUNK_BYTES, max_array_len=16, max_str_len=256
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError("malformed", f"clip chunk body: {exc}") from None
    ok = (
        v == 1
        and isinstance(clip_id, str)
        and CLIP_ID_RE.fullmatch(clip_id)
        and isinstance(index, int)
        and isinstance(total, int)
        and 0 <= index < total <= MAX_CHUNKS
        and isinstance(sha, str)
        and re.fullmatch(r"[0-9a-f]{64}", sha)
        and isinstance(camera, str)
        and isinstance(payload, bytes)
        and isinstance(start_ms, int)
        and isinstance(end_ms, int)
    )
    if not ok:
        raise WireError("malformed", "clip chunk fields out of range")
    return ClipChunk(clip_id, index, total, sha, camera, start_ms, end_ms, payload)
