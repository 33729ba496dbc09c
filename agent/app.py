"""`jiancha agent run`: the store, the clerk API and the sync loop in one process."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from agent.aio import release_memory
from agent.api import create_app
from agent.clerk_sessions import SessionPolicy
from agent.clock import BoxClock
from agent.config import AgentConfig
from agent.hall import Hall, devices_config_for
from agent.heartbeat import BoxMonitor
from agent.httpguard import GuardedSite, HttpLimits, runner_kwargs
from agent.integrity import StoreDamaged, refusal_text
from agent.store import AgentStore
from agent.sync import Syncer
from agent.tls import PLAIN_HTTP_WARNING, server_context
from agent.web import ClerkWeb
from iobase.config import load_config
from protocol.records import decode_record

log = logging.getLogger("jiancha.agent")


async def start_http(
    app: web.Application, host: str | None, port: int, limits: HttpLimits, ssl_context=None
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port with the connection guard (over TLS only with `ssl_context`);
    (runner, actual port)."""
    runner = web.AppRunner(app, access_log=None, **runner_kwargs(limits))
    await runner.setup()
    site = GuardedSite(runner, host, port, limits, ssl_context=ssl_context)
    await site.start()
    return runner, site.port


SHUTDOWN_LIMIT_S = 20.0


async def serve(
    cfg: AgentConfig,
    *,
    http_port: int | None = None,
    data_dir: Path | None = None,
    stop: asyncio.Event | None = None,
    http_limits: HttpLimits | None = None,
    shutdown_limit_s: float | None = None,
) -> None:
    """Run the agent until `stop` is set (or SIGINT/SIGTERM). With `shutdown_limit_s` (the CLI),
    a shutdown that takes longer dumps every thread's stack to stderr and exits the process."""
    ssl_context = server_context(cfg.http.tls) if cfg.http.tls is not None else None  # before anything starts
    if ssl_context is None:
        log.warning(PLAIN_HTTP_WARNING)
    data = Path(data_dir or cfg.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    clock = BoxClock()
    # checked before anything opens it: a damaged or vanished store raises StoreDamaged (run()
    # prints why and exits 65), it is never replaced by a fresh one (agent/integrity.py)
    store = AgentStore(data / "agent.db", cfg.site.code, clock=clock)
    head_flusher = asyncio.create_task(_flush_head_every(store, 1.0))
    store.load_calendar()
    if store.head_seq:  # the newest record anchors the clock: never behind it, and a jump since is seen
        newest = decode_record(store.read_log(store.head_seq, store.head_seq)[0])
        clock.set_floor(newest.wall_ms, newest.mono_ns, newest.boot_id)
    sync = Syncer(cfg, store, clock)
    store.on_append.append(lambda rec: sync.kick())
    hall = await _start_hall(cfg, store, data, clock)
    if hall is not None:
        sync.on_command.append(hall.command)
        _wire_clips(hall, sync, cfg)
    limits = http_limits or HttpLimits.from_config(cfg.http)
    clerk_web = clerk_web_for(cfg, store, hall, https=ssl_context is not None)
    app = create_app(store, cfg.http.token, sync=sync, hall=hall, now=clock.now, limits=limits, clerk_web=clerk_web)
    port = cfg.http.port if http_port is None else http_port
    runner, actual = await start_http(app, cfg.http.host, port, limits, ssl_context)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await sync.start()
    monitor = BoxMonitor(
        store, clock, data, every_s=cfg.devices.heartbeat_s, devices=hall.device_states if hall else dict
    )
    await monitor.start(f"serving {cfg.site.code} on :{actual}")
    scheme = "https" if ssl_context else "http"
    log.info(
        "agent %s listening on %s://%s:%s (seq %d, acked %d)",
        cfg.site.code,
        scheme,
        cfg.http.host,
        actual,
        store.head_seq,
        store.acked_seq(),
    )
    print(f"agent {cfg.site.code} ready on {scheme}://{cfg.http.host}:{actual}", flush=True)
    release_memory()  # start-up churn (migrations, schemas, device set-up) is garbage now
    try:
        await stop.wait()
    finally:
        # A box asked to stop must stop: if shutting down hangs (a device, the broker client, a
        # worker thread), the stacks of every thread go to stderr (the journal) and the process
        # exits after SHUTDOWN_LIMIT_S instead of waiting for systemd's SIGKILL with no trace.
        if shutdown_limit_s is not None:
            faulthandler.dump_traceback_later(shutdown_limit_s, exit=True)
        log.info("stopping")
        head_flusher.cancel()
        await monitor.stop()
        await sync.stop()
        await runner.cleanup()
        if hall is not None:
            await hall.stop()
        store.close()


def clerk_web_for(cfg: AgentConfig, store: AgentStore, hall, *, https: bool) -> ClerkWeb:
    """The clerk's window pages of this box (agent/web.py), from agent.yaml and the board's windows."""
    windows, labels = board_windows(cfg.site.board)
    return ClerkWeb(
        store,
        hall_name=cfg.site.name,
        phone=cfg.hall.supervision_phone,
        lookup_url=cfg.hall.lookup_url,
        windows=windows,
        window_labels=labels,
        hall=hall,
        policy=SessionPolicy.from_config(cfg.http.sessions),
        https=https,
    )


def board_windows(board: str) -> tuple[list[str], dict[str, str]]:
    """The windows the box's board defines (ids as text) and their labels; none for an unknown board."""
    from agent.config import BoardError, load_board

    try:
        b = load_board(board)
    except BoardError:
        return [], {}
    return [str(w.id) for w in b.windows], {str(w.id): w.label for w in b.windows}


async def _flush_head_every(store: AgentStore, every_s: float) -> None:
    """Bring the head file (agent.db.head) up to the committed log once a second when it is
    behind: appends write it at most once per second themselves (agent/integrity.py)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(store.flush_head)
        except Exception:
            log.exception("writing the head file failed")


def _wire_clips(hall, sync, cfg: AgentConfig) -> None:
    """Boxes that record can answer the hub's clip requests."""
    cams = hall.cameras
    if cams is None or cams.index is None:
        return
    from agent.clipsend import ClipSender

    sender = ClipSender(cams.index, sync.publish_raw, cfg.site.code, sync.sign_key)
    sync.on_command.append(sender.command)
    sync.on_clip_ack.append(sender.on_ack)
    cams.tickers.append(sender.tick)
    sender.resume()


def _has_cameras(cfg: AgentConfig, fake: bool) -> bool:
    """Only boxes with cameras load OpenCV and numpy (+11 MB)."""
    from agent.config import load_board

    return (
        fake
        or bool(cfg.devices.cameras and cfg.devices.cameras.get("cameras"))
        or bool(load_board(cfg.site.board).cameras)
    )


def _cameras(cfg: AgentConfig, store: AgentStore, data: Path, clock: BoxClock, devices, fake: bool):
    from agent.cameras import Cameras, cameras_for
    from agent.devices.camera.config import CamerasConfig

    cams_cfg = cameras_for(
        cfg.site.board,
        CamerasConfig.model_validate(cfg.devices.cameras) if cfg.devices.cameras else None,
        [k.window for k in devices.keypads] if fake else None,
        cfg.devices.fake_absent_s,
    )
    if not cams_cfg.cameras:
        return None
    return Cameras(
        store,
        cams_cfg,
        fake=fake,
        data_dir=data,
        calendar=store.calendar,
        clock_quality=clock.quality,
        fake_visits=cfg.devices.fake_visits,
    )


async def _start_hall(cfg: AgentConfig, store: AgentStore, data: Path, clock: BoxClock):
    """Open the hall's devices; a box without working devices still registers cases."""
    if cfg.devices.mode == "off":
        return None
    try:
        fake = cfg.devices.mode == "fake"
        devices = devices_config_for(cfg.site.board)
        cameras = _cameras(cfg, store, data, clock, devices, fake) if _has_cameras(cfg, fake) else None
        hall = Hall(
            store, devices, fake=fake, data_dir=data, refresh_s=cfg.devices.refresh_s, cameras=cameras, now=clock.now
        )
        await hall.start()
        return hall
    except Exception:
        log.exception("devices of board %r could not be opened; running without them", cfg.site.board)
        return None


def run(config: str | Path, *, http_port: int | None = None, data_dir: str | Path | None = None) -> int:
    """Blocking entry point for the CLI."""
    cfg = load_config(config, AgentConfig)
    try:
        asyncio.run(
            serve(
                cfg,
                http_port=http_port,
                data_dir=Path(data_dir) if data_dir else None,
                shutdown_limit_s=SHUTDOWN_LIMIT_S,
            )
        )
    except StoreDamaged as exc:  # no traceback: the path, what is wrong, the recovery commands
        print(refusal_text(exc, config=config, data_dir=data_dir), file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
