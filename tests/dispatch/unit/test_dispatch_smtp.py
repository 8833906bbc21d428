"""The SMTP adapter against a real SMTP server (aiosmtpd) on 127.0.0.1 that
receives and parses the mail; refusals exercise the classification."""

from __future__ import annotations

import dataclasses
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from services.dispatch.channels import (
    Attachment,
    MessageKind,
    OutgoingMessage,
    SendStatus,
    SmtpChannel,
    SmtpConfig,
)

from dispatch_fakes import free_port
from dispatch_samples import LINK


class RecordingHandler:
    """Accepts mail, except for addresses that ask to be refused."""

    def __init__(self) -> None:
        self.received: list = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith("unknown@"):
            return f"550 5.1.1 <{address}>: no such user"
        if address.startswith("greylisted@"):
            return "450 4.7.1 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


@pytest.fixture
def mail() -> OutgoingMessage:
    return OutgoingMessage(
        idempotency_key="round-2025-3:resp-000042:email-1",
        kind=MessageKind.EMAIL,
        address="borger@example.dk",
        subject="Påmindelse: Hvordan oplever du jobcentret?",
        text=f"Kære Søren\n\nHusk at svare på spørgeskemaet: {LINK}\n\nVenlig hilsen\nÆrø Kommune\n",
        attachments=(Attachment("Påmindelse.pdf", "application/pdf", b"%PDF-1.4 test"),),
    )


def channel_for(controller, **overrides) -> SmtpChannel:
    config = SmtpConfig(host=controller.hostname, port=controller.port, sender="noreply@borgerblik.dk",
                        sender_name="Borgerblik", timeout_seconds=5)
    return SmtpChannel(dataclasses.replace(config, **overrides))


async def test_mail_is_delivered_and_parses(smtp_server, mail):
    controller, handler = smtp_server
    result = await channel_for(controller).send(mail)
    assert result.ok, result.error

    (envelope,) = handler.received
    assert envelope.mail_from == "noreply@borgerblik.dk"
    assert envelope.rcpt_tos == ["borger@example.dk"]
    parsed = message_from_bytes(envelope.content, policy=default_policy)
    assert parsed["Subject"] == mail.subject  # æøå survive header encoding
    assert parsed["To"] == "borger@example.dk"
    assert parsed["From"].addresses[0].display_name == "Borgerblik"
    assert parsed["Message-ID"] == f"<{mail.transaction_uuid}@borgerblik.dk>"
    assert result.provider_reference == parsed["Message-ID"]
    body = parsed.get_body(preferencelist=("plain",)).get_content()
    assert LINK in body and "Ærø Kommune" in body
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "Påmindelse.pdf"
    assert attachment.get_content() == b"%PDF-1.4 test"


async def test_a_retry_has_the_same_message_id(smtp_server, mail):
    controller, handler = smtp_server
    channel = channel_for(controller)
    await channel.send(mail)
    await channel.send(mail)
    ids = {message_from_bytes(e.content, policy=default_policy)["Message-ID"] for e in handler.received}
    assert len(handler.received) == 2 and len(ids) == 1


async def test_unknown_recipient_is_permanent_and_redacted(smtp_server, mail):
    controller, handler = smtp_server
    result = await channel_for(controller).send(dataclasses.replace(mail, address="unknown@example.dk"))
    assert result.status is SendStatus.PERMANENT_FAILURE
    assert "550" in result.error and "unknown@example.dk" not in result.error
    assert handler.received == []


async def test_greylisting_is_transient(smtp_server, mail):
    controller, _ = smtp_server
    result = await channel_for(controller).send(dataclasses.replace(mail, address="greylisted@example.dk"))
    assert result.status is SendStatus.TRANSIENT_FAILURE


async def test_no_server_is_transient(mail):
    channel = SmtpChannel(SmtpConfig(host="127.0.0.1", port=free_port(), timeout_seconds=2))
    assert (await channel.send(mail)).status is SendStatus.TRANSIENT_FAILURE


async def test_bad_input_is_permanent(smtp_server, mail):
    controller, handler = smtp_server
    channel = channel_for(controller)
    assert (await channel.send(dataclasses.replace(mail, address="not-an-address"))).status \
        is SendStatus.PERMANENT_FAILURE
    assert (await channel.send(dataclasses.replace(mail, subject="x\r\nBcc: evil@example.dk"))).status \
        is SendStatus.PERMANENT_FAILURE
    assert (await channel.send(dataclasses.replace(mail, kind=MessageKind.SMS))).status \
        is SendStatus.PERMANENT_FAILURE
    assert handler.received == []
