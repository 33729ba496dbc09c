"""Which records to send next: pure cursor logic for an outbox drain (no I/O), shared by the
agent (agent/sync.py) and a child hub forwarding to its parent (hub/forwarder.py).

Records written after the agent (re)connected are *live* and go first; the older *backlog*
(acked+1 .. head at connect) follows. The hub acks the highest contiguous seq; anything sent
but not acked is resent after a rewind (the hub dedupes by (site, seq), so resends are safe).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DrainPlan:
    """Two cursors: backlog [backlog_next .. backlog_end] and live [live_next .. head]."""

    acked: int
    backlog_next: int
    backlog_end: int
    live_next: int

    @classmethod
    def start(cls, acked: int, head: int) -> DrainPlan:
        """A plan right after (re)connecting: everything above `acked` is backlog."""
        return cls(acked=acked, backlog_next=acked + 1, backlog_end=head, live_next=head + 1)

    def inflight(self) -> int:
        """Records sent but not yet acknowledged."""
        sent_backlog = max(0, min(self.backlog_next - 1, self.backlog_end) - self.acked)
        sent_live = max(0, self.live_next - 1 - max(self.backlog_end, self.acked))
        return sent_backlog + sent_live

    def next_range(self, head: int, max_records: int, max_inflight: int) -> tuple[int, int] | None:
        """The next contiguous range to send, live first; None when nothing may be sent now."""
        room = min(max_records, max_inflight - self.inflight())
        if room <= 0:
            return None
        if self.live_next <= head:
            first = self.live_next
            last = min(head, first + room - 1)
            self.live_next = last + 1
            return first, last
        if self.backlog_next <= self.backlog_end:
            first = self.backlog_next
            last = min(self.backlog_end, first + room - 1)
            self.backlog_next = last + 1
            return first, last
        return None

    def on_ack(self, acked: int) -> bool:
        """Apply the hub's contiguous ack; True when it moved forward."""
        if acked <= self.acked:
            return False
        self.acked = acked
        self.backlog_next = max(self.backlog_next, acked + 1)
        self.live_next = max(self.live_next, acked + 1)
        return True

    def rewind(self, from_seq: int) -> None:
        """Send again from `from_seq` (hub asked, or acks stalled). May go below acked if the
        hub says it lost data: its word is what counts for completeness."""
        from_seq = max(1, from_seq)
        if from_seq <= self.acked:
            self.acked = from_seq - 1
        if from_seq <= self.backlog_end:
            self.backlog_next = min(self.backlog_next, from_seq)
            self.live_next = min(self.live_next, self.backlog_end + 1)
        else:
            self.live_next = min(self.live_next, from_seq)

    def is_idle(self, head: int) -> bool:
        """Everything up to head is acknowledged."""
        return self.acked >= head


class TokenBucket:
    """Bounded drain rate (records/s) so a reconnect burst cannot flood the broker (cf. Kura)."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.t = None

    def wait_time(self, n: int, now: float) -> float:
        """Seconds to wait before `n` records may go; takes the tokens when 0."""
        if self.t is None:
            self.t = now
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        need = min(n, self.burst)
        if self.tokens >= need:
            self.tokens -= need
            return 0.0
        return (need - self.tokens) / self.rate
