"""The one interface every dispatch channel implements.

A sender (the dispatch worker) hands an `OutgoingMessage` to a `Channel` and
gets a `SendResult` back; channels never raise for delivery problems, they
classify them, so retry policy stays in one place (the sender):

* SENT: the provider accepted the message;
* TRANSIENT_FAILURE: worth retrying later with the same idempotency key
  (timeouts, connection errors, 5xx, 429);
* PERMANENT_FAILURE: retrying the same message will not help (4xx, a refused
  recipient, an invalid phone number).

Idempotency: the sender derives `idempotency_key` from what the message *is*
(round, respondent, step), not from the attempt, and every channel forwards it
to the receiving side in the form that side understands, so a retry after a
lost response does not reach the citizen twice.
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Self

_KEY_MAX = 200
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c5e0e-6a53-4c43-9d55-2f0b7d6a9c11")


class MessageKind(StrEnum):
    DIGITAL_POST = "digital_post"
    SMS = "sms"
    EMAIL = "email"


class SendStatus(StrEnum):
    SENT = "sent"
    TRANSIENT_FAILURE = "transient_failure"
    PERMANENT_FAILURE = "permanent_failure"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to one citizen through one channel.

    Fields holding personal data are left out of repr, so logging a message
    object by mistake leaks nothing but the key and the kind.
    """

    idempotency_key: str
    """Stable across retries; must not contain personal data (it is logged,
    used as a file name and sent to providers)."""
    kind: MessageKind
    address: str = field(default="", repr=False)
    """E.164 phone number for SMS, e-mail address for e-mail. Unused for
    Digital Post, whose recipient (the CPR number) is inside `memo_xml`."""
    text: str = field(default="", repr=False)
    """SMS text, or the plain-text body of an e-mail."""
    subject: str = field(default="", repr=False)
    memo_xml: bytes | None = field(default=None, repr=False)
    """A validated MeMo message, for SF1601 (Digital Post, paper, NemSMS)."""
    attachments: tuple[Attachment, ...] = field(default=(), repr=False)
    exempt_from_digital_post: bool = False
    """The citizen is exempt from Digital Post: SF1601 must print the letter."""
    physical_post: bool = False
    """Printed and posted whatever the citizen's Digital Post (a paper questionnaire)."""
    folder: tuple[str, ...] = ()
    """Where a channel that files messages (the dev sink) puts this one: (round, kommunekode).
    No personal data."""

    def __post_init__(self) -> None:
        if not self.idempotency_key or len(self.idempotency_key) > _KEY_MAX:
            raise ValueError(f"idempotency_key must be 1-{_KEY_MAX} characters")
        if any(ord(ch) < 0x20 for ch in self.idempotency_key):
            # It travels in HTTP headers and file names.
            raise ValueError("idempotency_key must not contain control characters")

    @property
    def transaction_uuid(self) -> uuid.UUID:
        """A UUID derived from the idempotency key, for receivers that want one
        (SF1601's X-TransaktionsId): same key, same UUID, across retries and
        process restarts."""
        return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, self.idempotency_key)


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    provider_reference: str | None = None
    error: str | None = None
    """Why it failed, already redacted: safe to log and store."""

    @property
    def ok(self) -> bool:
        return self.status is SendStatus.SENT

    @classmethod
    def sent(cls, provider_reference: str | None = None) -> SendResult:
        return cls(SendStatus.SENT, provider_reference=provider_reference)

    @classmethod
    def transient(cls, error: str, provider_reference: str | None = None) -> SendResult:
        return cls(SendStatus.TRANSIENT_FAILURE, provider_reference, error)

    @classmethod
    def permanent(cls, error: str, provider_reference: str | None = None) -> SendResult:
        return cls(SendStatus.PERMANENT_FAILURE, provider_reference, error)


class Channel(ABC):
    """Delivers messages of one kind. Implementations are safe to share
    between concurrent tasks of one event loop."""

    name: str = "channel"
    batched: bool = False
    """True when `send_many` is cheaper than a `send` per message: the sender then hands the
    channel a batch's messages at once. Rate-limited and remote channels stay per message."""

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver `message`; classify failures instead of raising them."""

    async def send_many(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """Deliver several messages (each with its own idempotency key); one result each, in order."""
        return [await self.send(message) for message in messages]

    async def aclose(self) -> None:
        """Release connections; the default channel holds none."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def classify_http_status(status_code: int) -> SendStatus:
    """Map a provider's HTTP status to a send status.

    408 and 429 are 4xx but say "not now", so they are transient; other 4xx
    mean the request itself is wrong and a retry would fail the same way.
    Unexpected 1xx/3xx are treated as permanent so a misconfigured endpoint
    (a redirect to a login page) surfaces instead of being retried forever.
    """
    if 200 <= status_code < 300:
        return SendStatus.SENT
    if status_code >= 500 or status_code in (408, 429):
        return SendStatus.TRANSIENT_FAILURE
    return SendStatus.PERMANENT_FAILURE


_SAFE_FILE_KEY = re.compile(r"[A-Za-z0-9._\-]{1,120}")


def key_as_filename(key: str) -> str:
    """The idempotency key as a file-name stem: verbatim when it is plainly
    safe, else a stable UUID derived from it (no path tricks, no collisions)."""
    if _SAFE_FILE_KEY.fullmatch(key) and key not in (".", ".."):
        return key
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, key))
