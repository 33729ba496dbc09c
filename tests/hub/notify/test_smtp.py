"""E-mail through a real local SMTP server (aiosmtpd on 127.0.0.1): content, auth, STARTTLS, rejects."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl

import aiosmtpd.controller as aiosmtpd_controller
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from hub.notify.channels import DeliveryError
from hub.notify.config import NotifyConfig, SmtpConfig
from hub.notify.outbox import Outgoing
from hub.notify.smtp import EmailSender
from tests.hub.notify.test_notifier import YELLOW, rows
from tests.ports import free_port

MSG = Outgoing(
    id=7,
    channel="email",
    to="wang@scjg.example.gov.cn",
    subject="【红牌】办件S01-0007已超期",
    text="【电子监察】办件S01-0007已超期，请立即办理。",
    dedupe_key="c:7",
    attempt=1,
)


class Inbox:
    """aiosmtpd handler: keeps what arrives; `rcpt_reply` refuses recipients (e.g. '550 ...')."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.rcpt_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted"


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    ctl = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    inbox.port = port
    yield inbox
    ctl.stop()


def mail_cfg(port: int, **kw) -> SmtpConfig:
    return SmtpConfig(
        host="127.0.0.1",
        port=port,
        starttls=False,
        from_addr="jiancha@jz.example.gov.cn",
        from_name="晋中市电子监察系统",
        timeout_s=5,
        **kw,
    )


async def test_chinese_mail_arrives_with_subject_body_and_message_id(smtp):
    sender = EmailSender(mail_cfg(smtp.port), footer="（本邮件由电子监察系统自动发送，请勿直接回复。）")
    mid = await sender.send(MSG)
    [(mail_from, rcpts, msg)] = smtp.messages
    assert mail_from == "jiancha@jz.example.gov.cn" and rcpts == ["wang@scjg.example.gov.cn"]
    assert msg["Subject"] == "【红牌】办件S01-0007已超期"
    assert msg["From"].addresses[0].display_name == "晋中市电子监察系统"
    assert msg["Message-ID"] == mid and mid.startswith("<") and "jz.example.gov.cn" in mid
    body = msg.get_body().get_content()
    assert "办件S01-0007已超期" in body and "请勿直接回复" in body
    assert msg.get_body().get_content_charset() == "utf-8"


@pytest.mark.parametrize("reply, permanent", [("550 5.1.1 no such user", True), ("451 4.3.0 try later", False)])
async def test_refused_recipient(smtp, reply, permanent):
    smtp.rcpt_reply = reply
    with pytest.raises(DeliveryError, match="recipient refused") as exc:
        await EmailSender(mail_cfg(smtp.port)).send(MSG)
    assert exc.value.permanent is permanent


async def test_dead_server_is_transient():
    with pytest.raises(DeliveryError) as exc:
        await EmailSender(
            mail_cfg(
                free_port(),
            )
        ).send(MSG)
    assert not exc.value.permanent


def test_login(monkeypatch):
    seen = []

    def auth(server, session, envelope, mechanism, data):
        seen.append((mechanism, data.login, data.password) if isinstance(data, LoginPassword) else mechanism)
        return AuthResult(success=data.password == b"p-456", handled=False)

    inbox, port = Inbox(), free_port()
    ctl = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=auth, auth_require_tls=False
    )
    ctl.start()
    try:
        import asyncio

        monkeypatch.setenv("SMTP_PASS", "p-456")
        asyncio.run(EmailSender(mail_cfg(port, user="jiancha", password_env="SMTP_PASS")).send(MSG))
        assert seen and seen[0][1:] == (b"jiancha", b"p-456") and len(inbox.messages) == 1
        monkeypatch.setenv("SMTP_PASS", "wrong")
        with pytest.raises(DeliveryError, match="login failed"):
            asyncio.run(EmailSender(mail_cfg(port, user="jiancha", password_env="SMTP_PASS")).send(MSG))
    finally:
        ctl.stop()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    crt, pem = tmp_path / "mail.crt", tmp_path / "mail.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return crt, pem


def test_starttls_with_an_internal_ca(tmp_path):
    import asyncio

    crt, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    inbox, port = Inbox(), free_port()
    ctl = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
    ctl.start()
    try:
        cfg = mail_cfg(port).model_copy(update={"starttls": True, "ca_file": crt})
        asyncio.run(EmailSender(cfg).send(MSG))
        assert len(inbox.messages) == 1
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            asyncio.run(EmailSender(mail_cfg(port).model_copy(update={"starttls": True})).send(MSG))
    finally:
        ctl.stop()


async def test_notifier_mails_a_department_through_smtp(db, smtp, make_notifier):
    from hub.notify.directory import Department, Directory, Person

    _, conn = db
    cfg = NotifyConfig(email=mail_cfg(smtp.port))
    n = make_notifier(cfg)
    d = Directory(
        departments=(
            Department(
                name="市场监督管理局",
                head=Person(name="王局长", email="wang@scjg.example.gov.cn"),
                handlers=(Person(name="张三", phone="13900139000"),),
            ),
        )
    )
    ids = n.enqueue_department(conn, d, "市场监督管理局", template="yellow", facts=YELLOW, dedupe_key="c:7:yellow")
    assert len(ids) == 1  # only the head has an address for e-mail
    assert await n.run_once() == 1
    [(_, rcpts, msg)] = smtp.messages
    assert rcpts == ["wang@scjg.example.gov.cn"]
    assert msg["Subject"] == "【黄牌预警】办件S01-20250301-0007将于2025-03-10到期"
    assert "剩余1个工作日" in msg.get_body().get_content()
    assert rows(conn)[0]["provider_id"] == msg["Message-ID"]
