"""Delivery channels of the dispatch service: one async `Channel` interface and
adapters for SF1601 (Digital Post / paper / NemSMS), an HTTP SMS gateway,
SMTP and a directory sink for development, plus a token-bucket rate limiter."""

from .base import (
    Attachment,
    Channel,
    MessageKind,
    OutgoingMessage,
    SendResult,
    SendStatus,
    classify_http_status,
)
from .devsink import DevSinkChannel
from .ratelimit import RateLimitedChannel, TokenBucket
from .sf1601 import (
    DigitalPostSF1601Channel,
    KombiValg,
    NemSmsSF1601Channel,
    SF1601Config,
    build_kombi_request,
)
from .sms import SmsGatewayChannel, SmsGatewayConfig
from .smtp import SmtpChannel, SmtpConfig, build_email

__all__ = [
    "Attachment",
    "Channel",
    "DevSinkChannel",
    "DigitalPostSF1601Channel",
    "KombiValg",
    "MessageKind",
    "NemSmsSF1601Channel",
    "OutgoingMessage",
    "RateLimitedChannel",
    "SF1601Config",
    "SendResult",
    "SendStatus",
    "SmsGatewayChannel",
    "SmsGatewayConfig",
    "SmtpChannel",
    "SmtpConfig",
    "TokenBucket",
    "build_email",
    "build_kombi_request",
    "classify_http_status",
]
