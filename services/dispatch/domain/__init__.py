"""Pure parts of the dispatch service: MeMo messages, letters, SMS texts and the paper questionnaire.

No I/O here beyond reading the package's own templates, fonts and schemas."""

from .gsm import SmsLength, sms_length
from .letters import (
    ContactInfo,
    LetterContext,
    LetterKind,
    RenderedLetter,
    SmsText,
    render_letter,
    render_sms,
)
from .memo import (
    MemoMessage,
    MemoRecipient,
    MemoSender,
    MemoValidationError,
    SurveyLetter,
    build_letter_message,
    build_nemsms_message,
    memo_schema,
    validate_memo,
)
from .phone import to_e164
from .privacy import redact

__all__ = [
    "ContactInfo",
    "LetterContext",
    "LetterKind",
    "MemoMessage",
    "MemoRecipient",
    "MemoSender",
    "MemoValidationError",
    "RenderedLetter",
    "SmsLength",
    "SmsText",
    "SurveyLetter",
    "build_letter_message",
    "build_nemsms_message",
    "memo_schema",
    "redact",
    "render_letter",
    "render_sms",
    "sms_length",
    "to_e164",
    "validate_memo",
]
