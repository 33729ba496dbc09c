"""`jiancha hub run`: ingest thread, MQTT link, config push and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import ssl
import threading
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from hub.api import create_app
from hub.clips import ClipReceiver
from hub.config import HubConfig, HubTls
from hub.configpush import ConfigPusher
from hub.db import connect
from hub.docworker import DocumentWorker
from hub.feeds import FeedPublisher, has_feeds, publisher_cert_paths
from hub.forwarder import Forwarder
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.lease import Lease
from hub.mqtt import HubLink
from hub.notify import Notifier
from hub.rollups import RollupProducer
from hub.store import open_db
from hub.supervision import Supervisor
from hub.uplink import Uplink
from hub.workers import supervise, worker_credentials
from iobase.config import load_config
from iobase.sqlite import transaction
from iobase.tls import server_context

log = logging.getLogger("jiancha.hub")


READER_POOL = 4  # PostgreSQL connections the API reads through (SQLite: one connection)


class Hub:
    """Wires the parts together; `start()`/`stop()` are synchronous.

    With `worker=K` this process is ingest worker K of several sharing one PostgreSQL store
    (hub/workers.py): it connects as `jc-hub-K` on the shared subscription, counts into its own
    counter shard, and runs the sweep, config push, notifier and document worker only while it
    holds the leader lease (hub/lease.py)."""

    def __init__(self, cfg: HubConfig, data_dir: Path | None = None, *, worker: int | None = None):
        self.cfg = cfg
        self.data_dir = Path(data_dir or cfg.data_dir)
        self.db_path = self.data_dir / "hub.db"  # SQLite only; store_url says where the store is
        self.store_url = cfg.store_url(self.data_dir)
        self.identity = None
        if worker is not None:
            self.identity, cert, key = worker_credentials(cfg, worker, self.store_url)
        self.conn = open_db(self.store_url)
        if self.identity is not None:  # (the one hub process counts in the counters table)
            self.conn.counter_shard = self.identity
        self.keys = HubKeys.load(cfg)
        self.sites = SiteKeys(cfg.registry)
        self.link = (
            HubLink(cfg, on_message=lambda t, p: self.ingest.submit(t, p))
            if worker is None
            else HubLink(
                cfg, on_message=lambda t, p: self.ingest.submit(t, p), identity=self.identity, cert=cert, key=key
            )
        )
        sup = cfg.supervision
        self.notifier = Notifier(cfg.notify, self.store_url)
        self.supervisor = Supervisor(sup, calendar=lambda: self.ingest.calendar, notify=self.notifier.supervisor_hook())
        self.supervisor.complaints_cfg = cfg.complaints  # 投诉 limits, swept with the cases (hub/complaints.py)
        tolerance = timedelta(hours=sup.backdate_tolerance_hours) if sup.backdate_tolerance_hours is not None else None
        self.ingest = Ingestor(
            self.conn,
            self.keys,
            self.sites,
            self.link.publish,
            default_yellow=sup.yellow_days,
            sweep_interval_s=sup.sweep_interval_s,
            supervisor=self.supervisor,
            backdate_tolerance=tolerance,
        )
        self.ingest.backentry_grace_ms = int(sup.backentry_grace_minutes * 60_000)
        # a child hub writes every card and 督办 step to its uplink outbox too (hub/uplink.py);
        # one process forwards it (several would fight over the one broker identity)
        # and so does a hub with a third-party feed (hub/feeds.py, docs/feed.md): the feed is the outbox
        self.ingest.uplink = self.supervisor.uplink = Uplink(cfg.parent is not None or has_feeds(cfg.registry))
        self.forwarder = Forwarder(cfg, self.store_url) if cfg.parent is not None and worker in (None, 1) else None
        self.feeds = (
            FeedPublisher(cfg, self.store_url, sign_key=self.keys.sign_key, uplink_hooks=self.ingest.uplink)
            if worker in (None, 1) and publisher_cert_paths(cfg)[0].is_file()
            else None
        )
        self.rollups = None
        if cfg.parent is not None:  # hourly roll-ups of changed hours, by the leader (hub/rollups.py)
            self.rollups = RollupProducer(
                self.conn,
                lambda: self.ingest.calendar,
                cfg.region,
                now=lambda: self.ingest.now(),
                every_s=cfg.parent.rollup_every_s,
            )
            self.ingest.on_idle_leader.append(self.rollups.maybe_tick)
        self.ingest.ratings = cfg.ratings  # 差评 follow-up limits (hub/followups.py)
        clip_caps = {
            k: v
            for k in ("site_cap_bytes", "clip_cap_bytes")
            if (v := getattr(getattr(cfg, "clips", None), k, None)) is not None
        }
        self.ingest.clips = ClipReceiver(self.data_dir / "clips", **clip_caps)
        self.pusher = ConfigPusher(
            self.conn, self.sites, self.keys.sign_key, self.link.publish, on_calendar_change=self.ingest.reload_calendar
        )
        self.ingest.on_idle.append(self.sites.maybe_reload)  # revocations/new sites within ~1 s
        self.ingest.on_idle_leader.append(self.pusher.tick)
        self.ingest.on_idle_leader.append(self.notifier.wake)  # new reminders go out at once
        self.docs = DocumentWorker(
            self.store_url,
            files_dir=self.data_dir / "documents",
            authority=cfg.name,
            prefix=cfg.doc_prefix,
            calendar=lambda: self.ingest.calendar,
        )
        self.lease = None
        if worker is not None:
            # held by this process, not the identity: a restarted worker waits like the others
            holder = f"{self.identity}#{os.getpid()}-{secrets.token_hex(3)}"  # (pids repeat in containers)
            self.lease = Lease(self.store_url, holder, ttl_s=cfg.workers.lease_s)
            for part in (self.notifier, self.docs):
                part.gate = self.lease.held
            self.ingest.leader = self.lease.held
            self.ingest.on_idle.append(self.ingest.refresh_calendar)  # the leader may import one
        self.reader = connect(self.store_url, synchronous="NORMAL", pool=READER_POOL)
        self.writer = connect(self.store_url)  # API writes (replies, reviews, imports)
        self._write_lock = threading.Lock()

    def write(self, fn):
        """Run fn(conn) in one immediate transaction on the API's write connection."""
        with self._write_lock, transaction(self.writer):
            return fn(self.writer)

    def start(self) -> None:
        """Start ingest before the link so no message waits on a missing consumer."""
        import gc

        gc.freeze()  # start-up objects (modules, models) are never garbage: skip them in GC passes
        if self.lease is not None:
            self.lease.start()
        self.ingest.start()
        self.docs.start()
        self.notifier.start()
        self.link.start()
        if self.forwarder is not None:
            self.forwarder.start()
        if self.feeds is not None:
            self.feeds.start()

    def stop(self) -> None:
        """Stop the link, drain ingest, close the database."""
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.feeds is not None:
            self.feeds.stop()
        self.link.stop()
        self.ingest.stop()
        self.docs.stop()
        self.notifier.stop()
        if self.lease is not None:
            self.lease.stop()  # given up: another worker leads at once
        self.reader.close()
        self.writer.close()
        self.conn.close()


HEADER_TIMEOUT_S = 20.0  # request line and headers, from connection (or previous response) to complete
BODY_TIMEOUT_S = 30.0  # a request body (at most 1 MiB), from its headers to its last byte


PLAIN_HTTP_WARNING = (
    "api.tls is not set: the web is plain HTTP and operators' passwords and session cookies travel in "
    "clear; set api.tls in hub.yaml (`jiancha provision hub-https`, docs/operations.md)"
)


def tls_context(tls: HubTls) -> ssl.SSLContext:
    """A server SSLContext (TLS 1.2 at least) with `tls.cert` (chain) and `tls.key`; a
    ConfigError naming the file when one is missing, unreadable or not PEM of the right kind."""
    return server_context(tls.cert, tls.key, section="api.tls")


async def start_http(
    app: web.Application,
    host: str,
    port: int,
    *,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    reuse_port: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve `app` (over TLS only when `ssl_context` is given); returns (runner, actual port).

    aiohttp's keep-alive timer runs from the connection (or the last response) and closes the
    connection if no complete request has arrived by then: with it set to `header_timeout_s`,
    an idle connection or half-sent headers are dropped within that time (data trickling in
    does not extend it). Half-sent bodies are bounded by hub.api.body_deadline."""
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=header_timeout_s, lingering_time=min(10.0, header_timeout_s)
    )
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port or None, ssl_context=ssl_context).start()
    return runner, (runner.addresses[0][1] if runner.addresses else port)


async def serve(
    cfg: HubConfig, *, http_port: int | None = None, stop: asyncio.Event | None = None, worker: int | None = None
) -> None:
    """Run the hub (or ingest worker `worker`) until `stop` is set (or SIGINT/SIGTERM)."""
    tls = getattr(cfg.api, "tls", None)
    ssl_context = tls_context(tls) if tls is not None else None  # before anything starts
    if ssl_context is None:
        log.warning(PLAIN_HTTP_WARNING)
    hub = Hub(cfg, worker=worker)
    hub.start()
    app = create_app(
        hub, hub.reader, cfg.api.admin_token, body_timeout_s=getattr(cfg.api, "body_timeout_s", None) or BODY_TIMEOUT_S
    )
    port = cfg.api.port if http_port is None else http_port
    runner, actual = await start_http(  # workers share the port: the kernel spreads connections
        app,
        cfg.api.host,
        port,
        header_timeout_s=getattr(cfg.api, "header_timeout_s", None) or HEADER_TIMEOUT_S,
        reuse_port=worker is not None,
        ssl_context=ssl_context,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    who = f" worker {hub.identity}" if worker is not None else ""
    print(f"hub {cfg.name}{who} ready on {'https' if ssl_context else 'http'}://{cfg.api.host}:{actual}/", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await asyncio.to_thread(hub.stop)


def run(config: str | Path, *, http_port: int | None = None, worker: int | None = None, workers: int = 0) -> int:
    """Blocking entry point for the CLI: the one hub process, ingest worker `worker`, or a
    supervisor of `workers` worker processes (hub/workers.py)."""
    cfg = load_config(config, HubConfig)
    if workers:
        if cfg.api.tls is not None:
            tls_context(cfg.api.tls)  # a bad certificate is named once, before any worker starts
        return supervise(Path(config), cfg, workers, http_port=http_port)
    asyncio.run(serve(cfg, http_port=http_port, worker=worker))
    return 0
