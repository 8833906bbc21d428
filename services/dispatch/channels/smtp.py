"""E-mail through SMTP (aiosmtplib).

E-mail is not a channel the seeds ask for, but municipalities use it for
staff notices and some run pilots with e-mail reminders. The Message-ID is
derived from the idempotency key so a retried mail has the same id; mail
systems and clients collapse duplicates on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from services.dispatch.domain.privacy import redact

from .base import Channel, MessageKind, OutgoingMessage, SendResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "noreply@borgerblik.dk"
    sender_name: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False
    """Implicit TLS (port 465)."""
    start_tls: bool | None = None
    """True: require STARTTLS; None: use it when the server offers it."""
    timeout_seconds: float = 30.0
    message_id_domain: str = "borgerblik.dk"


def build_email(message: OutgoingMessage, *, sender: str, sender_name: str | None = None,
                message_id_domain: str = "borgerblik.dk") -> EmailMessage:
    """The RFC 5322 message for `message` (used by SMTP and the dev sink)."""
    mail = EmailMessage()
    mail["From"] = Address(display_name=sender_name or "", addr_spec=sender)
    mail["To"] = message.address
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(datetime.now(timezone.utc))
    # Derived from the idempotency key (via its UUID, which is always a valid
    # Message-ID local part) so a retried mail keeps its id.
    mail["Message-ID"] = f"<{message.transaction_uuid}@{message_id_domain}>"
    mail.set_content(message.text)
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mail.add_attachment(attachment.data, maintype=maintype, subtype=subtype or "octet-stream",
                            filename=attachment.filename)
    return mail


class SmtpChannel(Channel):
    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, message: OutgoingMessage) -> SendResult:
        if message.kind is not MessageKind.EMAIL:
            return self._done(message, SendResult.permanent(f"not an e-mail message: {message.kind.value}"))
        if "@" not in message.address:
            return self._done(message, SendResult.permanent("invalid e-mail address"))
        cfg = self._config
        try:
            mail = build_email(message, sender=cfg.sender, sender_name=cfg.sender_name,
                               message_id_domain=cfg.message_id_domain)
        except (ValueError, TypeError) as exc:  # malformed header values
            return self._done(message, SendResult.permanent(f"cannot build e-mail: {type(exc).__name__}"))

        message_id = mail["Message-ID"]
        try:
            await aiosmtplib.send(
                mail,
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.use_tls,
                start_tls=cfg.start_tls,
                timeout=cfg.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            # A 4xx refusal (greylisting, mailbox busy) is worth another try.
            if any(code < 500 for code in codes):
                return self._done(message, SendResult.transient(f"recipient refused: {codes}"))
            return self._done(message, SendResult.permanent(f"recipient refused: {codes}"))
        except aiosmtplib.SMTPResponseException as exc:
            # Server texts often quote the address: redact.
            error = f"SMTP {exc.code}: {redact(exc.message)}"
            if exc.code >= 500:
                return self._done(message, SendResult.permanent(error))
            return self._done(message, SendResult.transient(error))
        except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPConnectError, OSError) as exc:
            return self._done(message, SendResult.transient(f"connection: {type(exc).__name__}"))
        except aiosmtplib.SMTPException as exc:
            # E.g. STARTTLS required but not offered: configuration, not luck.
            return self._done(message, SendResult.permanent(f"SMTP: {type(exc).__name__}"))
        return self._done(message, SendResult.sent(message_id))

    def _done(self, message: OutgoingMessage, result: SendResult) -> SendResult:
        log.info("%s send key=%s status=%s error=%s",
                 self.name, message.idempotency_key, result.status.value, result.error)
        return result
