"""SMS through a plain HTTP SMS gateway.

Most Danish SMS gateways (and the municipalities' framework agreements) accept
a JSON POST with an API key; the common denominator is

    POST <endpoint>   {"to": "+4512345678", "text": "...", "reference": "<key>"}

with the key header configurable. The idempotency key is sent both as the
`reference` (gateways echo it in delivery reports, which lets the response
service match them) and as an `Idempotency-Key` header for gateways that
dedupe. NemSMS through SF1601 lives in `sf1601.NemSmsSF1601Channel`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx

from services.dispatch.domain.phone import to_e164
from services.dispatch.domain.privacy import redact

from .base import Channel, MessageKind, OutgoingMessage, SendResult, SendStatus, classify_http_status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SmsGatewayConfig:
    endpoint: str
    api_key: str = field(repr=False)
    api_key_header: str = "X-API-Key"
    """Header carrying the key; with "Authorization" it is sent as a bearer token."""
    sender_name: str | None = None
    """Alphanumeric sender shown on the phone (max 11 chars), sent as "from"."""
    timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        if self.sender_name is not None and not (1 <= len(self.sender_name) <= 11):
            raise ValueError("an alphanumeric SMS sender is 1-11 characters")


class SmsGatewayChannel(Channel):
    name = "sms_gateway"

    def __init__(
        self,
        config: SmsGatewayConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        key_value = (
            f"Bearer {config.api_key}" if config.api_key_header.lower() == "authorization"
            else config.api_key
        )
        self._client = httpx.AsyncClient(
            timeout=config.timeout_seconds,
            transport=transport,
            headers={config.api_key_header: key_value},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, message: OutgoingMessage) -> SendResult:
        if message.kind is not MessageKind.SMS:
            return self._done(message, SendResult.permanent(f"not an SMS message: {message.kind.value}"))
        to = to_e164(message.address)
        if to is None:
            # The number itself stays out of the error: it is personal data.
            return self._done(message, SendResult.permanent("invalid phone number"))
        if not message.text.strip():
            return self._done(message, SendResult.permanent("empty SMS text"))

        payload: dict[str, str] = {"to": to, "text": message.text, "reference": message.idempotency_key}
        if self._config.sender_name:
            payload["from"] = self._config.sender_name
        try:
            response = await self._client.post(
                self._config.endpoint,
                json=payload,
                headers={"Idempotency-Key": message.idempotency_key},
            )
        except httpx.TimeoutException:
            return self._done(message, SendResult.transient("timeout"))
        except (httpx.TransportError, OSError) as exc:
            # OSError: with TLS 1.3 a server's refusal of our client certificate
            # can arrive after the handshake, as a raw ssl.SSLError on read that
            # httpx does not wrap.
            return self._done(message, SendResult.transient(f"transport error: {type(exc).__name__}"))

        status = classify_http_status(response.status_code)
        if status is SendStatus.SENT:
            return self._done(message, SendResult.sent(_gateway_reference(response) or message.idempotency_key),
                              response.status_code)
        error = f"HTTP {response.status_code}: {redact(response.text)}"
        return self._done(message, SendResult(status, None, error), response.status_code)

    def _done(self, message: OutgoingMessage, result: SendResult, http_status: int | None = None) -> SendResult:
        log.info(
            "%s send key=%s status=%s http=%s error=%s",
            self.name, message.idempotency_key, result.status.value, http_status, result.error,
        )
        return result


def _gateway_reference(response: httpx.Response) -> str | None:
    """The gateway's own message id, if its answer is JSON and has one."""
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("id", "message_id", "messageId", "reference"):
            value = data.get(key)
            if isinstance(value, (str, int)) and str(value):
                return str(value)[:200]
    return None
