"""Box heartbeats: health readings written to the log every few minutes (synced like cases),
and the systemd watchdog that pings only while the box is healthy enough to be useful."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent.aio import cancel, release_memory
from agent.health import HealthThresholds, HostReaders, collect, health_problems, status_text
from agent.watchdog import SystemdNotifier, WatchdogPinger, all_checks, store_check, watchdog_interval
from protocol.calendar import CST
from protocol.models import KIND_HEARTBEAT, Heartbeat

log = logging.getLogger("jiancha.agent.heartbeat")


def heartbeat_body(hb: dict, problems: list[str], now: datetime) -> dict:
    """The `heartbeat` record body from collect()'s readings (records carry no floats)."""

    def i(v, scale=1):
        return None if v is None else int(round(v * scale))

    load = hb.get("load") or [None]
    body = Heartbeat(
        at=now,
        cpu_temp_mc=i(hb.get("cpu_temp_c"), 1000),
        load1_x100=i(load[0], 100),
        mem_available_kb=i(hb.get("mem_available_bytes"), 1 / 1024),
        mem_total_kb=i(hb.get("mem_total_bytes"), 1 / 1024),
        disk_free_kb=i(hb.get("disk_free_bytes"), 1 / 1024),
        disk_total_kb=i(hb.get("disk_total_bytes"), 1 / 1024),
        backlog=hb.get("backlog"),
        clock=hb.get("clock"),
        problems=problems[:20],
        devices={
            k: str(v)[: 1000 if k.startswith("sign-lines-") else 100] for k, v in (hb.get("devices") or {}).items()
        },
    )
    return body.model_dump(mode="json", exclude_none=True)


def _clock_now(clock) -> datetime:
    """The box clock's best-known time (corrected after a jump), or the system's."""
    now = getattr(clock, "now", None)
    return now() if callable(now) else datetime.now(CST)


class BoxMonitor:
    """Heartbeat records on a timer, and READY/WATCHDOG/STATUS to systemd."""

    def __init__(
        self,
        store,
        clock,
        data_dir: Path,
        *,
        every_s: float,
        devices: Callable[[], dict] = dict,
        thresholds: HealthThresholds | None = None,
        readers: HostReaders | None = None,
    ):
        self.store = store
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.every_s = every_s
        self.devices = devices
        self.thresholds = thresholds or HealthThresholds()
        self.readers = readers or HostReaders()
        self.notifier = SystemdNotifier()
        self.pinger: WatchdogPinger | None = None
        self._task: asyncio.Task | None = None

    def reading(self) -> tuple[dict, list[str]]:
        """Current health readings and problems."""
        hb = collect(
            self.readers,
            data_dir=self.data_dir,
            backlog=self.store.counts()["backlog"],
            clock=self.clock.quality(),
            devices=self.devices(),
        )
        problems = health_problems(hb, self.thresholds)
        clock_problem = getattr(self.clock, "problem", lambda: None)()
        if clock_problem:  # a jump, or a clock behind the log: said before the generic text
            problems.insert(0, clock_problem)
        return hb, problems

    def beat(self, now: datetime | None = None) -> dict:
        """Write one heartbeat record; returns its body."""
        hb, problems = self.reading()
        body = heartbeat_body(hb, problems, now or _clock_now(self.clock))
        self.store.append(KIND_HEARTBEAT, body)
        return body

    async def start(self, status: str) -> None:
        """Tell systemd we are ready, start the watchdog (if asked for) and the heartbeats."""
        self.notifier.ready(status)
        interval = watchdog_interval()
        if interval is not None:
            self.pinger = WatchdogPinger(
                all_checks(store=store_check(self.store)),
                self.notifier,
                interval,
                status=lambda: status_text(*self.reading()),
            )
            self.pinger.start()
            log.info("systemd watchdog: pinging every %.1fs while healthy", interval)
        self._task = asyncio.create_task(self._loop(), name="heartbeat")

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.beat)
            except Exception:
                log.exception("heartbeat failed")
            release_memory()  # a year unattended: hand back what a big drain left behind
            await asyncio.sleep(self.every_s)

    async def stop(self) -> None:
        """STOPPING=1, then stop the loops."""
        self.notifier.stopping()
        await cancel(self._task)
        if self.pinger:
            await self.pinger.stop()
        self.notifier.close()
