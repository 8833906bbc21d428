"""Turning a due step into the message a channel sends: letters (PDF in MeMo) and SMS texts.

CPU-bound, so the sender runs `render_jobs` off the event loop: in a thread, or in a process pool
(settings `render_processes`). Jobs and outcomes are plain picklable data. A job carries the
citizen's contact details still *sealed*: they are opened here, in the render worker, so the
sender's event loop spends no time on AES-GCM and never holds them in clear. The keys travel with
each chunk of jobs in a `RenderConfig` (the pool's processes are this service's own children).

Cost per letter on the fast path (a cached letter template, see `domain/letter_cache.py`): open
the contact, HMAC the link token, patch ~100 bytes of the template PDF and of its base64, and join
the MeMo message's fixed segments with the letter's values (`build_letter_message_fast`): a few
tens of microseconds, against ~15-19 ms for a full render.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from services.dispatch.channels.base import MessageKind, OutgoingMessage
from services.dispatch.domain.letter_cache import render_letter_fast_b64
from services.dispatch.domain.letters import ContactInfo, LetterContext, LetterKind, render_sms
from services.dispatch.domain.memo import (
    MemoRecipient,
    MemoSender,
    SurveyLetter,
    build_letter_message,
    build_letter_message_fast,
    build_nemsms_message,
)
from services.dispatch.domain.municipalities import municipality_name
from services.dispatch.domain.paper_questionnaire import PaperContext, render_paper_questionnaire
from services.dispatch.domain.plan import PAPER_CHANNELS, PAPER_EXEMPT
from services.dispatch.domain.privacy import redact
from services.dispatch.links import link_token
from shared.answer_id import answer_id_for
from shared.crypto import ContactDetails, SealedContact, open_contact
from shared.events import PrintedQuestionnaire


@dataclass(frozen=True)
class RenderConfig:
    """What every job of one sender shares (from the settings); picklable."""

    contact_keyring: dict[str, bytes] = field(repr=False)
    link_key: bytes = field(repr=False)
    survey_base_url: str
    sms_via: str  # dev_sink | sms_gateway | nemsms
    response_deadline_days: int
    default_sender_cvr: str
    sender_cvr_by_kommune: dict[str, str]
    contact_name: str
    contact_phone: str | None
    contact_email: str | None
    privacy_url: str | None
    validate_all: bool

    @classmethod
    def from_settings(cls, s) -> RenderConfig:
        return cls(contact_keyring=dict(s.contact_keyring), link_key=s.link_key_bytes, survey_base_url=s.survey_base_url,
                   sms_via=s.sms_channel, response_deadline_days=s.response_deadline_days,
                   default_sender_cvr=s.default_sender_cvr, sender_cvr_by_kommune=dict(s.sender_cvr_by_kommune),
                   contact_name=s.contact_name, contact_phone=s.contact_phone, contact_email=s.contact_email,
                   privacy_url=s.privacy_url, validate_all=s.memo_validate_all)


@dataclass(frozen=True, slots=True)
class RenderJob:
    key: str  # idempotency key
    step: str
    channel: str  # letter | sms
    round_id: str
    kommunekode: str
    pseudonym: str
    token_nonce: bytes = field(repr=False)
    contact: dict = field(repr=False)  # sealed
    created_at: datetime
    expires_at: datetime
    letter_date: date
    deadline: date | None = None  # the last day to answer; None: response_deadline_days after created_at
    answer_id: str | None = None  # printed on the paper questionnaire
    # The paper questionnaire's content (shared.events.OfferedQuestionnaire as JSON; None: responses
    # has offered none for the round yet).
    printed: dict | None = field(default=None, repr=False)
    # A reminder letter whose step also sends the citizen a paper questionnaire (which carries
    # the reminder): an exempt citizen's printed letter is then not sent as a second envelope.
    paper_questionnaire_with_it: bool = False
    # The languages the round offers (questionnaire.offered's ``offered_languages``): the letter
    # says in each how to choose it. None: responses has told none yet, every language the letter has.
    languages: tuple[str, ...] | None = None

    def __repr__(self) -> str:  # nothing personal reaches a log through repr()
        return f"RenderJob({self.key})"


@dataclass(frozen=True)
class RenderOutcome:
    key: str
    message: OutgoingMessage | None = None
    skip_reason: str | None = None  # e.g. no_phone: nothing to send on this channel
    error: str | None = None  # permanent: the message cannot be built (redacted)
    retry: str | None = None  # transient: it cannot be built yet (retried with backoff)


_validated_shapes: set[tuple] = set()  # per process


def message_uuid(key: str) -> uuid.UUID:
    """A version-4-shaped UUID derived from the idempotency key: a retry rebuilds the message
    with the same messageUUID, which Digital Post treats as the message's identity."""
    raw = bytearray(hashlib.sha256(key.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


def _validate(config: RenderConfig, shape: tuple) -> bool:
    if config.validate_all or shape not in _validated_shapes:
        _validated_shapes.add(shape)
        return True
    return False


_NON_DIGITS = re.compile(r"\D")


def render_job(config: RenderConfig, job: RenderJob) -> RenderOutcome:
    try:
        contact = open_contact(SealedContact.model_validate(job.contact), round_id=job.round_id,
                               pseudonym=job.pseudonym, keyring=config.contact_keyring)
    except Exception as exc:  # noqa: BLE001 - e.g. a contact sealed under an unknown key
        return RenderOutcome(job.key, error=f"cannot open contact: {type(exc).__name__}")
    try:
        kind = LetterKind(job.step)
        municipality = municipality_name(job.kommunekode)
        link = config.survey_base_url + link_token(config.link_key, job.token_nonce)
        contact_info = _contact_info(config, municipality)
        ctx = LetterContext(name=contact.name, link=link, municipality=municipality,
                            deadline=job.deadline or (job.created_at + timedelta(days=config.response_deadline_days)).date(),
                            contact=contact_info, letter_date=job.letter_date, privacy_url=config.privacy_url,
                            **({"languages": job.languages} if job.languages else {}))
        sender = MemoSender(sender_id=config.sender_cvr_by_kommune.get(job.kommunekode, config.default_sender_cvr),
                            label=municipality)
        cpr = _NON_DIGITS.sub("", contact.cpr)
        folder = (job.round_id, job.kommunekode)
        if job.channel in PAPER_CHANNELS:
            return _paper_questionnaire(config, job, contact, ctx, sender, MemoRecipient(cpr, contact.name or None), folder)
        if job.channel == "sms":
            phone = contact.phone_e164
            if not phone:
                return RenderOutcome(job.key, skip_reason="no_phone")
            sms = render_sms(kind, ctx)
            if config.sms_via == "nemsms":
                memo = build_nemsms_message(sender, MemoRecipient(cpr), label="Spørgeskema om jobcentret", text=sms.text,
                                            message_uuid=message_uuid(job.key), validate=_validate(config, ("nemsms",)))
                return RenderOutcome(job.key, OutgoingMessage(job.key, MessageKind.SMS, address=phone, text=sms.text,
                                                              memo_xml=memo.xml, folder=folder))
            return RenderOutcome(job.key, OutgoingMessage(job.key, MessageKind.SMS, address=phone, text=sms.text,
                                                          folder=folder))
        exempt = contact.digital_post_exempt
        if exempt and job.paper_questionnaire_with_it:
            return RenderOutcome(job.key, skip_reason="paper_questionnaire")
        letter, pdf_base64 = render_letter_fast_b64(kind, ctx, paper=exempt)
        memo = build_letter_message_fast(
            SurveyLetter(sender=sender, recipient=MemoRecipient(cpr, contact.name or None), title=letter.title,
                         notification=letter.notification, pdf=letter.pdf, survey_url=link,
                         pdf_filename=letter.filename, action_end=job.expires_at, message_id=job.key),
            pdf_base64=pdf_base64, message_uuid=message_uuid(job.key), created=datetime.now(UTC),
            validate=_validate(config, ("letter", job.step, exempt, municipality, bool(contact.name))),
        )
        return RenderOutcome(job.key, OutgoingMessage(job.key, MessageKind.DIGITAL_POST, memo_xml=memo.xml,
                                                      exempt_from_digital_post=exempt, folder=folder))
    except Exception as exc:  # noqa: BLE001 - one bad letter must not stop the batch
        return RenderOutcome(job.key, error=redact(f"cannot build message: {type(exc).__name__}: {exc}"))


PAPER_TITLE = "Spørgeskema om jobcentret på papir"


def _paper_questionnaire(config: RenderConfig, job: RenderJob, contact: ContactDetails, ctx: LetterContext,
                         sender: MemoSender, recipient: MemoRecipient, folder: tuple[str, ...]) -> RenderOutcome:
    """The paper questionnaire, always by physical post (SF1601 Fysisk Post)."""
    if job.channel == PAPER_EXEMPT and not contact.digital_post_exempt:
        return RenderOutcome(job.key, skip_reason="has_digital_post")
    if job.printed is None:
        return RenderOutcome(job.key, retry="responses has offered no questionnaire for print for this round yet "
                             "(questionnaire.offered)")
    if job.answer_id is None:
        return RenderOutcome(job.key, error="the invitation has no answer id")
    languages = {lang: PrintedQuestionnaire.model_validate(q) for lang, q in job.printed["languages"].items()}
    paper = render_paper_questionnaire(
        languages,
        PaperContext(name=ctx.name, link=ctx.link, answer_id=job.answer_id, municipality=ctx.municipality,
                     deadline=ctx.deadline, letter_date=job.letter_date),
        # The citizen's language: no extract carries one yet, so Danish. The rendering takes any
        # language the questionnaire has (domain/paper_questionnaire.py, choose_language).
        language=None,
    )
    memo = build_letter_message(
        SurveyLetter(sender=sender, recipient=recipient, title=PAPER_TITLE,
                     notification=f"Spørgeskema om jobcentret fra {ctx.municipality}, på papir", pdf=paper.pdf,
                     survey_url=ctx.link, pdf_filename=paper.filename, action_end=job.expires_at, message_id=job.key),
        message_uuid=message_uuid(job.key), created=datetime.now(UTC),
        validate=_validate(config, ("paper", job.step, ctx.municipality, bool(contact.name))),
    )
    return RenderOutcome(job.key, OutgoingMessage(job.key, MessageKind.DIGITAL_POST, memo_xml=memo.xml,
                                                  exempt_from_digital_post=contact.digital_post_exempt,
                                                  physical_post=True, folder=folder))


def _contact_info(config: RenderConfig, municipality: str) -> ContactInfo:
    name = f"{config.contact_name} i {municipality}" if config.contact_name == "jobcentret" else config.contact_name
    return ContactInfo(name, config.contact_phone, config.contact_email)


# The preview's citizen: nobody's name, and a link that is no survey token (too short to be one),
# so opening it from a preview shows "we cannot find the link".
PREVIEW_NAME = "Eksempel Borgersen"
PREVIEW_TOKEN = "EKSEMPEL"


def render_preview(config: RenderConfig, kommunekode: str, step: str, letter_date: date, deadline: date,
                   *, paper: bool = False, languages: tuple[str, ...] | None = None) -> bytes:
    """The letter of ``step`` as a municipality's citizens get it, for a made-up citizen: the
    same templates, municipality, contact details and dates, the full render (not the cache)."""
    from services.dispatch.domain.letters import render_letter

    municipality = municipality_name(kommunekode)
    ctx = LetterContext(name=PREVIEW_NAME, link=config.survey_base_url + PREVIEW_TOKEN, municipality=municipality,
                        deadline=deadline, contact=_contact_info(config, municipality), letter_date=letter_date,
                        privacy_url=config.privacy_url, **({"languages": languages} if languages else {}))
    return render_letter(LetterKind(step), ctx, paper=paper).pdf


# A number no invitation has (the sequence starts at 1): the preview's answer id is nobody's.
PREVIEW_ANSWER_NUMBER = 0


def render_paper_preview(config: RenderConfig, kommunekode: str, printed: dict, letter_date: date, deadline: date,
                         language: str | None) -> bytes:
    """The paper questionnaire as a municipality's citizens get it, for a made-up citizen, link
    and answer id."""
    languages = {lang: PrintedQuestionnaire.model_validate(q) for lang, q in printed["languages"].items()}
    ctx = PaperContext(name=PREVIEW_NAME, link=config.survey_base_url + PREVIEW_TOKEN,
                       answer_id=answer_id_for(PREVIEW_ANSWER_NUMBER), municipality=municipality_name(kommunekode),
                       deadline=deadline, letter_date=letter_date)
    return render_paper_questionnaire(languages, ctx, language).pdf


def render_jobs(config: RenderConfig, jobs: list[RenderJob]) -> list[RenderOutcome]:
    return [render_job(config, job) for job in jobs]
