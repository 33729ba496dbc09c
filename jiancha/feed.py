"""`jiancha feed tail` and `jiancha feed decode`: a third-party platform's side of the feed
(docs/feed.md). Both print one JSON object per record on stdout and report problems (a gap, a
bad signature, a broken chain) on stderr, one line each, starting with `feed:`.

`decode` reads raw MQTT payloads back to back (each one a self-delimiting msgpack array, so the
output of `mosquitto_sub -N` needs no framing), from stdin or from files (one or more payloads
per file).
"""

from __future__ import annotations

import json
import queue
import sys
import time
from pathlib import Path

import msgpack

from iobase.config import ConfigError, load_config
from iobase.feedconfig import FeedConfig
from iobase.mqtt import make_tls_client
from protocol import topics
from protocol.crypto import CryptoKeyError, load_private_pem, load_public_pem
from protocol.feed import FeedReader, encode_ack
from protocol.wire import MAX_BATCH_BYTES
from provisioning.errors import ProvisioningError

MAX_INPUT_BYTES = 1 << 30  # decode: at most 1 GiB per input


def _reader(config: Path, *, keep_after_gap: bool, first: int | None = None) -> tuple[FeedConfig, FeedReader]:
    try:
        cfg = load_config(config, FeedConfig)
        verify = load_public_pem(cfg.hub_sign_pub.read_bytes(), "ed25519")
        seal = load_private_pem(cfg.seal_key.read_bytes(), "x25519")
    except (ConfigError, CryptoKeyError, OSError) as exc:
        raise ProvisioningError(f"{config}: {exc}") from None
    return cfg, FeedReader(cfg.feed, cfg.hub, verify, seal, next_seq=first, keep_after_gap=keep_after_gap)


def _emit(reader: FeedReader, records: list[dict], out, err) -> None:
    for r in records:
        out.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()
    for p in reader.problems:
        err.write(f"feed: {p}\n")
    err.flush()


def split_payloads(data: bytes) -> tuple[list[bytes], bytes]:
    """Raw payloads back to back → (payloads, trailing bytes that are not a whole payload)."""
    up = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1), max_bin_len=MAX_BATCH_BYTES)
    up.feed(data)
    out, start = [], 0
    try:
        for _ in up:
            end = up.tell()
            out.append(data[start:end])
            start = end
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData) as exc:
        return out, data[start:] or repr(exc).encode()
    return out, data[start:]


def decode(config: Path, files: list[Path], out=sys.stdout, err=sys.stderr, stdin=None) -> int:
    """Decode raw payloads; 0 if every one verified and the chain held, 1 otherwise."""
    _, reader = _reader(config, keep_after_gap=True)
    inputs = (
        [(str(f), f.read_bytes()[:MAX_INPUT_BYTES]) for f in files]
        if files
        else [("stdin", (stdin or sys.stdin.buffer).read(MAX_INPUT_BYTES))]
    )
    bad = False
    for name, data in inputs:
        payloads, rest = split_payloads(data)
        for p in payloads:
            records = reader.accept(p)
            bad = bad or bool(reader.problems)
            _emit(reader, records, out, err)
            reader.problems.clear()
        if rest:
            bad = True
            err.write(f"feed: {name}: {len(rest)} trailing bytes are not a whole payload (ignored)\n")
    return 1 if bad else 0


def tail(
    config: Path,
    *,
    from_seq: int | None = None,
    ack: bool = False,
    count: int | None = None,
    idle_s: float | None = None,
    out=sys.stdout,
    err=sys.stderr,
) -> int:
    """Connect with the feed identity, ask for the records, print them; acknowledge with --ack.

    Without --from the hub sends from its stored cursor (the last ack). Stops after `count`
    records or `idle_s` seconds without one (both optional; otherwise until interrupted)."""
    if from_seq is not None and from_seq < 1:
        raise ProvisioningError("--from: a seq >= 1")
    cfg, reader = _reader(config, keep_after_gap=False, first=from_seq)
    events: queue.Queue = queue.Queue()
    client = make_tls_client(cfg.feed, cfg.broker.ca, cfg.broker.cert, cfg.broker.key)
    client.on_connect = lambda c, u, f, rc, pr=None: events.put(("connect", rc))
    client.on_subscribe = lambda c, u, mid, rcs, pr=None: events.put(("subscribed", rcs))
    client.on_message = lambda c, u, m: events.put(("message", m.payload))
    client.connect_async(cfg.broker.host, cfg.broker.port, cfg.broker.keepalive)
    client.loop_start()

    def ask() -> None:  # resend from what we hold (first time: --from, or the hub's cursor)
        acked = reader.acked if reader.next_seq is not None else None
        client.publish(topics.feed_ack(cfg.feed), encode_ack(acked, _hash_or_none(reader), resend=True), qos=1)

    printed, last, started, connected, warned = 0, time.monotonic(), time.monotonic(), False, False
    try:
        while count is None or printed < count:
            if not connected and not warned and time.monotonic() - started > 10:
                warned = True
                err.write(
                    f"feed: not connected to {cfg.broker.host}:{cfg.broker.port} after 10 s "
                    "(wrong host or port, or a revoked or expired certificate?)\n"
                )
                err.flush()
            if idle_s is not None and time.monotonic() - last > idle_s:
                err.write(f"feed: no record for {idle_s:g} s; stopping at seq {reader.acked}\n")
                break
            try:
                kind, arg = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "connect":
                if arg.is_failure:
                    err.write(f"feed: the broker refused the connection: {arg}\n")
                    return 2
                connected = True
                client.subscribe(topics.feed_batch(cfg.feed), qos=1)
            elif kind == "subscribed":
                if any(getattr(rc, "is_failure", False) for rc in arg):
                    err.write("feed: the broker refused the subscription (revoked?)\n")
                    return 2
                ask()
            elif kind == "message":
                records = reader.accept(bytes(arg))  # a batch is printed whole (the ack covers it)
                gap = any(p.startswith("GAP") for p in reader.problems)
                _emit(reader, records, out, err)
                reader.problems.clear()
                printed += len(records)
                if records:
                    last = time.monotonic()
                if gap:
                    ask()
                elif ack and records:
                    client.publish(
                        topics.feed_ack(cfg.feed), encode_ack(reader.acked, _hash_or_none(reader)), qos=1
                    ).wait_for_publish(5)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return 0


def _hash_or_none(reader: FeedReader) -> bytes | None:
    return reader.last_hash if reader.last_hash is not None and reader.acked > 0 else None
