"""The outbox drain's cursor logic lives in protocol/drain.py (pure), shared with the hub's
uplink to its parent (hub/forwarder.py); re-exported here for the agent."""

from __future__ import annotations

from protocol.drain import DrainPlan, TokenBucket

__all__ = ["DrainPlan", "TokenBucket"]
