"""What the delivery worker needs from a channel (SMS gateway, SMTP relay, or a test fake)."""

from __future__ import annotations

from typing import Protocol

from hub.notify.outbox import Outgoing


class DeliveryError(Exception):
    """A send failed. `permanent` = retrying cannot help (e.g. HTTP 400, SMTP 550)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    """Sends one message; returns the provider's message id (or None) or raises DeliveryError."""

    async def send(self, msg: Outgoing) -> str | None: ...

    async def aclose(self) -> None: ...
