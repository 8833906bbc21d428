"""The SF1601 adapter against a local fake SF1601 that checks the envelope,
the KombiValgKode, the MeMo (XSD-valid, PDF decodes), auth and the
idempotency headers, and answers 200/4xx/5xx as told."""

from __future__ import annotations

import dataclasses
import json

import pytest

from services.dispatch.channels import (
    DigitalPostSF1601Channel,
    KombiValg,
    MessageKind,
    NemSmsSF1601Channel,
    OutgoingMessage,
    SendStatus,
    SF1601Config,
    build_kombi_request,
)
from services.dispatch.domain.memo import build_letter_message, build_nemsms_message

from dispatch_fakes import FakeHttpServer, free_port, make_tls_files, sf1601_responder
from dispatch_samples import CPR, LINK

TOKEN = "test-token-123"
PATH = "/service/KombiPostAfsend_1/memos"


@pytest.fixture
def letter_message(survey_letter) -> OutgoingMessage:
    memo = build_letter_message(survey_letter)
    return OutgoingMessage(
        idempotency_key="round-2025-3:resp-000042:invitation",
        kind=MessageKind.DIGITAL_POST,
        memo_xml=memo.xml,
    )


def channel_for(server: FakeHttpServer, **overrides) -> DigitalPostSF1601Channel:
    config = SF1601Config(endpoint=server.url + PATH, bearer_token=TOKEN, timeout_seconds=5)
    return DigitalPostSF1601Channel(dataclasses.replace(config, **overrides))


async def test_accepted_letter_is_sent_with_envelope_auth_and_idempotency(letter_message, survey_letter):
    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server) as channel:
            result = await channel.send(letter_message)

    assert result.status is SendStatus.SENT, result.error
    (request,) = server.requests
    assert request.path == PATH
    assert request.checked["kombi"] == "Digital Post"
    assert request.checked["message_type"] == "DIGITALPOST"
    assert request.checked["pdf"] == survey_letter.pdf
    assert request.headers["idempotency-key"] == letter_message.idempotency_key
    assert request.headers["x-transaktionsid"] == str(letter_message.transaction_uuid)
    assert result.provider_reference == str(letter_message.transaction_uuid)


async def test_a_retry_carries_the_same_transaction_id(letter_message):
    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server) as channel:
            await channel.send(letter_message)
            await channel.send(letter_message)
    first, second = server.requests
    assert first.checked["transaction_id"] == second.checked["transaction_id"]
    other = dataclasses.replace(letter_message, idempotency_key="round-2025-3:resp-000043:invitation")
    assert other.transaction_uuid != letter_message.transaction_uuid


async def test_exempt_citizens_get_paper_post(letter_message):
    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server) as channel:
            result = await channel.send(dataclasses.replace(letter_message, exempt_from_digital_post=True))
    assert result.ok
    assert server.requests[0].checked["kombi"] == "Fysisk Post"


async def test_automatic_choice_can_be_configured(letter_message):
    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server, default_kombi_valg=KombiValg.AUTOMATIC) as channel:
            assert (await channel.send(letter_message)).ok
    assert server.requests[0].checked["kombi"] == "Automatisk Valg"


@pytest.mark.parametrize(
    "http_status, expected",
    [
        (200, SendStatus.SENT),
        (202, SendStatus.SENT),
        (503, SendStatus.TRANSIENT_FAILURE),
        (500, SendStatus.TRANSIENT_FAILURE),
        (429, SendStatus.TRANSIENT_FAILURE),
        (400, SendStatus.PERMANENT_FAILURE),
        (404, SendStatus.PERMANENT_FAILURE),
    ],
)
async def test_http_status_classification(letter_message, http_status, expected):
    with FakeHttpServer(sf1601_responder(token=TOKEN, status=lambda r: http_status)) as server:
        async with channel_for(server) as channel:
            result = await channel.send(letter_message)
    assert result.status is expected
    if expected is not SendStatus.SENT:
        assert str(http_status) in result.error


async def test_wrong_credentials_are_a_permanent_failure(letter_message):
    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server, bearer_token="wrong") as channel:
            result = await channel.send(letter_message)
    assert result.status is SendStatus.PERMANENT_FAILURE
    assert "401" in result.error


async def test_token_provider_is_asked_for_every_request(letter_message):
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return TOKEN

    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server, bearer_token=None, token_provider=provider) as channel:
            assert (await channel.send(letter_message)).ok
            assert (await channel.send(letter_message)).ok
    assert calls == 2


async def test_failing_token_provider_is_transient(letter_message):
    async def provider() -> str:
        raise RuntimeError("STS down")

    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server, token_provider=provider) as channel:
            result = await channel.send(letter_message)
    assert result.status is SendStatus.TRANSIENT_FAILURE
    assert server.requests == []


async def test_timeout_is_transient(letter_message):
    # The server answers after 2 s; the client gives up after 0.2 s.
    with FakeHttpServer(sf1601_responder(token=TOKEN), delay_seconds=2) as server:
        async with channel_for(server, timeout_seconds=0.2) as channel:
            result = await channel.send(letter_message)
    assert result.status is SendStatus.TRANSIENT_FAILURE
    assert result.error == "timeout"


async def test_connection_refused_is_transient(letter_message):
    config = SF1601Config(endpoint=f"http://127.0.0.1:{free_port()}{PATH}", bearer_token=TOKEN)
    async with DigitalPostSF1601Channel(config) as channel:
        result = await channel.send(letter_message)
    assert result.status is SendStatus.TRANSIENT_FAILURE


async def test_error_bodies_are_redacted(letter_message):
    def echo_cpr(request):
        return 400, json.dumps({"error": f"recipient {CPR} unknown"}).encode()

    with FakeHttpServer(echo_cpr) as server:
        async with channel_for(server) as channel:
            result = await channel.send(letter_message)
    assert result.status is SendStatus.PERMANENT_FAILURE
    assert CPR not in result.error and "unknown" in result.error


async def test_messages_without_valid_memo_fail_permanently_without_a_request(letter_message):
    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        async with channel_for(server) as channel:
            no_memo = await channel.send(dataclasses.replace(letter_message, memo_xml=None))
            garbage = await channel.send(dataclasses.replace(letter_message, memo_xml=b"<oops"))
    assert no_memo.status is SendStatus.PERMANENT_FAILURE
    assert garbage.status is SendStatus.PERMANENT_FAILURE
    assert server.requests == []


async def test_nemsms_goes_through_sf1601(memo_sender, memo_recipient):
    memo = build_nemsms_message(memo_sender, memo_recipient, label="Spørgeskema om jobcentret",
                                text=f"Husk at svare på spørgsmål om jobcentret: {LINK}")
    message = OutgoingMessage(idempotency_key="r3:resp-42:sms-1", kind=MessageKind.SMS, memo_xml=memo.xml)
    with FakeHttpServer(sf1601_responder(token=TOKEN)) as server:
        config = SF1601Config(endpoint=server.url + PATH, bearer_token=TOKEN)
        async with NemSmsSF1601Channel(config) as channel:
            result = await channel.send(message)
    assert result.ok, result.error
    assert server.requests[0].checked["kombi"] == "NemSMS"
    assert server.requests[0].checked["message_type"] == "NEMSMS"


def test_kombi_request_refuses_a_mismatched_message_type(survey_letter):
    letter_xml = build_letter_message(survey_letter).xml
    with pytest.raises(ValueError, match="NEMSMS"):
        build_kombi_request(letter_xml, KombiValg.NEMSMS)
    envelope = build_kombi_request(letter_xml, KombiValg.DIGITAL_POST)
    assert envelope.startswith(b"<?xml") and b"<KombiValgKode>Digital Post</KombiValgKode>" in envelope


async def test_client_certificate_authentication(tmp_path, letter_message):
    tls = make_tls_files(tmp_path)
    with FakeHttpServer(sf1601_responder(token=None), ssl_context=tls.server_context()) as server:
        async with channel_for(server, bearer_token=None, client_cert=tls.client_cert,
                               client_key=tls.client_key, ca_bundle=tls.ca) as channel:
            result = await channel.send(letter_message)
        async with channel_for(server, bearer_token=None, ca_bundle=tls.ca) as no_cert:
            refused = await no_cert.send(letter_message)

    assert result.ok, result.error
    (request,) = server.requests  # the certificate-less attempt never got through
    subject = dict(item for rdn in request.peer_cert["subject"] for item in rdn)
    assert subject["commonName"] == "Testkommune SF1601 client"
    assert refused.status is SendStatus.TRANSIENT_FAILURE


async def test_logs_carry_the_key_but_no_personal_data(letter_message, caplog):
    def echo_cpr(request):
        return 503, f"recipient {CPR} busy".encode()

    caplog.set_level("DEBUG")
    with FakeHttpServer(echo_cpr) as server:
        async with channel_for(server) as channel:
            await channel.send(letter_message)
    assert letter_message.idempotency_key in caplog.text
    assert CPR not in caplog.text
