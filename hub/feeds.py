"""The feed publisher (订阅数据推送): this hub's uplink records to third-party feeds (docs/feed.md).

Each feed consumer (registry kind "feed", provisioning/feed.py) reads the hub's uplink outbox
(hub/uplink.py) -- the very records a parent hub gets, same seq and hash chain -- sealed to
the feed's X25519 key and signed by the hub. The consumer's contiguous ack is kept per feed in
`feed_cursor` (both engines). On connecting the publisher sends every feed what follows its
cursor (a consumer with a persistent MQTT session gets it even while away), at most `window`
records beyond the cursor, then live records as they are appended; a `resend` request rewinds
to the seq it names (or the stored cursor): a consumer with a clean session asks on connecting.

Runs in its own thread with its own store connection and its own broker identity (`jc-feed`,
never the hub's session: the broker names sessions after the certificate). `run_once` is one
pass so tests can step it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from hub import uplink
from hub.config import HubConfig, Registry
from hub.db import connect
from hub.forwarder import _split
from iobase.config import ConfigError, load_config
from iobase.mqtt import make_tls_client
from iobase.sqlite import transaction
from protocol import topics
from protocol.crypto import CryptoKeyError, load_public_pem
from protocol.feed import AckError, parse_ack
from protocol.wire import MAX_BATCH_RECORDS, seal_batch

log = logging.getLogger("jiancha.hub.feeds")

_SQL = """
    CREATE TABLE feed_cursor (feed TEXT PRIMARY KEY, acked_seq {int} NOT NULL, acked_hash {blob},
        at_ms {int} NOT NULL);
"""
MIGRATIONS = [("0211_feed_cursor", _SQL.format(int="INTEGER", blob="BLOB"))]
PG_MIGRATIONS = [("pg_0211_feed_cursor", _SQL.format(int="BIGINT", blob="BYTEA"))]

BATCH_RECORDS = 500
WINDOW_RECORDS = 5000


def publisher_cert_paths(cfg: HubConfig) -> tuple[Path, Path]:
    """The feed publisher's certificate and key, beside the hub's own (hub/jc-feed.crt/.key)."""
    folder = Path(cfg.broker.cert).parent
    return folder / f"{topics.FEED_PUBLISHER_IDENTITY}.crt", folder / f"{topics.FEED_PUBLISHER_IDENTITY}.key"


def cursor(conn, feed: str) -> int:
    """The highest seq `feed` acknowledged as held contiguously (0: none)."""
    row = conn.execute("SELECT acked_seq FROM feed_cursor WHERE feed = ?", (feed,)).fetchone()
    return row[0] if row else 0


def set_cursor(conn, feed: str, seq: int, hash_: bytes | None, at_ms: int) -> bool:
    """Move `feed`'s cursor forward to `seq` (never back); the caller commits. True if it moved."""
    cur = conn.execute(
        "INSERT INTO feed_cursor (feed, acked_seq, acked_hash, at_ms) VALUES (?, ?, ?, ?) ON CONFLICT (feed) "
        "DO UPDATE SET acked_seq = excluded.acked_seq, acked_hash = excluded.acked_hash, at_ms = excluded.at_ms "
        "WHERE feed_cursor.acked_seq < excluded.acked_seq",
        (feed, seq, hash_, at_ms),
    )
    return cur.rowcount == 1


def has_feeds(registry_path: Path) -> bool:
    """Whether the registry names a feed that is not revoked (the outbox is then written)."""
    try:
        return bool(load_config(registry_path, Registry).active_feeds())
    except ConfigError:
        return False


class _Feed:
    def __init__(self, seal_pub):
        self.seal_pub = seal_pub
        self.next: int | None = None  # the next seq to send (None: not connected yet)
        self.acked = 0


class FeedPublisher:
    """Owns the `jc-feed` connection and the per-feed send positions."""

    def __init__(
        self,
        cfg: HubConfig,
        store_url: str,
        *,
        sign_key,
        uplink_hooks=None,
        batch_records: int = BATCH_RECORDS,
        window: int = WINDOW_RECORDS,
    ):
        self.cfg = cfg
        self.sender = f"hub-{cfg.region}"
        self.sign_key = sign_key
        self.uplink_hooks = uplink_hooks  # hub.uplink.Uplink: switched on when a feed appears
        self.batch_records = min(batch_records, MAX_BATCH_RECORDS)
        self.window = window
        self.conn = connect(store_url)
        self.events: queue.Queue = queue.Queue()
        self.connected = False
        self.feeds: dict[str, _Feed] = {}
        self._mtime = None
        self.counters = {"batches_sent": 0, "records_sent": 0, "acks": 0, "resends": 0, "acks_refused": 0}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="feeds", daemon=True)
        crt, key = publisher_cert_paths(cfg)
        self.client = make_tls_client(topics.FEED_PUBLISHER_IDENTITY, cfg.broker.ca, crt, key)
        self.client.on_connect = lambda c, u, f, rc, pr=None: self.events.put(("connect", rc))
        self.client.on_disconnect = lambda c, u, f, rc, pr=None: self.events.put(("disconnect", rc))
        self.client.on_message = lambda c, u, m: self.events.put(("message", (m.topic, m.payload)))
        self.reload()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.client.connect_async(self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive)
        self.client.loop_start()
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.events.put(("stop", None))
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()
        self.conn.close()

    def status(self) -> dict:
        return {
            "connected": self.connected,
            "feeds": {f: {"acked": s.acked, "next": s.next} for f, s in self.feeds.items()},
            **self.counters,
        }

    def reload(self, force: bool = False) -> None:
        """Re-read the registry when it changed (a feed added or revoked takes effect in ~1 s)."""
        path = self.cfg.registry
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime and not force:
            return
        self._mtime = mtime
        try:
            reg = load_config(path, Registry) if mtime is not None else Registry()
        except ConfigError as exc:
            log.error("feeds: keeping the previous registry: %s", exc)
            return
        feeds = {}
        for code, s in reg.active_feeds().items():
            try:
                pub = load_public_pem((s.seal_pub or "").encode(), "x25519")
            except CryptoKeyError as exc:
                log.error("feed %s has an unusable key in the registry: %s", code, exc)
                continue
            old = self.feeds.get(code)
            f = _Feed(pub)
            if old is not None:
                f.next, f.acked = old.next, old.acked
            else:
                f.acked = cursor(self.conn, code)
                f.next = f.acked + 1 if self.connected else None
            feeds[code] = f
        self.feeds = feeds
        if feeds and self.uplink_hooks is not None:
            self.uplink_hooks.enabled = True

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.run_once(wait=0.5)
            except Exception:
                log.exception("feed pass failed; retrying")
                self.stopping.wait(2.0)

    def run_once(self, wait: float = 0.0) -> None:
        """Handle queued events (waiting up to `wait` for the first), then send what may go."""
        try:
            ev = self.events.get(timeout=wait) if wait else self.events.get_nowait()
        except queue.Empty:
            ev = None
        while ev is not None:
            self._event(*ev)
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                ev = None
        self.reload()
        if self.connected:
            self._send_all()

    def _event(self, kind: str, arg) -> None:
        if kind == "connect":
            if arg.is_failure:
                log.warning("broker refused the feed publisher: %s", arg)
                return
            self.connected = True
            self.client.subscribe(topics.ALL_FEED_ACKS, qos=1)
            for f in self.feeds.values():  # from each feed's cursor: a persistent session gets it
                f.next = f.acked + 1
        elif kind == "disconnect":
            self.connected = False
        elif kind == "message":
            self.on_ack(*arg)

    def on_ack(self, topic: str, payload: bytes) -> None:
        """A consumer's ack or resend request."""
        parsed = topics.parse_feed_topic(topic)
        feed = self.feeds.get(parsed[0]) if parsed and parsed[1] == "up/ack" else None
        if feed is None:
            log.warning("feed ack on %s from no active feed: ignored", topic)
            return
        fid = parsed[0]
        try:
            ack = parse_ack(bytes(payload))
        except AckError as exc:
            self.counters["acks_refused"] += 1
            log.warning("feed %s: refused ack: %s", fid, exc)
            return
        self.counters["acks"] += 1
        if ack.acked is not None and ack.acked > feed.acked:
            head = uplink.head(self.conn)
            ours = uplink.record_hash_at(self.conn, ack.acked) if ack.acked <= head else None
            if ours is None or (ack.acked_hash is not None and ack.acked_hash != ours):
                self.counters["acks_refused"] += 1
                log.warning("feed %s acknowledges seq %d that is not ours (head %d): ignored", fid, ack.acked, head)
                return
            with transaction(self.conn):
                set_cursor(self.conn, fid, ack.acked, ours, int(time.time() * 1000))
            feed.acked = ack.acked
        if ack.resend:
            self.counters["resends"] += 1
            start = ack.acked if ack.acked is not None else feed.acked
            feed.next = start + 1
        elif feed.next is not None and feed.next <= feed.acked:
            feed.next = feed.acked + 1

    def _send_all(self) -> None:
        head = uplink.head(self.conn)
        for fid, f in self.feeds.items():
            while f.next is not None and f.next <= head and f.next <= f.acked + self.window:
                last = min(head, f.next + self.batch_records - 1, f.acked + self.window)
                if not self._send(fid, f, f.next, last):
                    break  # (f.next is where it stopped)
                f.next = last + 1

    def _send(self, fid: str, f: _Feed, first: int, last: int) -> bool:
        data = uplink.read(self.conn, first, last)
        if len(data) != last - first + 1:
            log.error("uplink read %d..%d returned %d records", first, last, len(data))
            return False
        for start, chunk in _split(first, data):  # at most 512 KiB and 2000 records a batch
            payload = seal_batch(
                self.sender,
                chunk,
                sign_key=self.sign_key,
                hub_seal_pub=f.seal_pub,
                sent_ms=int(time.time() * 1000),
                first_seq=start,
            )
            info = self.client.publish(topics.feed_batch(fid), payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                f.next = start  # paho's queue is full: go on from here on the next pass
                return False
            self.counters["batches_sent"] += 1
            self.counters["records_sent"] += len(chunk)
        return True
