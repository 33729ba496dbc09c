"""Notification settings (`notify:` in hub.yaml): pydantic models, strict, with bounds.

`hub/config.py` embeds `NotifyConfig` as hub.yaml's `notify:` section.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.notify.templates import DEFAULT_TEMPLATES, check_templates, placeholders

# Placeholders an SMS gateway request (fields, headers, url) may use.
SMS_PLACEHOLDERS = frozenset({"to", "text", "id", "dedupe_key", "secret"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _walk_strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_strings(v)


def _check_sms_strings(value: Any, where: str) -> Any:
    for s in _walk_strings(value):
        try:
            unknown = placeholders(s) - SMS_PLACEHOLDERS
        except ValueError as exc:
            raise ValueError(f"{where}: {exc} (write literal braces as '{{{{' and '}}}}')") from None
        if unknown:
            raise ValueError(f"{where}: unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(SMS_PLACEHOLDERS)}")
    return value


class SmsGatewayConfig(_Strict):
    """An HTTP SMS platform (短信平台): one request per message."""

    url: str = Field(pattern=r"^https?://", description="Gateway endpoint, e.g. https://sms.example.cn/api/send")
    method: Literal["POST", "GET"] = Field("POST", description="HTTP method")
    body: Literal["json", "form", "query"] = Field(
        "json", description="How `fields` travel: a JSON body, a urlencoded form body, or the query string"
    )
    fields: dict[str, Any] = Field(
        default_factory=lambda: {"mobile": "{to}", "content": "{text}"},
        description="Request fields; string values may use {to} {text} {id} {dedupe_key} {secret}; "
        "nested objects/lists are allowed for JSON",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers, e.g. {'X-Api-Key': '{secret}'}")
    charset: Literal["utf-8", "gbk", "gb18030"] = Field(
        "utf-8", description="Encoding of form/query fields (some older platforms want GBK)"
    )
    secret: str | None = Field(None, description="Value of {secret}; prefer secret_env (hub.yaml is world-readable)")
    secret_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the value of {secret}"
    )
    success_field: str | None = Field(
        None, description="Dotted JSON path checked on a 2xx answer, e.g. 'code' or 'result.status'"
    )
    success_values: list[str | int | bool] = Field(
        default_factory=lambda: [0], description="Values of success_field meaning success (compared as text)"
    )
    message_id_field: str | None = Field(
        None, description="Dotted JSON path of the provider message id, e.g. 'data.msgid'"
    )
    error_field: str | None = Field(None, description="Dotted JSON path of the error text, e.g. 'msg'")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Whole-request timeout, seconds")
    connect_timeout_s: float = Field(5.0, gt=0, le=60, description="Connect timeout, seconds")

    _fields_ok = field_validator("fields")(classmethod(lambda cls, v: _check_sms_strings(v, "fields")))
    _headers_ok = field_validator("headers")(classmethod(lambda cls, v: _check_sms_strings(v, "headers")))
    _url_ok = field_validator("url")(classmethod(lambda cls, v: _check_sms_strings(v, "url")))

    @model_validator(mode="after")
    def _consistent(self):
        if self.method == "GET" and self.body != "query":
            raise ValueError("method GET sends fields in the query string: set body: query")
        if self.body != "json" and any(isinstance(v, (dict, list)) for v in self.fields.values()):
            raise ValueError(f"body {self.body} takes flat fields; nested values need body: json")
        if self.secret is not None and self.secret_env is not None:
            raise ValueError("set secret or secret_env, not both")
        return self

    def secret_value(self) -> str:
        """The {secret} value: from the environment when secret_env is set."""
        if self.secret_env:
            return os.environ.get(self.secret_env, "")
        return self.secret or ""


class SmtpConfig(_Strict):
    """An SMTP relay (mail server of the government intranet or a public mailbox)."""

    host: str = Field(min_length=1, description="SMTP server host")
    port: int = Field(587, ge=1, le=65535, description="587 with STARTTLS, 465 with ssl, 25 plain")
    starttls: bool = Field(True, description="Upgrade with STARTTLS after connecting")
    ssl: bool = Field(False, description="Implicit TLS from the first byte (port 465)")
    ca_file: Path | None = Field(None, description="CA bundle (PEM) for a server with an internal CA")
    user: str | None = Field(None, description="Login name; omit for an open intranet relay")
    password: str | None = Field(None, description="Password; prefer password_env")
    password_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the password"
    )
    from_addr: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Envelope and header sender")
    from_name: str = Field("电子监察系统", description="Display name of the sender")
    timeout_s: float = Field(20.0, gt=0, le=300, description="Socket timeout, seconds")

    @model_validator(mode="after")
    def _consistent(self):
        if self.starttls and self.ssl:
            raise ValueError("choose starttls (port 587) or ssl (port 465), not both")
        if self.password is not None and self.password_env is not None:
            raise ValueError("set password or password_env, not both")
        if (self.password is not None or self.password_env) and not self.user:
            raise ValueError("a password needs a user")
        return self

    def password_value(self) -> str | None:
        """The login password: from the environment when password_env is set."""
        if self.password_env:
            return os.environ.get(self.password_env)
        return self.password


class NotifyConfig(_Strict):
    """SMS/e-mail reminders for yellow/red cards and 督办 (`notify:` in hub.yaml)."""

    sms: SmsGatewayConfig | None = Field(None, description="SMS gateway; none = SMS messages wait in the outbox")
    email: SmtpConfig | None = Field(None, description="SMTP relay; none = e-mail messages wait in the outbox")
    rate_per_hour: int = Field(10, ge=1, le=3600, description="Most messages one recipient gets per channel per hour")
    digest_threshold: int = Field(
        5, ge=1, le=10000, description="More pending messages than this for one recipient become one digest"
    )
    digest_max_lines: int = Field(5, ge=0, le=100, description="Cases listed in an SMS digest; the rest as 等N件")
    max_attempts: int = Field(6, ge=1, le=100, description="Delivery attempts before a message is marked failed")
    backoff_s: float = Field(30.0, gt=0, le=86400, description="First retry delay; doubles each attempt, with jitter")
    backoff_max_s: float = Field(3600.0, gt=0, le=7 * 86400, description="Longest retry delay")
    lease_s: float = Field(
        300.0, ge=1, le=86400, description="A message 'sending' longer than this (worker died) is retried"
    )
    batch_size: int = Field(100, ge=1, le=10000, description="Messages claimed per worker pass")
    concurrency: int = Field(8, ge=1, le=100, description="Messages in flight at once")
    poll_interval_s: float = Field(2.0, gt=0, le=600, description="Worker idle poll interval")
    templates: dict[str, str] = Field(
        default_factory=dict, description="Overrides of the built-in Chinese templates, by key"
    )

    _templates_ok = field_validator("templates")(classmethod(lambda cls, v: check_templates(v)))

    @model_validator(mode="after")
    def _lease_covers_send(self):
        longest = max([c.timeout_s for c in (self.sms, self.email) if c is not None], default=0)
        rounds = -(-self.batch_size // self.concurrency)  # sends queue behind `concurrency`
        need = rounds * longest
        if self.lease_s < need:
            raise ValueError(
                f"lease_s ({self.lease_s:g}) must cover a whole batch: "
                f"ceil(batch_size/concurrency) × longest channel timeout = {need:g} s; "
                f"otherwise a slow send is retried while still in flight"
            )
        return self

    def all_templates(self) -> dict[str, str]:
        """Built-in templates with the operator's overrides applied."""
        return {**DEFAULT_TEMPLATES, **self.templates}
