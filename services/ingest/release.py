"""Releasing the sampled citizens' sealed contacts to dispatch (``contacts.released``).

Ingest seals every delivered citizen's contact details (CPR for Digital Post, name, phone) for
dispatch and keeps them with the citizen (``Citizen.contact_sealed``). Only the sample (about
one citizen in four to eight nationally) is ever written to, so the contacts travel only for
the citizens sampling has drawn: each ``sample.drawn`` chunk is answered with one
``contacts.released`` event for its persons. Unsampled citizens' contact data never leave
ingest (no Kafka topic, no other service's tables hold them), and population.received is half
the size it was.

The contacts are looked up in the municipality's *current* accepted delivery: a corrected
re-delivery after the draw releases the corrected contact; a citizen no longer there (erased,
objected, or left out of the correction) is reported ``missing`` and dispatch never contacts
them. Every release is written to ingest's audit log (who asked, how many, which draw).
"""

from __future__ import annotations

import base64
import logging

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from services.ingest import rounds
from services.ingest.models import AUDIT, Citizen, Delivery
from services.ingest.service import accepted_delivery
from shared.audit import record
from shared.bus import UnitOfWork
from shared.crypto import SealedContact
from shared.events import ContactsReleased, Envelope, ReleasedContact, SampleDrawn, SampleDrawnV1
from shared.observability import log_fields

logger = logging.getLogger(__name__)

NONCE_BYTES = 12
AUDIT_KIND = "personal-data-release"


async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn | SampleDrawnV1) -> None:
    # The draw moves the round to sample_drawn (its first chunk does; the rest find it there).
    await rounds.advance(uow, event.round_id, "sample_drawn", actor=envelope.source)
    if isinstance(event, SampleDrawnV1) or not event.persons:
        return  # v1 carried the sealed contacts itself; a chunk of strata only has nobody to contact
    session = uow.session
    pseudonyms = [person.pseudonym for person in event.persons]
    found = await sealed_contacts(session, event.round_id, event.kommunekode, pseudonyms)
    contacts = [ReleasedContact(pseudonym=p, contact=found[p]) for p in dict.fromkeys(pseudonyms) if p in found]
    missing = [p for p in dict.fromkeys(pseudonyms) if p not in found]
    uow.publish(
        ContactsReleased(
            round_id=event.round_id,
            kommunekode=event.kommunekode,
            draw_id=event.draw_id,
            chunk_no=event.chunk_no,
            contacts=contacts,
            missing=missing,
        ),
        correlation_id=envelope.correlation_id,
    )
    await record(
        session,
        AUDIT,
        actor=envelope.source,
        action="contacts.released",
        kind=AUDIT_KIND,
        kommunekode=event.kommunekode,
        resource={
            "round_id": event.round_id,
            "draw_id": str(event.draw_id),
            "chunk_no": event.chunk_no,
            "released": len(contacts),
            "missing": len(missing),
        },
    )
    if missing:
        # Counts only: which citizens are missing is nobody's business in a log.
        logger.warning(
            "sampled citizens without a contact to release",
            extra=log_fields(round_id=event.round_id, kommunekode=event.kommunekode, chunk_no=event.chunk_no, missing=len(missing)),
        )


async def sealed_contacts(session, round_id: str, kommunekode: str, pseudonyms: list[str]) -> dict[str, SealedContact]:
    """The sealed contacts of these citizens in the municipality's current accepted delivery."""
    delivery_id = await session.scalar(accepted_delivery(round_id, kommunekode).with_only_columns(Delivery.id))
    if delivery_id is None:
        return {}
    # One delivery's partition, found by its primary key (pseudonym, delivery_id).
    rows = await session.execute(
        sa.select(Citizen.pseudonym, Citizen.contact_sealed, Citizen.contact_key_id).where(
            Citizen.delivery_id == delivery_id,
            Citizen.pseudonym == sa.any_(sa.literal(pseudonyms, ARRAY(sa.Text))),  # one array parameter
            Citizen.contact_sealed.is_not(None),
        )
    )
    return {
        pseudonym: SealedContact(
            key_id=key_id,
            nonce=base64.b64encode(sealed[:NONCE_BYTES]).decode(),
            ciphertext=base64.b64encode(sealed[NONCE_BYTES:]).decode(),
        )
        for pseudonym, sealed, key_id in rows
    }


HANDLERS = {SampleDrawn: on_sample_drawn}
