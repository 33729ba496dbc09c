"""SMS gateway: request building and answer parsing (pure), then real HTTP to the fake on 127.0.0.1."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from hub.notify.channels import DeliveryError
from hub.notify.config import SmsGatewayConfig
from hub.notify.outbox import Outgoing
from hub.notify.sms import SmsGateway, build_request, dig, parse_response

MSG = Outgoing(
    id=42, channel="sms", to="13800138000", subject=None, text="【电子监察】办件将到期", dedupe_key="c:1", attempt=1
)


def test_json_body_keeps_chinese_and_fills_nested_fields():
    cfg = SmsGatewayConfig(
        url="http://gw/send",
        fields={"phones": ["{to}"], "msg": {"content": "{text}"}, "sign": "电子监察", "outId": "{id}", "priority": 1},
        headers={"Authorization": "Bearer {secret}"},
        secret="s3",
    )
    method, url, headers, body = build_request(cfg, MSG)
    assert method == "POST" and str(url) == "http://gw/send"
    assert json.loads(body) == {
        "phones": ["13800138000"],
        "msg": {"content": "【电子监察】办件将到期"},
        "sign": "电子监察",
        "outId": "42",
        "priority": 1,
    }
    assert "电子监察".encode() in body  # UTF-8, not \\u escapes
    assert headers["Authorization"] == "Bearer s3" and headers["Content-Type"].startswith("application/json")


def test_gbk_form_for_older_platforms():
    cfg = SmsGatewayConfig(
        url="http://gw/send", body="form", charset="gbk", fields={"mobile": "{to}", "content": "{text}"}
    )
    _, _, headers, body = build_request(cfg, MSG)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded; charset=gbk"
    assert dict(parse_qsl(body.decode("ascii"), encoding="gbk"))["content"] == MSG.text


def test_get_with_query_string_appends_to_an_existing_query():
    cfg = SmsGatewayConfig(
        url="http://gw/send?account=jz", method="GET", body="query", fields={"mobile": "{to}", "content": "{text}"}
    )
    method, url, _, body = build_request(cfg, MSG)
    assert method == "GET" and body is None
    assert url.query["account"] == "jz" and url.query["content"] == MSG.text


@pytest.mark.parametrize(
    "cfg, status, body, result",
    [
        ({}, 200, "anything", None),
        ({"message_id_field": "data.msgid"}, 200, '{"data": {"msgid": 77}}', "77"),
        ({"message_id_field": "result.0.sid"}, 200, '{"result": [{"sid": "a1"}]}', "a1"),
        ({"success_field": "code"}, 200, '{"code": "0"}', None),
        ({"success_field": "ok", "success_values": [True]}, 200, '{"ok": true}', None),
        (
            {"success_field": "code", "error_field": "msg"},
            200,
            '{"code": 5, "msg": "黑名单号码"}',
            DeliveryError("gateway refused: code=5 (黑名单号码)"),
        ),
        ({"success_field": "code"}, 200, '{"msg": "?"}', DeliveryError("gateway refused: code=None")),
        ({"success_field": "code"}, 200, "<html>", DeliveryError("gateway answer is not JSON")),
        ({}, 503, "busy", DeliveryError("HTTP 503: busy")),
        ({}, 400, "bad", DeliveryError("HTTP 400: bad", permanent=True)),
    ],
)
def test_parse_response(cfg, status, body, result):
    cfg = SmsGatewayConfig(url="http://gw/", **cfg)
    if isinstance(result, DeliveryError):
        with pytest.raises(DeliveryError) as exc:
            parse_response(cfg, status, body)
        assert str(result) in str(exc.value) and exc.value.permanent == result.permanent
    else:
        assert parse_response(cfg, status, body) == result


def test_dig():
    assert dig({"a": [{"b": 1}]}, "a.0.b") == 1 and dig({"a": [1]}, "a.-1") == 1
    assert dig({"a": 1}, "a.b") is None and dig({"a": []}, "a.3") is None


async def test_sends_over_http_with_secret_from_env(gateway, monkeypatch):
    monkeypatch.setenv("SMS_KEY", "k-123")
    gw = SmsGateway(
        SmsGatewayConfig(
            url=gateway.url,
            headers={"X-Api-Key": "{secret}"},
            secret_env="SMS_KEY",
            success_field="code",
            message_id_field="data.msgid",
        )
    )
    try:
        assert await gw.send(MSG) == "M1"
    finally:
        await gw.aclose()
    [req] = gateway.received
    assert req["headers"]["X-Api-Key"] == "k-123"
    assert req["json"] == {"mobile": "13800138000", "content": "【电子监察】办件将到期"}


async def test_gbk_form_arrives_decoded(gateway):
    gw = SmsGateway(SmsGatewayConfig(url=gateway.url, body="form", charset="gbk"))
    try:
        await gw.send(MSG)
    finally:
        await gw.aclose()
    assert gateway.received[0]["form"]["content"] == MSG.text


async def test_unreachable_and_slow_gateways_are_transient(gateway):
    from tests.ports import free_port

    dead = SmsGateway(SmsGatewayConfig(url=f"http://127.0.0.1:{free_port()}/x", connect_timeout_s=0.5))
    slow = SmsGateway(SmsGatewayConfig(url=gateway.url, timeout_s=0.1))
    gateway.delay_s = 1.0
    try:
        with pytest.raises(DeliveryError, match="unreachable") as e1:
            await dead.send(MSG)
        with pytest.raises(DeliveryError, match="timed out") as e2:
            await slow.send(MSG)
        assert not e1.value.permanent and not e2.value.permanent
    finally:
        await dead.aclose()
        await slow.aclose()
