"""Errors raised by provisioning; each message says what is wrong and what to do."""

from __future__ import annotations


class ProvisioningError(Exception):
    """Provisioning cannot do what was asked (existing hub, duplicate site, revoked code, ...)."""


class CAError(ProvisioningError):
    """The CA folder is missing, damaged, or asked to do something impossible."""


class BrokerError(ProvisioningError):
    """Mosquitto is missing, would not start, or died."""
