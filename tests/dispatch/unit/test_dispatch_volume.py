"""The national-volume paths hold the same guarantees as the plain ones: a letter's base64 patched
from its template is the base64 of its PDF, the MeMo message joined from a shape's segments is
byte for byte what the lxml builder makes (and validates), the sink's batch write is the single
write many times, and composing opens the sealed contact only in the render worker."""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from lxml import etree

from services.dispatch.channels import DevSinkChannel, MessageKind, OutgoingMessage, SendStatus
from services.dispatch.compose import RenderConfig, RenderJob, render_jobs
from services.dispatch.domain.letter_cache import render_letter_fast_b64
from services.dispatch.domain.letters import ContactInfo, LetterContext, LetterKind
from services.dispatch.domain.memo import (
    MEMO_NS,
    MemoRecipient,
    MemoValidationError,
    _validate_letter_bytes,
    build_letter_message,
    build_letter_message_fast,
    validate_memo,
)
from services.dispatch.links import link_token
from shared.crypto import ContactDetails, seal_contact

from dispatch_samples import CPR

M = f"{{{MEMO_NS}}}"
BASE = "https://svar.borgerblik.dk/s/"


def _token(i: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode() if i else "A" * 43


def _ctx(name: str | None, token: str, municipality: str = "Ærø Kommune") -> LetterContext:
    return LetterContext(name=name, link=BASE + token, municipality=municipality, deadline=date(2025, 9, 22),
                         contact=ContactInfo(f"jobcentret i {municipality}"), letter_date=date(2025, 9, 1))


@pytest.mark.parametrize("kind", list(LetterKind))
def test_patched_base64_is_the_base64_of_the_letter(kind):
    names = ["Søren Ærø-Åberg (Łukasz)", "A", "Ærtebølle-Østergård Åkjær Bøgh Sørensen", "李雷", None]
    for i, name in enumerate(names):
        for paper in (False, True) if i == 0 else (False,):
            letter, b64 = render_letter_fast_b64(kind, _ctx(name, _token(i)), paper=paper)
            assert b64 == base64.b64encode(letter.pdf)


def _letter(survey_letter, **changes):
    return dataclasses.replace(survey_letter, **changes)


@pytest.mark.parametrize("name", ["Søren <Ærø> & Co\r", None, "x"])
@pytest.mark.parametrize("end", [None, datetime(2025, 10, 1, 12, tzinfo=UTC)])
@pytest.mark.parametrize("message_id", [None, "abc.invitation.letter"])
def test_fast_memo_is_byte_for_byte_the_built_one(survey_letter, name, end, message_id):
    letter = _letter(survey_letter, recipient=MemoRecipient(CPR, name), action_end=end, message_id=message_id,
                     survey_url="https://svar.borgerblik.dk/s/abc?x=1&y=<2>")
    key, created = uuid.uuid4(), datetime(2025, 9, 1, 8, 30, 5, tzinfo=UTC)
    built = build_letter_message(letter, message_uuid=key, created=created)
    fast = build_letter_message_fast(letter, pdf_base64=base64.b64encode(letter.pdf), message_uuid=key, created=created,
                                     validate=True)
    assert fast.xml == built.xml and fast.message_uuid == built.message_uuid
    validate_memo(fast.xml)


def test_fast_memo_keeps_the_builders_checks(survey_letter):
    b64 = base64.b64encode(survey_letter.pdf)
    args = {"pdf_base64": b64, "message_uuid": uuid.uuid4(), "created": datetime.now(UTC)}
    with pytest.raises(ValueError, match="https"):
        build_letter_message_fast(_letter(survey_letter, survey_url="http://example.org/s/x"), **args)
    with pytest.raises(ValueError, match="recipient name"):
        build_letter_message_fast(_letter(survey_letter, recipient=MemoRecipient(CPR, "x" * 257)), **args)
    with pytest.raises(ValueError, match="XML"):
        build_letter_message_fast(_letter(survey_letter, recipient=MemoRecipient(CPR, "a\x01b")), **args)
    with pytest.raises(ValueError, match="version 4"):
        build_letter_message_fast(survey_letter, **{**args, "message_uuid": uuid.uuid1()})


def test_validating_the_bytes_catches_a_broken_message_or_content(survey_letter):
    b64 = base64.b64encode(survey_letter.pdf)
    good = build_letter_message_fast(survey_letter, pdf_base64=b64, message_uuid=uuid.uuid4(), created=datetime.now(UTC))
    _validate_letter_bytes(good.xml, b64)
    with pytest.raises(MemoValidationError):  # content that is not the letter
        _validate_letter_bytes(good.xml.replace(b64[:40], b"!" * 40), b64)
    root = etree.fromstring(good.xml)
    root.find(f"{M}MessageHeader/{M}messageType").text = "BREV"
    with pytest.raises(MemoValidationError):
        _validate_letter_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), b64)


async def test_batch_write_is_one_file_per_key_and_keeps_the_first(tmp_path):
    sink = DevSinkChannel(tmp_path)
    assert sink.batched
    first = [OutgoingMessage(f"k{i}.invitation.letter", MessageKind.SMS, address="+4512345678", text=f"first {i}")
             for i in range(5)]
    again = [dataclasses.replace(m, text="second") for m in first[:2]]
    broken = OutgoingMessage("k9.invitation.letter", MessageKind.DIGITAL_POST)  # no MeMo document
    results = await sink.send_many([*first, broken])
    assert [r.status for r in results] == [SendStatus.SENT] * 5 + [SendStatus.PERMANENT_FAILURE]
    assert all(r.ok for r in await sink.send_many(again))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"k{i}.invitation.letter.txt" for i in range(5)]
    assert "first 0" in (tmp_path / "k0.invitation.letter.txt").read_text()


def _config(key: bytes, link_key: bytes, **changes) -> RenderConfig:
    values = {"contact_keyring": {"c1": key}, "link_key": link_key, "survey_base_url": BASE, "sms_via": "dev_sink",
              "response_deadline_days": 21, "default_sender_cvr": "29189978", "sender_cvr_by_kommune": {},
              "contact_name": "jobcentret", "contact_phone": None, "contact_email": None, "privacy_url": None,
              "validate_all": True}
    return RenderConfig(**{**values, **changes})


def test_render_jobs_open_the_sealed_contact_and_build_a_valid_letter():
    key, link_key, nonce = os.urandom(32), os.urandom(32), os.urandom(16)
    now = datetime.now(UTC)
    sealed = seal_contact(ContactDetails(cpr="010190-1234", name="Søren <Ærø>", phone_e164=None,
                                         digital_post_exempt=False), round_id="r", pseudonym="p1", key_id="c1", key=key)
    job = RenderJob(key="i1.invitation.letter", step="invitation", channel="letter", round_id="r", kommunekode="492",
                    pseudonym="p1", token_nonce=nonce, contact=sealed.model_dump(), created_at=now,
                    expires_at=now + timedelta(days=35), letter_date=now.date())
    assert "Søren" not in repr(job) and "ciphertext" not in repr(job)
    letter, sms, wrong_pseudonym, unknown_key = render_jobs(_config(key, link_key), [
        job, dataclasses.replace(job, key="i1.invitation.sms", channel="sms"),
        dataclasses.replace(job, pseudonym="p2"), dataclasses.replace(job, contact={**sealed.model_dump(), "key_id": "x"}),
    ])
    xml = letter.message.memo_xml
    validate_memo(xml)
    root = etree.fromstring(xml)
    assert root.findtext(f"{M}MessageHeader/{M}Recipient/{M}recipientID") == "0101901234"
    assert root.findtext(f"{M}MessageHeader/{M}Recipient/{M}label") == "Søren <Ærø>"
    url = root.findtext(f"{M}MessageBody/{M}MainDocument/{M}Action/{M}EntryPoint/{M}url")
    assert url == BASE + link_token(link_key, nonce)
    assert sms.skip_reason == "no_phone"
    assert wrong_pseudonym.error and unknown_key.error.startswith("cannot open contact")
    assert "0101901234" not in wrong_pseudonym.error + unknown_key.error
