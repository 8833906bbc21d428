"""MeMo 1.2 messages: built messages validate against the shipped XSD, and
the validator really rejects broken ones (without leaking the CPR number)."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from services.dispatch.domain.memo import (
    MEMO_CORE_XSD,
    MEMO_NS,
    MemoRecipient,
    MemoSender,
    MemoValidationError,
    build_letter_message,
    build_nemsms_message,
    format_memo_datetime,
    memo_schema,
    validate_memo,
)

from dispatch_samples import CPR, LINK

M = f"{{{MEMO_NS}}}"


def _tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def test_schema_is_the_packaged_copy_and_loaded_once():
    assert MEMO_CORE_XSD.is_file()
    assert "services/dispatch/domain/memo_xsd/Version1.2" in MEMO_CORE_XSD.as_posix()
    assert memo_schema() is memo_schema()


def test_letter_message_validates_and_carries_the_survey(survey_letter):
    created = datetime(2025, 9, 1, 8, 30, tzinfo=timezone.utc)
    message = build_letter_message(survey_letter, created=created)

    validate_memo(message.xml)  # the serialized bytes, PDF content included
    root = _tree(message.xml)
    assert root.tag == M + "Message" and root.get("memoVersion") == "1.2"
    header = root.find(M + "MessageHeader")
    assert header.findtext(M + "messageType") == "DIGITALPOST"
    assert uuid.UUID(header.findtext(M + "messageUUID")).version == 4
    assert header.findtext(M + "messageUUID") == message.message_uuid
    assert header.findtext(M + "label") == survey_letter.title
    assert header.findtext(M + "notification") == survey_letter.notification
    assert header.findtext(f"{M}Sender/{M}senderID") == "29189978"
    assert header.findtext(f"{M}Sender/{M}idType") == "CVR"
    assert header.findtext(f"{M}Recipient/{M}recipientID") == CPR
    assert header.findtext(f"{M}Recipient/{M}idType") == "CPR"

    body = root.find(M + "MessageBody")
    assert body.findtext(M + "createdDateTime") == "2025-09-01T08:30:00Z"
    file_ = body.find(f"{M}MainDocument/{M}File")
    assert file_.findtext(M + "encodingFormat") == "application/pdf"
    assert file_.findtext(M + "language") == "da"
    assert base64.b64decode(file_.findtext(M + "content"), validate=True) == survey_letter.pdf
    action = body.find(f"{M}MainDocument/{M}Action")
    assert action.findtext(M + "actionCode") == "SELVBETJENING"
    assert action.findtext(f"{M}EntryPoint/{M}url") == LINK


def test_each_build_gets_a_fresh_uuid_unless_one_is_given(survey_letter):
    first = build_letter_message(survey_letter)
    second = build_letter_message(survey_letter)
    assert first.message_uuid != second.message_uuid
    fixed = uuid.uuid4()
    assert build_letter_message(survey_letter, message_uuid=fixed).message_uuid == str(fixed)
    with pytest.raises(ValueError, match="version 4"):
        build_letter_message(survey_letter, message_uuid=uuid.uuid1())


def test_datetimes_are_utc_with_z(survey_letter):
    copenhagen_summer = timezone(timedelta(hours=2))
    deadline = datetime(2025, 9, 15, 23, 59, 59, tzinfo=copenhagen_summer)
    message = build_letter_message(dataclasses.replace(survey_letter, action_end=deadline))
    action = _tree(message.xml).find(f".//{M}Action")
    assert action.findtext(M + "endDateTime") == "2025-09-15T21:59:59Z"
    created = _tree(message.xml).findtext(f".//{M}createdDateTime")
    assert created.endswith("Z")
    with pytest.raises(ValueError, match="timezone"):
        format_memo_datetime(datetime(2025, 9, 15, 12, 0))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"title": "x" * 257}, "title"),
        ({"title": ""}, "title"),
        ({"notification": "x" * 161}, "notification"),
        ({"survey_url": "https://svar.borgerblik.dk/" + "a" * 240}, "survey URL"),
        ({"survey_url": "http://svar.borgerblik.dk/s/abc"}, "https"),
        ({"pdf": b"not a pdf"}, "PDF"),
    ],
)
def test_builder_rejects_values_the_schema_would_refuse(survey_letter, change, match):
    with pytest.raises(ValueError, match=match):
        build_letter_message(dataclasses.replace(survey_letter, **change))


def test_ids_are_checked_and_personal_data_is_not_in_repr():
    with pytest.raises(ValueError, match="CPR"):
        MemoRecipient(cpr="010190-1234")
    with pytest.raises(ValueError, match="CVR"):
        MemoSender(sender_id="1234", label="Testkommune")
    recipient = MemoRecipient(cpr=CPR, name="Søren")
    assert CPR not in repr(recipient) and "Søren" not in repr(recipient)


def _valid_xml(survey_letter) -> bytes:
    return build_letter_message(survey_letter, created=datetime(2025, 9, 1, tzinfo=timezone.utc)).xml


def _mutate(xml: bytes, path: str, action) -> bytes:
    root = _tree(xml)
    element = root.find(path)
    action(element)
    return etree.tostring(root)


@pytest.mark.parametrize(
    "path, action, where",
    [
        # A required element missing.
        (f"{M}MessageHeader/{M}Sender", lambda e: e.getparent().remove(e), "Message"),
        # messageUUID must be a version-4 UUID.
        (f"{M}MessageHeader/{M}messageUUID",
         lambda e: setattr(e, "text", str(uuid.uuid1())), "messageUUID"),
        # dateTimes must end in Z.
        (f"{M}MessageBody/{M}createdDateTime",
         lambda e: setattr(e, "text", "2025-09-01T10:00:00+02:00"), "createdDateTime"),
        # notification is at most 160 characters.
        (f"{M}MessageHeader/{M}notification",
         lambda e: setattr(e, "text", "n" * 161), "notification"),
        # The PDF must be base64.
        (f".//{M}File/{M}content", lambda e: setattr(e, "text", "%%% not base64 %%%"), "content"),
        # A MainDocument needs at least one File.
        (f".//{M}MainDocument/{M}File", lambda e: e.getparent().remove(e), "MainDocument"),
    ],
)
def test_broken_messages_are_rejected(survey_letter, path, action, where):
    broken = _mutate(_valid_xml(survey_letter), path, action)
    with pytest.raises(MemoValidationError) as info:
        validate_memo(broken)
    assert where in str(info.value)


def test_validation_errors_do_not_leak_the_cpr_number(survey_letter):
    broken = _mutate(_valid_xml(survey_letter), f"{M}MessageHeader/{M}Recipient/{M}recipientID",
                     lambda e: setattr(e, "text", CPR * 30))  # over 256 chars
    with pytest.raises(MemoValidationError) as info:
        validate_memo(broken)
    assert CPR not in str(info.value)


def test_non_memo_documents_are_rejected():
    with pytest.raises(MemoValidationError, match="well-formed"):
        validate_memo(b"<memo:Message")
    with pytest.raises(MemoValidationError, match="not memo:Message"):
        validate_memo(b"<kombi_request/>")


def test_nemsms_message_validates(memo_sender, memo_recipient):
    message = build_nemsms_message(memo_sender, memo_recipient, label="Spørgeskema om jobcentret",
                                   text="Husk at svare på spørgsmål om jobcentret: " + LINK)
    validate_memo(message.xml)
    header = _tree(message.xml).find(M + "MessageHeader")
    assert header.findtext(M + "messageType") == "NEMSMS"
    assert _tree(message.xml).find(M + "MessageBody") is None
    with pytest.raises(ValueError, match="SMS text"):
        build_nemsms_message(memo_sender, memo_recipient, label="x", text="y" * 161)
