"""VoteCollector: the thin shell between keypads, the VoteDesk and the agent's log.

Keypad callbacks arrive on gpiozero's threads; the collector serialises them with a lock,
asks the desk, and hands every Vote (valid or flagged) to `sink` — typically a function that
appends a rating record to the store's log. Nothing is decided here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from agent.devices import Keypad, KeyPress
from agent.devices.keypads.desk import Session, Vote, VoteDesk

log = logging.getLogger(__name__)


class VoteCollector:
    """Starts keypads, classifies their presses with the desk, and passes votes to `sink`."""

    def __init__(
        self,
        desk: VoteDesk,
        keypads: Iterable[Keypad],
        sink: Callable[[Vote], None],
        mono_ns: Callable[[], int] = time.monotonic_ns,
    ):
        self.desk = desk
        self.keypads = list(keypads)
        self._sink = sink
        self._mono_ns = mono_ns
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin listening on every keypad."""
        for kp in self.keypads:
            kp.start(self.on_press)

    def on_press(self, press: KeyPress) -> Vote | None:
        """Classify one press and hand the vote to the sink (a bounce returns None)."""
        with self._lock:
            try:
                vote = self.desk.press(press.window, press.key, press.mono_ns, press.wall_ms)
            except KeyError as exc:  # a key or window missing from the config: say so, go on
                log.error("keypad press ignored: %s", exc)
                return None
        if vote is not None:
            self._sink(vote)
        return vote

    def arm(
        self, case_no: str, window: str | None, staff: str | None = None, department: str | None = None
    ) -> Session | None:
        """Arm `window`'s keypad for a case (on the clerk's complete/deliver)."""
        if window is None:
            return None
        with self._lock:
            return self.desk.arm(case_no, str(window), staff, department, self._mono_ns())

    def session(self, window: str) -> Session | None:
        """The window's live armed session (the clerk's page shows it), or None."""
        with self._lock:
            return self.desk.session(str(window), self._mono_ns())

    def expire(self) -> list[Session]:
        """End timed-out sessions; the unrated ones are returned."""
        with self._lock:
            return self.desk.expire(self._mono_ns())

    def close(self) -> None:
        """Close every keypad."""
        for kp in self.keypads:
            kp.close()
