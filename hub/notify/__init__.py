"""SMS/e-mail reminders (短信提醒) for yellow/red cards and 督办: directory, templates, outbox, channels.

Names are loaded lazily so `hub/config.py` can embed `hub.notify.config.NotifyConfig` without
importing aiohttp or the worker.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "NotifyConfig": "config",
    "SmsGatewayConfig": "config",
    "SmtpConfig": "config",
    "Directory": "directory",
    "Department": "directory",
    "Person": "directory",
    "Recipient": "directory",
    "DirectoryError": "directory",
    "load_directory": "directory",
    "save_directory": "directory",
    "read_directory": "directory",
    "MIGRATIONS": "schema",
    "DEFAULT_TEMPLATES": "templates",
    "TemplateError": "templates",
    "Notifier": "notifier",
    "build_channels": "notifier",
    "SmsGateway": "sms",
    "EmailSender": "smtp",
    "DeliveryError": "channels",
    "Channel": "channels",
    "Outgoing": "outbox",
    "retry_failed": "outbox",
    "counts": "outbox",
    "delivery_of": "outbox",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"hub.notify.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hub.notify' has no attribute {name!r}")
