"""VoteDesk: turns raw key presses into votes (一次一评), pure — no GPIO, no clocks.

The clerk's ``complete``/``deliver`` arms a window's keypad for that case. The first press
while armed is the vote for that service. Every other press is kept as a vote record flagged
as misuse and never dropped (HappyOrNot practice; 好差评 ratings can be appealed, not deleted):

    disarmed  nobody armed the keypad (or the arm timed out)
    repeat    a further press after this service's vote, before the arm timed out
    burst     many presses in a short time (a child, a protest, a stuck key); a burst never
              consumes an armed session, so a calm press afterwards still counts

Contact bounce is not a press: an edge of the same key within ``debounce_ms`` of that key's
previous edge is discarded (gpiozero's mock pins ignore ``bounce_time``, and real keys
chatter longer than the kernel's filter on some units, so this is done here, on the
monotonic clock). Times are passed in: ``mono_ns`` for decisions, ``wall_ms`` for the record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from agent.devices.keypads.mapping import KeyMapping

Misuse = Literal["disarmed", "repeat", "burst"]
MISUSE_KINDS: tuple[str, ...] = ("disarmed", "repeat", "burst")
_NS = 1_000_000_000


@dataclass(frozen=True)
class DeskSettings:
    """Decision thresholds of the desk (see agent.devices.config.VoteDeskConfig)."""

    debounce_ms: int = 50
    arm_timeout_s: float = 120.0
    burst_presses: int = 4  # this many presses ...
    burst_window_s: float = 3.0  # ... within this many seconds is a burst


@dataclass
class Session:
    """One armed service at one window: who served, for which case, until when."""

    case_no: str
    window: str
    staff: str | None
    department: str | None
    armed_mono_ns: int
    expires_mono_ns: int
    voted: bool = False


@dataclass(frozen=True)
class Vote:
    """One key press as a record: a valid vote (misuse None) or a flagged misuse."""

    case_no: str | None
    window: str
    staff: str | None
    department: str | None
    key: str  # board key name
    key_label: str  # label printed on the key (很满意, 一般, ...)
    level: int  # 1..5 on the national scale (1 = 非常满意)
    level_name: str  # 非常满意 / 满意 / 基本满意 / 不满意 / 非常不满意
    mapping_version: str  # e.g. keypad4-v1
    misuse: Misuse | None
    pressed_wall_ms: int
    pressed_mono_ns: int

    @property
    def is_valid(self) -> bool:
        """True when the press counts as the service's rating."""
        return self.misuse is None

    def to_record(self) -> dict:
        """Plain dict for the log (the same keys as the dataclass fields)."""
        return asdict(self)


def is_bounce(last_edge_ns: int | None, now_ns: int, debounce_ms: int) -> bool:
    """True when an edge of the same key comes within the debounce interval of the previous one."""
    return last_edge_ns is not None and 0 <= now_ns - last_edge_ns < debounce_ms * 1_000_000


def is_burst(recent_ns: Iterable[int], now_ns: int, presses: int, window_s: float) -> bool:
    """True when `now_ns` makes `presses` or more presses within `window_s` (recent excludes now)."""
    horizon = now_ns - int(window_s * _NS)
    return 1 + sum(1 for t in recent_ns if t > horizon) >= presses


def is_live(session: Session | None, now_ns: int) -> bool:
    """True while a session exists and has not timed out."""
    return session is not None and now_ns < session.expires_mono_ns


def classify(session: Session | None, now_ns: int, burst: bool) -> Misuse | None:
    """The misuse flag of a press (None = a valid vote), given the window's session."""
    if burst:
        return "burst"
    if not is_live(session, now_ns):
        return "disarmed"
    return "repeat" if session.voted else None  # type: ignore[union-attr]


@dataclass
class _WindowState:
    mapping: KeyMapping
    session: Session | None = None
    last_edge_ns: dict[str, int] = field(default_factory=dict)
    recent_ns: deque = field(default_factory=deque)


class VoteDesk:
    """Arms keypads per service and classifies presses; holds state only, decides purely."""

    def __init__(self, mappings: Mapping[str, KeyMapping], settings: DeskSettings | None = None):
        self.settings = settings or DeskSettings()
        self._windows = {str(w): _WindowState(m) for w, m in mappings.items()}

    @property
    def windows(self) -> tuple[str, ...]:
        """Windows that have a keypad."""
        return tuple(self._windows)

    def arm(
        self, case_no: str, window: str, staff: str | None, department: str | None, now_mono_ns: int
    ) -> Session | None:
        """Arm the window's keypad for a case (complete/deliver); None if it has no keypad."""
        state = self._windows.get(str(window))
        if state is None:
            return None
        expires = now_mono_ns + int(self.settings.arm_timeout_s * _NS)
        old = state.session
        if old is not None and is_live(old, now_mono_ns) and old.case_no == case_no:
            # complete then deliver in one visit: one service, one vote; just extend the time
            old.expires_mono_ns = expires
            old.staff, old.department = staff or old.staff, department or old.department
            return old
        state.session = Session(case_no, str(window), staff, department, now_mono_ns, expires)
        return state.session

    def disarm(self, window: str) -> Session | None:
        """Clerk cancels: the window's session ends now; returns it (None if there was none)."""
        state = self._windows.get(str(window))
        if state is None:
            return None
        old, state.session = state.session, None
        return old

    def session(self, window: str, now_mono_ns: int) -> Session | None:
        """The window's live session, if any."""
        state = self._windows.get(str(window))
        s = state.session if state else None
        return s if is_live(s, now_mono_ns) else None

    def expire(self, now_mono_ns: int) -> list[Session]:
        """End timed-out sessions; returns those that ended without a vote (service not rated)."""
        unrated = []
        for state in self._windows.values():
            s = state.session
            if s is not None and not is_live(s, now_mono_ns):
                state.session = None
                if not s.voted:
                    unrated.append(s)
        return unrated

    def press(self, window: str, key: str, mono_ns: int, wall_ms: int) -> Vote | None:
        """Classify one raw press; None for contact bounce, else a Vote (possibly flagged)."""
        try:
            state = self._windows[str(window)]
        except KeyError:
            raise KeyError(f"window {window!r} has no keypad (keypads: {', '.join(self._windows) or 'none'})") from None
        meaning = state.mapping.meaning(key)
        last = state.last_edge_ns.get(key)
        state.last_edge_ns[key] = mono_ns
        if is_bounce(last, mono_ns, self.settings.debounce_ms):
            return None
        s = self.settings
        horizon = mono_ns - int(s.burst_window_s * _NS)
        while state.recent_ns and state.recent_ns[0] <= horizon:
            state.recent_ns.popleft()
        burst = is_burst(state.recent_ns, mono_ns, s.burst_presses, s.burst_window_s)
        state.recent_ns.append(mono_ns)
        session = state.session if is_live(state.session, mono_ns) else None
        misuse = classify(session, mono_ns, burst)
        if misuse is None:
            session.voted = True  # type: ignore[union-attr]
        return Vote(
            case_no=session.case_no if session else None,
            window=str(window),
            staff=session.staff if session else None,
            department=session.department if session else None,
            key=key,
            key_label=meaning.label,
            level=meaning.level,
            level_name=meaning.level_name,
            mapping_version=state.mapping.version,
            misuse=misuse,
            pressed_wall_ms=wall_ms,
            pressed_mono_ns=mono_ns,
        )
