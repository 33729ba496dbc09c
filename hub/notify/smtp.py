"""E-mail through an SMTP relay: stdlib smtplib, run in a worker thread.

smtplib is synchronous, but one short session per message in `asyncio.to_thread` is plenty for
reminder volumes, and it avoids another dependency (aiosmtplib) for the hub.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from hub.notify.channels import DeliveryError
from hub.notify.config import SmtpConfig
from hub.notify.outbox import Outgoing


def build_message(cfg: SmtpConfig, msg: Outgoing, footer: str = "") -> EmailMessage:
    """A UTF-8 text/plain message; its Message-ID becomes the provider id."""
    em = EmailMessage()
    user, _, domain = cfg.from_addr.partition("@")
    em["From"] = Address(display_name=cfg.from_name, username=user, domain=domain)
    em["To"] = msg.to
    em["Subject"] = msg.subject or msg.text[:40]
    em["Date"] = formatdate(localtime=True)
    em["Message-ID"] = make_msgid(idstring=str(msg.id), domain=domain)
    em.set_content(msg.text + (f"\n\n{footer}" if footer else "") + "\n", charset="utf-8")
    return em


def _tls(cfg: SmtpConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)


def send_sync(cfg: SmtpConfig, em: EmailMessage) -> None:
    """One SMTP session for one message; smtplib errors are mapped to DeliveryError."""
    try:
        if cfg.ssl:
            client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s, context=_tls(cfg))
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with client:
            if cfg.starttls:
                client.starttls(context=_tls(cfg))
            if cfg.user:
                client.login(cfg.user, cfg.password_value() or "")
            client.send_message(em)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _ in exc.recipients.values()]
        raise DeliveryError(
            f"recipient refused: {exc.recipients}", permanent=all(500 <= c < 600 for c in codes)
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP login failed ({exc.smtp_code}); check user/password") from None
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        raise DeliveryError(f"SMTP {exc.smtp_code}: {detail}", permanent=500 <= exc.smtp_code < 600) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from None


class EmailSender:
    """Channel that mails each message through `cfg`; blocking work runs in a thread."""

    def __init__(self, cfg: SmtpConfig, *, footer: str = ""):
        self.cfg = cfg
        self.footer = footer

    async def send(self, msg: Outgoing) -> str | None:
        """Send one message; returns its Message-ID."""
        em = build_message(self.cfg, msg, self.footer)
        await asyncio.to_thread(send_sync, self.cfg, em)
        return em["Message-ID"]

    async def aclose(self) -> None:
        """Nothing to close: each message uses its own SMTP session."""
