"""The directory sink: one file per idempotency key, never a second one."""

from __future__ import annotations

import asyncio
import dataclasses
from email import message_from_bytes
from email.policy import default as default_policy

from services.dispatch.channels import DevSinkChannel, MessageKind, OutgoingMessage, SendStatus
from services.dispatch.domain.memo import build_letter_message, validate_memo

from dispatch_samples import LINK, PHONE


def sms(key: str = "r3-resp42-sms1", text: str = f"Husk at svare: {LINK}") -> OutgoingMessage:
    return OutgoingMessage(idempotency_key=key, kind=MessageKind.SMS, address=PHONE, text=text)


def files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_memo_sms_and_mail_get_one_file_each(tmp_path, survey_letter):
    sink = DevSinkChannel(tmp_path)
    memo = build_letter_message(survey_letter).xml
    letter = OutgoingMessage(idempotency_key="r3-resp42-invitation", kind=MessageKind.DIGITAL_POST,
                             memo_xml=memo)
    mail = OutgoingMessage(idempotency_key="r3-resp42-mail1", kind=MessageKind.EMAIL,
                           address="borger@example.dk", subject="Spørgeskema", text=LINK)

    results = [await sink.send(m) for m in (letter, sms(), mail)]

    assert all(r.status is SendStatus.SENT for r in results)
    assert files(tmp_path) == ["r3-resp42-invitation.xml", "r3-resp42-mail1.eml", "r3-resp42-sms1.txt"]
    validate_memo((tmp_path / "r3-resp42-invitation.xml").read_bytes())
    assert LINK in (tmp_path / "r3-resp42-sms1.txt").read_text()
    parsed = message_from_bytes((tmp_path / "r3-resp42-mail1.eml").read_bytes(), policy=default_policy)
    assert parsed["Subject"] == "Spørgeskema"
    assert results[0].provider_reference == str(tmp_path / "r3-resp42-invitation.xml")


async def test_same_key_twice_keeps_the_first_delivery(tmp_path):
    sink = DevSinkChannel(tmp_path)
    first = await sink.send(sms(text="first"))
    second = await sink.send(sms(text="second"))
    assert first.ok and second.ok
    assert first.provider_reference == second.provider_reference
    assert files(tmp_path) == ["r3-resp42-sms1.txt"]
    assert "first" in (tmp_path / "r3-resp42-sms1.txt").read_text()


async def test_concurrent_sends_of_one_key_make_one_complete_file(tmp_path):
    sink = DevSinkChannel(tmp_path)
    texts = [f"version {i} " + "x" * 50_000 for i in range(20)]
    results = await asyncio.gather(*(sink.send(sms(text=t)) for t in texts))
    assert all(r.ok for r in results)
    assert files(tmp_path) == ["r3-resp42-sms1.txt"]  # no second file, no leftovers
    content = (tmp_path / "r3-resp42-sms1.txt").read_text()
    assert any(t in content for t in texts)  # one whole version, not a mix


async def test_unsafe_keys_stay_inside_the_directory(tmp_path):
    sink = DevSinkChannel(tmp_path / "sink")
    result = await sink.send(sms(key="../../etc/passwd"))
    assert result.ok
    (name,) = files(tmp_path / "sink")
    assert name.endswith(".txt") and "/" not in name and ".." not in name
    again = await sink.send(sms(key="../../etc/passwd"))
    assert again.provider_reference == result.provider_reference
    assert files(tmp_path) == ["sink"]


async def test_digital_post_without_memo_is_rejected(tmp_path):
    sink = DevSinkChannel(tmp_path)
    message = OutgoingMessage(idempotency_key="k1", kind=MessageKind.DIGITAL_POST)
    assert (await sink.send(message)).status is SendStatus.PERMANENT_FAILURE
    assert files(tmp_path) == []


def test_outgoing_message_hides_personal_data_and_checks_its_key():
    message = sms()
    assert PHONE not in repr(message) and LINK not in repr(message)
    assert message.transaction_uuid == dataclasses.replace(message, text="other").transaction_uuid
    for bad in ("", "x" * 201, "a\nb"):
        try:
            dataclasses.replace(message, idempotency_key=bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted idempotency key {bad!r}")


async def test_one_folder_per_round_and_municipality(tmp_path):
    sink = DevSinkChannel(tmp_path)
    first = OutgoingMessage(idempotency_key="inv-1.invitation.sms", kind=MessageKind.SMS, address=PHONE, text=LINK,
                            folder=("2026-efteraar", "492"))
    other = dataclasses.replace(first, idempotency_key="inv-2.invitation.sms", folder=("2026-efteraar", "101"))
    unsafe = dataclasses.replace(first, idempotency_key="inv-3.invitation.sms", folder=("../../etc", "101"))
    results = await sink.send_many([first, other, unsafe])
    assert all(r.ok for r in results)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert {"2026-efteraar/101/inv-2.invitation.sms.txt", "2026-efteraar/492/inv-1.invitation.sms.txt"} < set(written)
    # A folder name that is not plainly safe becomes a stable UUID: nothing lands outside the sink.
    assert all(tmp_path in p.parents for p in tmp_path.rglob("*")) and len(written) == 3
    assert results[0].provider_reference == str(tmp_path / "2026-efteraar" / "492" / "inv-1.invitation.sms.txt")
