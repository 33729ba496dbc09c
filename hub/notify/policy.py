"""Delivery decisions as pure functions over plain values: backoff, rate limit, digest text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hub.notify.templates import DIGEST, render

HOUR_MS = 3_600_000
# Order of cases inside a digest: the most urgent first.
DIGEST_ORDER = {"red": 0, "supervision": 1, "reply_due": 2, "yellow": 3}


def backoff_ms(attempt: int, base_s: float, cap_s: float, rand: float) -> int:
    """Delay after failed attempt `attempt` (1-based): base·2^(attempt-1), capped, with 'equal
    jitter' (half fixed, half random by `rand` in [0, 1)) so retries from a storm spread out."""
    delay = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return int(1000 * delay * (0.5 + 0.5 * rand))


def rate_wait_until(recent_ms: Sequence[int], now_ms: int, per_hour: int, window_ms: int = HOUR_MS) -> int | None:
    """None if one more message may go now; else the time a slot frees up in the sliding window.
    `recent_ms` are send times (any order) of this recipient's messages."""
    inside = sorted(t for t in recent_ms if t > now_ms - window_ms)
    if len(inside) < per_hour:
        return None
    return inside[len(inside) - per_hour] + window_ms


def should_digest(pending: int, threshold: int) -> bool:
    """More than `threshold` messages waiting for one recipient are sent as one digest."""
    return pending > threshold


def is_permanent_http(status: int) -> bool:
    """A 4xx answer will not change on retry, except timeouts and throttling."""
    return 400 <= status < 500 and status not in (408, 425, 429)


def digest_message(
    templates: Mapping[str, str], channel: str, items: Sequence[tuple[str, str]], max_lines: int
) -> tuple[str, str, dict]:
    """(text, subject, facts) of a digest for `items` = [(template, line)], most urgent first.
    SMS lists `max_lines` cases then 等N件; e-mail adds the full numbered list below."""
    items = sorted(items, key=lambda it: DIGEST_ORDER.get(it[0], 9))
    facts: dict = {k: sum(1 for t, _ in items if t == k) for k in DIGEST_ORDER}
    facts["count"] = len(items)
    shown = [line for _, line in items[:max_lines]]
    facts["lines"] = "；".join(shown)
    facts["more"] = render(templates, "digest.more", facts) if len(items) > len(shown) else ""
    text = render(templates, DIGEST, facts)
    subject = render(templates, "digest.subject", facts)
    if channel == "email":
        text += "\n\n" + "\n".join(f"{i}. {line}" for i, (_, line) in enumerate(items, 1))
    return text, subject, {k: v for k, v in facts.items() if k not in ("lines", "more")}
