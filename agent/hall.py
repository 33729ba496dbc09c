"""The hall's devices wired to the case store: keypads armed by complete/deliver, votes into
the log, window lamps showing each window's worst light, LED signs with the window's items
and today's counts, hub commands for signs, and box heartbeats.

Everything here is glue; the decisions live in agent/devices/ (pure functions) and the
store. A device failure is logged and shown in the heartbeat, never raised to the clerk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent.aio import cancel
from agent.devices.build import Devices, open_devices
from agent.devices.config import DevicesConfig, devices_from_board
from agent.devices.keypads.collector import VoteCollector
from agent.devices.lamps.keeper import LampKeeper
from agent.devices.signs.content import SignContent, apply_command, expire_notice, render_lines, sign_items
from agent.store import AgentStore
from protocol.calendar import CST
from protocol.models import KIND_VOTE

log = logging.getLogger("jiancha.agent.hall")
ARMING_EVENTS = ("complete", "deliver")


def devices_config_for(board_name: str) -> DevicesConfig:
    """The devices of a board profile (firmware-configs/)."""
    from agent.config import load_board

    return devices_from_board(load_board(board_name))


class Hall:
    """Owns the opened devices of one site and their refresh loop."""

    def __init__(
        self,
        store: AgentStore,
        config: DevicesConfig,
        *,
        fake: bool,
        data_dir: Path,
        refresh_s: float = 2.0,
        now: Callable[[], datetime] | None = None,
        cameras=None,
    ):
        self.store = store
        self.config = config
        self.fake = fake
        self.data_dir = Path(data_dir)
        self.refresh_s = refresh_s
        self.now = now or (lambda: datetime.now(CST))
        self.devices: Devices | None = None
        self.collector: VoteCollector | None = None
        self.keeper: LampKeeper | None = None
        self.notices: dict[str, SignContent] = {}
        self.state: dict[str, str] = {}
        self.cameras = cameras  # agent.cameras.Cameras or None
        self._stamp = None
        self.sign_lines: dict[str, list[str]] = {}
        self._task: asyncio.Task | None = None

    def open(self) -> None:
        """Open the drivers (or fakes) and start listening to keypads and case events."""
        self.devices = open_devices(self.config, self.data_dir / "signs", fake=self.fake)
        self.collector = VoteCollector(self.devices.desk, self.devices.keypads, self._on_vote)
        self.collector.start()
        self.keeper = LampKeeper(self.devices.lamps) if self.devices.lamps else None
        self.store.on_case_event.append(self._on_case_event)
        for k in self.devices.keypads:
            self.state[f"keypad-{k.window}"] = "ok"
        for missing in self.devices.missing:
            self.state[missing] = "no driver"
        if self.devices.lamps:
            self.state["lamps"] = "ok"
        if self.devices.sign:
            self.state["sign"] = "ok"
        if self.cameras is not None:
            try:
                self.cameras.start()
            except Exception as exc:
                log.exception("cameras could not be started")
                self.state["cameras"] = f"error: {exc}"[:100]
        log.info(
            "hall devices open: %d keypads, lamps %s, sign %s%s",
            len(self.devices.keypads),
            bool(self.devices.lamps),
            bool(self.devices.sign),
            " (fake)" if self.fake else "",
        )

    async def start(self) -> None:
        """Open devices and start the refresh loop."""
        self.open()
        self._task = asyncio.create_task(self._loop(), name="hall")

    async def stop(self) -> None:
        """Stop the loop and release every device."""
        await cancel(self._task)
        if self.collector:
            self.collector.close()
        if self.devices:
            self.devices.close()
        if self.cameras is not None:
            await asyncio.to_thread(self.cameras.stop)

    # -- events ------------------------------------------------------------------------------------
    def _on_vote(self, vote) -> None:
        """Every press goes into the log (misuse flagged, never dropped)."""
        self.store.append(KIND_VOTE, vote.to_record())

    def _on_case_event(self, view: dict, event_type: str) -> None:
        """办结/送达 at a window arms that window's keypad for this case (one vote per service)."""
        if event_type in ARMING_EVENTS and view.get("window") and self.collector:
            self.collector.arm(view["case_no"], view["window"], view.get("clerk"), view.get("department"))

    def command(self, msg: dict) -> None:
        """A hub command for the hall (sign_text); others are ignored here."""
        if msg.get("cmd") != "sign_text":
            return
        window = str(msg.get("window", ""))
        base = self.notices.get(window) or SignContent(window, self.config.window_labels.get(window, window))
        self.notices[window] = apply_command(
            base, {k: msg[k] for k in ("cmd", "window", "text", "seconds") if k in msg}, time.monotonic()
        )
        self._stamp = None  # the refresh loop (a worker thread) draws it within refresh_s

    # -- refresh -----------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:
                log.exception("hall refresh failed")
                self.state["hall"] = f"error: {exc}"[:100]
            await asyncio.sleep(self.refresh_s)

    def refresh(self) -> None:
        """Expire unused votes, set lamps, update signs."""
        now = self.now()
        if self.collector:
            self.collector.expire()
        # re-evaluating every open case costs ~20 µs each: only when something can have changed
        stamp = (self.store.head_seq, now.strftime("%Y-%m-%d %H:%M"))
        if stamp != self._stamp:
            self._stamp = stamp
            if self.keeper:
                lights = self.store.window_lights(now, set(self.devices.lamps.windows))
                self.keeper.update([(w, light) for w, ls in lights.items() for light in ls])
            sign = self.devices.sign if self.devices else None
            if sign is not None:
                self._refresh_sign(sign, now)
        elif self.devices and self.devices.sign is not None:
            self.devices.sign.flush(time.monotonic())

    def _refresh_sign(self, sign, now: datetime) -> None:
        counts = self.store.today_counts(now)
        staff = self.store.staff_on_duty(now)
        items = sign_items(self.store.catalog())
        mono = time.monotonic()
        for window in sign.windows:
            notice = expire_notice(self.notices.get(window, SignContent(window, "")), mono)
            c = counts.get(window, {})
            content = SignContent(
                window,
                self.config.window_labels.get(window, f"{window}号窗口"),
                staff=staff.get(window),
                items=items,
                received_today=c.get("received", 0),
                completed_today=c.get("completed", 0),
                notice=notice.notice,
                notice_until_mono=notice.notice_until_mono,
            )
            self.sign_lines[window] = render_lines(content, max(8, self._sign_cells()))
            try:
                sign.show(content, mono)
                self.state["sign"] = "ok"
            except Exception as exc:
                self.state["sign"] = f"error: {exc}"[:100]
        try:
            sign.flush(mono)
        except Exception as exc:
            self.state["sign"] = f"error: {exc}"[:100]

    def _sign_cells(self) -> int:
        sign = self.config.sign
        return (sign.width // 8) if sign is not None else 24  # a CJK character is 2 cells of 8 LEDs

    def evaluator(self, window: str) -> dict:
        """评价器 of a window as the clerk's page shows it: whether the window has a keypad, and
        whether it is armed now (for which case, seconds left)."""
        windows = self.collector.desk.windows if self.collector else ()
        if str(window) not in windows:
            return {"keypad": False, "armed": False}
        s = self.collector.session(str(window))
        if s is None:
            return {"keypad": True, "armed": False}
        left = max(0, (s.expires_mono_ns - time.monotonic_ns()) // 1_000_000_000)
        return {"keypad": True, "armed": True, "case_no": s.case_no, "voted": s.voted, "seconds_left": int(left)}

    def press(self, window: str, key: str) -> None:
        """Press a key of a FAKE keypad (demo and tests); KeyError for unknown window/key."""
        if not self.fake or not self.devices:
            raise PermissionError("keypad presses can only be simulated with fake devices")
        pad = next((k for k in self.devices.keypads if k.window == window), None)
        if pad is None:
            raise KeyError(f"no keypad at window {window!r}")
        pad.press(key)

    def device_states(self) -> dict[str, str]:
        """For the heartbeat and /api/health (including hub texts shown on signs)."""
        out = dict(self.state)
        if self.cameras is not None:
            out.update(self.cameras.states())
        mono = time.monotonic()
        for window, lines in self.sign_lines.items():  # what each sign shows (hub draws it)
            out[f"sign-lines-{window}"] = "\n".join(lines)[:1000]
        for window, c in self.notices.items():
            c = expire_notice(c, mono)
            if c.notice:
                out[f"sign-notice-{window}"] = c.notice
        return out
