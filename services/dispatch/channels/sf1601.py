"""Digital Post, paper post and NemSMS through KOMBIT's SF1601 (KombiPostAfsend).

SF1601 takes a `kombi_request` XML document: a `KombiValgKode` saying how to
deliver, followed by the MeMo message itself:

    <kombi_request>
      <KombiValgKode>Digital Post</KombiValgKode>
      <memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" ...>...</memo:Message>
    </kombi_request>

It is POSTed with `X-TransaktionsId` (a UUID) and `X-TransaktionsTid` headers.
The transaction id is derived from the message's idempotency key, so a retry
of the same message carries the same id and the receiving side can drop the
duplicate; the key itself also goes in an `Idempotency-Key` header for
gateways in front of SF1601 that dedupe on that.

Authentication differs between set-ups (an OAuth/STS token in front of
Serviceplatformen, or mutual TLS with the municipality's certificate), so both
a bearer token (static or fetched per request) and client-certificate paths
are configurable.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path

import httpx
from lxml import etree

from services.dispatch.domain.memo import MEMO_NS
from services.dispatch.domain.privacy import redact

from .base import Channel, OutgoingMessage, SendResult, SendStatus, classify_http_status

log = logging.getLogger(__name__)

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


class KombiValg(StrEnum):
    """SF1601's delivery choice (KombiValgKode)."""

    AUTOMATIC = "Automatisk Valg"  # SF1601 picks Digital Post or paper per citizen
    DIGITAL_POST = "Digital Post"
    PHYSICAL_POST = "Fysisk Post"  # for citizens exempt from Digital Post
    NEMSMS = "NemSMS"  # reaches only citizens signed up for NemSMS


@dataclass(frozen=True, slots=True)
class SF1601Config:
    endpoint: str
    """Full URL of the KombiPostAfsend resource."""
    bearer_token: str | None = field(default=None, repr=False)
    token_provider: Callable[[], Awaitable[str]] | None = field(default=None, repr=False)
    """Called before each request when set (tokens expire); wins over bearer_token."""
    client_cert: str | Path | None = None
    client_key: str | Path | None = None
    ca_bundle: str | Path | None = None
    """CA file for the server certificate; the system store when None."""
    timeout_seconds: float = 30.0
    default_kombi_valg: KombiValg = KombiValg.DIGITAL_POST
    """Used unless the message says the citizen is exempt from Digital Post."""


class InvalidKombiRequest(ValueError):
    pass


def build_kombi_request(memo_xml: bytes, kombi_valg: KombiValg) -> bytes:
    """Wrap a MeMo message in SF1601's kombi_request envelope.

    The MeMo is parsed rather than spliced in as text so a truncated or
    foreign document fails here, as a permanent failure, not at KOMBIT."""
    try:
        memo = etree.fromstring(memo_xml, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvalidKombiRequest(f"MeMo is not well-formed XML: {exc.msg}") from None
    if memo.tag != f"{{{MEMO_NS}}}Message":
        raise InvalidKombiRequest("document is not a MeMo message")
    message_type = memo.findtext(f"{{{MEMO_NS}}}MessageHeader/{{{MEMO_NS}}}messageType")
    expected = "NEMSMS" if kombi_valg is KombiValg.NEMSMS else "DIGITALPOST"
    if message_type != expected:
        raise InvalidKombiRequest(
            f"KombiValgKode {kombi_valg.value!r} needs messageType {expected}, got {message_type}"
        )
    root = etree.Element("kombi_request")
    etree.SubElement(root, "KombiValgKode").text = kombi_valg.value
    root.append(memo)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _ssl_context(config: SF1601Config) -> ssl.SSLContext | bool:
    if config.client_cert is None and config.ca_bundle is None:
        return True  # httpx's default verification
    context = ssl.create_default_context(
        cafile=str(config.ca_bundle) if config.ca_bundle else None
    )
    if config.client_cert is not None:
        context.load_cert_chain(
            str(config.client_cert),
            str(config.client_key) if config.client_key else None,
        )
    return context


def _memo_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DigitalPostSF1601Channel(Channel):
    """Letters as Digital Post, or as paper post for exempt citizens."""

    name = "sf1601"

    def __init__(
        self,
        config: SF1601Config,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._client = httpx.AsyncClient(
            verify=_ssl_context(config),
            timeout=config.timeout_seconds,
            transport=transport,
            # A redirect would most likely be a login page: surface it.
            follow_redirects=False,
        )

    def kombi_valg_for(self, message: OutgoingMessage) -> KombiValg:
        if message.exempt_from_digital_post or message.physical_post:
            return KombiValg.PHYSICAL_POST
        return self._config.default_kombi_valg

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, message: OutgoingMessage) -> SendResult:
        transaction_id = str(message.transaction_uuid)
        if message.memo_xml is None:
            return self._done(message, SendResult.permanent("message has no MeMo document"))
        try:
            body = build_kombi_request(message.memo_xml, self.kombi_valg_for(message))
        except InvalidKombiRequest as exc:
            return self._done(message, SendResult.permanent(redact(str(exc))))

        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            "X-TransaktionsId": transaction_id,
            "X-TransaktionsTid": _memo_timestamp(),
            "Idempotency-Key": message.idempotency_key,
        }
        try:
            token = await self._token()
        except Exception as exc:  # noqa: BLE001 - any token-service failure is "try later"
            return self._done(message, SendResult.transient(f"token provider failed: {type(exc).__name__}"))
        if token:
            headers["Authorization"] = f"Bearer {token}"

        try:
            response = await self._client.post(self._config.endpoint, content=body, headers=headers)
        except httpx.TimeoutException:
            return self._done(message, SendResult.transient("timeout", transaction_id))
        except (httpx.TransportError, OSError) as exc:
            # OSError: with TLS 1.3 a server's refusal of our client certificate
            # can arrive after the handshake, as a raw ssl.SSLError on read that
            # httpx does not wrap.
            return self._done(message, SendResult.transient(f"transport error: {type(exc).__name__}", transaction_id))

        status = classify_http_status(response.status_code)
        if status is SendStatus.SENT:
            return self._done(message, SendResult.sent(transaction_id), response.status_code)
        # The body may echo the MeMo (and so the CPR number): redact it.
        error = f"HTTP {response.status_code}: {redact(response.text)}"
        return self._done(message, SendResult(status, transaction_id, error), response.status_code)

    async def _token(self) -> str | None:
        if self._config.token_provider is not None:
            return await self._config.token_provider()
        return self._config.bearer_token

    def _done(self, message: OutgoingMessage, result: SendResult, http_status: int | None = None) -> SendResult:
        # Only the key, never the recipient: the key is what links log lines
        # to the dispatch record.
        log.info(
            "%s send key=%s status=%s http=%s error=%s",
            self.name, message.idempotency_key, result.status.value, http_status, result.error,
        )
        return result


class NemSmsSF1601Channel(DigitalPostSF1601Channel):
    """SMS through NemSMS: the same SF1601 call with KombiValgKode NemSMS and
    a NEMSMS MeMo message (see `build_nemsms_message`). Only citizens signed
    up for NemSMS receive it; others make SF1601 answer with an error."""

    name = "sf1601_nemsms"

    def kombi_valg_for(self, message: OutgoingMessage) -> KombiValg:
        return KombiValg.NEMSMS
