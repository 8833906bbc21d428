"""Turning a due step into the message a channel sends: letters (PDF in MeMo) and SMS texts.

CPU-bound (a full letter ~15-19 ms, a cached one well under 1 ms plus the MeMo), so the sender
runs `render_jobs` off the event loop: in a thread, or in a process pool (settings
`render_processes`). Jobs and outcomes are plain picklable data.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from services.dispatch.channels.base import MessageKind, OutgoingMessage
from services.dispatch.domain.letter_cache import render_letter_fast
from services.dispatch.domain.letters import ContactInfo, LetterContext, LetterKind, render_sms
from services.dispatch.domain.memo import (
    MemoRecipient,
    MemoSender,
    SurveyLetter,
    build_letter_message,
    build_nemsms_message,
)
from services.dispatch.domain.privacy import redact


@dataclass(frozen=True)
class RenderJob:
    key: str  # idempotency key
    step: str
    channel: str  # letter | sms
    sms_via: str  # dev_sink | sms_gateway | nemsms
    cpr: str
    name: str | None
    phone: str | None
    exempt: bool
    link: str
    municipality: str
    sender_cvr: str
    deadline: date
    letter_date: date
    action_end: datetime
    contact: ContactInfo
    privacy_url: str | None
    validate_all: bool

    def __repr__(self) -> str:  # personal data never reaches a log through repr()
        return f"RenderJob({self.key})"


@dataclass(frozen=True)
class RenderOutcome:
    key: str
    message: OutgoingMessage | None = None
    skip_reason: str | None = None  # e.g. no_phone: nothing to send on this channel
    error: str | None = None  # permanent: the message cannot be built (redacted)


_validated_shapes: set[tuple] = set()  # per process


def message_uuid(key: str) -> uuid.UUID:
    """A version-4-shaped UUID derived from the idempotency key: a retry rebuilds the message
    with the same messageUUID, which Digital Post treats as the message's identity."""
    raw = bytearray(hashlib.sha256(key.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


def _validate(job: RenderJob, shape: tuple) -> bool:
    if job.validate_all or shape not in _validated_shapes:
        _validated_shapes.add(shape)
        return True
    return False


def render_job(job: RenderJob) -> RenderOutcome:
    try:
        kind = LetterKind(job.step)
        ctx = LetterContext(name=job.name, link=job.link, municipality=job.municipality, deadline=job.deadline,
                            contact=job.contact, letter_date=job.letter_date, privacy_url=job.privacy_url)
        sender = MemoSender(sender_id=job.sender_cvr, label=job.municipality)
        cpr = re.sub(r"\D", "", job.cpr)
        if job.channel == "sms":
            if not job.phone:
                return RenderOutcome(job.key, skip_reason="no_phone")
            sms = render_sms(kind, ctx)
            if job.sms_via == "nemsms":
                memo = build_nemsms_message(sender, MemoRecipient(cpr), label="Spørgeskema om jobcentret", text=sms.text,
                                            message_uuid=message_uuid(job.key), validate=_validate(job, ("nemsms",)))
                return RenderOutcome(job.key, OutgoingMessage(job.key, MessageKind.SMS, address=job.phone, text=sms.text,
                                                              memo_xml=memo.xml))
            return RenderOutcome(job.key, OutgoingMessage(job.key, MessageKind.SMS, address=job.phone, text=sms.text))
        letter = render_letter_fast(kind, ctx, paper=job.exempt)
        memo = build_letter_message(
            SurveyLetter(sender=sender, recipient=MemoRecipient(cpr, job.name or None), title=letter.title,
                         notification=letter.notification, pdf=letter.pdf, survey_url=job.link,
                         pdf_filename=letter.filename, action_end=job.action_end, message_id=job.key),
            message_uuid=message_uuid(job.key),
            validate=_validate(job, ("letter", job.step, job.exempt, job.municipality)),
        )
        return RenderOutcome(job.key, OutgoingMessage(job.key, MessageKind.DIGITAL_POST, memo_xml=memo.xml,
                                                      exempt_from_digital_post=job.exempt))
    except Exception as exc:  # noqa: BLE001 - one bad letter must not stop the batch
        return RenderOutcome(job.key, error=redact(f"cannot build message: {type(exc).__name__}: {exc}"))


def render_jobs(jobs: list[RenderJob]) -> list[RenderOutcome]:
    return [render_job(job) for job in jobs]
