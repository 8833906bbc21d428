"""The HTTP SMS gateway adapter against a local fake gateway that checks the
API key, the JSON body (E.164 number, text, reference) and the idempotency
header."""

from __future__ import annotations

import dataclasses
import json

import pytest

from services.dispatch.channels import (
    MessageKind,
    OutgoingMessage,
    SendStatus,
    SmsGatewayChannel,
    SmsGatewayConfig,
)
from services.dispatch.domain.phone import to_e164

from dispatch_fakes import FakeHttpServer, RecordedRequest, free_port
from dispatch_samples import LINK, PHONE

API_KEY = "sms-key-abc"


def gateway(status: int = 200, *, header: str = "x-api-key", expected: str = API_KEY):
    def respond(request: RecordedRequest) -> tuple[int, bytes]:
        if request.headers.get(header) != expected:
            return 401, b'{"error": "bad key"}'
        try:
            body = json.loads(request.body)
        except ValueError:
            return 400, b'{"error": "not json"}'
        request.checked["body"] = body
        problems = []
        if not (isinstance(body.get("to"), str) and body["to"].startswith("+") and body["to"][1:].isdigit()):
            problems.append("to is not E.164")
        if not body.get("text"):
            problems.append("text missing")
        if body.get("reference") != request.headers.get("idempotency-key"):
            problems.append("reference and Idempotency-Key differ")
        if problems:
            return 400, json.dumps({"errors": problems}).encode()
        return status, json.dumps({"id": "gw-0001", "status": "queued"}).encode()

    return respond


@pytest.fixture
def sms() -> OutgoingMessage:
    return OutgoingMessage(
        idempotency_key="round-2025-3:resp-000042:sms-1",
        kind=MessageKind.SMS,
        address="12 34 56 78",
        text=f"Husk at svare på spørgsmål om jobcentret: {LINK}",
    )


def channel_for(server: FakeHttpServer, **overrides) -> SmsGatewayChannel:
    config = SmsGatewayConfig(endpoint=server.url + "/v1/sms", api_key=API_KEY, timeout_seconds=5)
    return SmsGatewayChannel(dataclasses.replace(config, **overrides))


async def test_sms_is_posted_as_json_with_key_and_reference(sms):
    with FakeHttpServer(gateway()) as server:
        async with channel_for(server, sender_name="Borgerblik") as channel:
            result = await channel.send(sms)
    assert result.ok, result.error
    assert result.provider_reference == "gw-0001"
    (request,) = server.requests
    assert request.path == "/v1/sms"
    assert request.checked["body"] == {
        "to": PHONE,  # normalised from "12 34 56 78"
        "text": sms.text,
        "reference": sms.idempotency_key,
        "from": "Borgerblik",
    }
    assert request.headers["idempotency-key"] == sms.idempotency_key


async def test_api_key_can_travel_as_bearer_token(sms):
    with FakeHttpServer(gateway(header="authorization", expected=f"Bearer {API_KEY}")) as server:
        async with channel_for(server, api_key_header="Authorization") as channel:
            assert (await channel.send(sms)).ok


@pytest.mark.parametrize(
    "status, expected",
    [(200, SendStatus.SENT), (503, SendStatus.TRANSIENT_FAILURE), (400, SendStatus.PERMANENT_FAILURE)],
)
async def test_status_classification(sms, status, expected):
    with FakeHttpServer(gateway(status)) as server:
        async with channel_for(server) as channel:
            assert (await channel.send(sms)).status is expected


async def test_wrong_key_is_permanent(sms):
    with FakeHttpServer(gateway()) as server:
        async with channel_for(server, api_key="nope") as channel:
            result = await channel.send(sms)
    assert result.status is SendStatus.PERMANENT_FAILURE and "401" in result.error


async def test_invalid_numbers_fail_without_a_request_and_without_the_number(sms):
    with FakeHttpServer(gateway()) as server:
        async with channel_for(server) as channel:
            result = await channel.send(dataclasses.replace(sms, address="1234"))
            wrong_kind = await channel.send(dataclasses.replace(sms, kind=MessageKind.EMAIL))
    assert result.status is SendStatus.PERMANENT_FAILURE
    assert "1234" not in result.error
    assert wrong_kind.status is SendStatus.PERMANENT_FAILURE
    assert server.requests == []


async def test_unreachable_gateway_is_transient(sms):
    config = SmsGatewayConfig(endpoint=f"http://127.0.0.1:{free_port()}/v1/sms", api_key=API_KEY)
    async with SmsGatewayChannel(config) as channel:
        assert (await channel.send(sms)).status is SendStatus.TRANSIENT_FAILURE


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("12345678", "+4512345678"),
        ("12 34 56 78", "+4512345678"),
        ("+45 12 34 56 78", "+4512345678"),
        ("0045-12345678", "+4512345678"),
        ("+46 70 123 45 67", "+46701234567"),
        ("1234567", None),
        ("+45 1234567", None),
        ("telefon", None),
        ("", None),
    ],
)
def test_phone_normalisation(raw, expected):
    assert to_e164(raw) == expected


async def test_logs_carry_the_key_but_no_phone_number(sms, caplog):
    caplog.set_level("DEBUG")
    with FakeHttpServer(gateway(400)) as server:
        async with channel_for(server) as channel:
            await channel.send(sms)
            await channel.send(dataclasses.replace(sms, address="999"))
    assert sms.idempotency_key in caplog.text
    assert "12345678" not in caplog.text.replace(" ", "") and LINK not in caplog.text
