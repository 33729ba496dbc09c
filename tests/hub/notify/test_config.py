"""NotifyConfig: strict, bounded, consistent; the example in docs/notifications.md is valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from hub.notify.config import NotifyConfig, SmsGatewayConfig, SmtpConfig

DOC = Path(__file__).resolve().parents[3] / "docs" / "notifications.md"
GW = {"url": "https://sms.example.cn/api/send"}
MAIL = {"host": "mail.example.gov.cn", "from_addr": "jiancha@example.gov.cn"}


def test_defaults_need_nothing():
    cfg = NotifyConfig()
    assert cfg.sms is None and cfg.email is None and cfg.rate_per_hour == 10


@pytest.mark.parametrize(
    "data, err",
    [
        ({"smss": {}}, "Extra inputs are not permitted"),
        ({"rate_per_hour": 0}, "greater than or equal to 1"),
        ({"sms": {**GW, "method": "GET"}}, "set body: query"),
        ({"sms": {**GW, "body": "form", "fields": {"a": {"b": "{to}"}}}}, "nested values need body: json"),
        ({"sms": {**GW, "fields": {"m": "{mobile}"}}}, "unknown placeholder(s) ['mobile']"),
        ({"sms": {**GW, "headers": {"X": "{"}}}, "literal braces"),
        ({"sms": {"url": "ftp://x"}}, "should match pattern"),
        ({"sms": {**GW, "secret": "a", "secret_env": "B"}}, "not both"),
        ({"email": {**MAIL, "ssl": True}}, "starttls (port 587) or ssl (port 465)"),
        ({"email": {**MAIL, "password": "x"}}, "a password needs a user"),
        ({"email": {**MAIL, "from_addr": "nobody"}}, "from_addr"),
        ({"sms": {**GW, "timeout_s": 60}, "lease_s": 100}, "must cover a whole batch"),
    ],
)
def test_invalid_config_is_refused_with_the_reason(data, err):
    with pytest.raises(ValidationError) as exc:
        NotifyConfig.model_validate(data)
    assert err in str(exc.value)


def test_secrets_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SMS_KEY", "k-123")
    monkeypatch.setenv("SMTP_PASS", "p-456")
    assert SmsGatewayConfig(**GW, secret_env="SMS_KEY").secret_value() == "k-123"
    assert SmtpConfig(**MAIL, user="u", password_env="SMTP_PASS").password_value() == "p-456"


def test_every_field_has_a_description():
    for model in (NotifyConfig, SmsGatewayConfig, SmtpConfig):
        assert all(f.description for f in model.model_fields.values()), model.__name__


def test_documented_example_is_valid():
    block = re.search(r"```yaml\n(notify:\n.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, "docs/notifications.md has no ```yaml notify: example"
    cfg = NotifyConfig.model_validate(yaml.safe_load(block.group(1))["notify"])
    assert cfg.sms is not None and cfg.email is not None
