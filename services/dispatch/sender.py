"""The sender: delivers due steps through their channel, exactly once in effect.

Each due step is locked (``FOR UPDATE SKIP LOCKED``, so replicas share the work), sent with an
idempotency key made of what the message is (invitation and step), and marked sent together
with its ``invitation.sent`` event in the same transaction. A crash after the channel accepted
but before the commit re-sends with the same key, which the channel deduplicates.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from services.dispatch.channels.base import Channel, MessageKind, OutgoingMessage
from services.dispatch.config import DispatchSettings
from services.dispatch.links import link_token
from services.dispatch.models import DispatchStep, Invitation
from shared.crypto import SealedContact, open_contact
from shared.events import InvitationSent
from shared.observability import log_fields
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)


def compose(settings: DispatchSettings, invitation: Invitation, step: DispatchStep) -> OutgoingMessage:
    contact = open_contact(
        SealedContact.model_validate(invitation.contact),
        round_id=invitation.round_id,
        pseudonym=invitation.pseudonym,
        keyring=settings.contact_keyring,
    )
    link = settings.survey_base_url + link_token(settings.link_key_bytes, invitation.token_nonce)
    greeting = f"Kære {contact.name}" if contact.name else "Kære borger"
    return OutgoingMessage(
        idempotency_key=f"{invitation.id}.{step.step}",
        kind=MessageKind.SMS,
        address=contact.phone_e164 or "",
        text=f"{greeting}\n\nDin kommune vil gerne høre om dine oplevelser med jobcentret.\n{link}\n",
    )


async def send_due(runtime: ServiceRuntime, settings: DispatchSettings, channel: Channel) -> int:
    """Send one batch of due steps; returns how many were handled."""
    now = datetime.now(UTC)
    async with runtime.uow() as uow:
        due = (
            await uow.session.execute(
                sa.select(DispatchStep, Invitation)
                .join(Invitation, Invitation.id == DispatchStep.invitation_id)
                .where(DispatchStep.status == "planned", DispatchStep.due_at <= now, Invitation.status == "active")
                .order_by(DispatchStep.due_at)
                .limit(settings.sender_batch_size)
                # Locking the invitation too means an answer arriving now waits for us or wins.
                .with_for_update(skip_locked=True)
            )
        ).all()
        for step, invitation in due:
            result = await channel.send(compose(settings, invitation, step))
            step.attempts += 1
            if result.ok:
                step.status, step.sent_at, step.provider_reference = "sent", now, result.provider_reference
                uow.publish(
                    InvitationSent(
                        round_id=invitation.round_id,
                        kommunekode=invitation.kommunekode,
                        pseudonym=invitation.pseudonym,
                        step=step.step,
                        channel=step.channel,
                        maalgruppe=invitation.maalgruppe,
                        stratum=invitation.stratum,
                        arm=invitation.arm,
                        sent_at=now,
                    )
                )
            elif result.status.value == "permanent_failure" or step.attempts >= 5:
                step.status = "failed"
                logger.warning("send failed permanently", extra=log_fields(invitation=str(invitation.id), step=step.step, error=result.error))
        await uow.commit()
    return len(due)


def sender_worker(settings: DispatchSettings, channel: Channel):
    async def run(runtime: ServiceRuntime) -> None:
        while True:
            handled = await send_due(runtime, settings, channel)
            if handled < settings.sender_batch_size:
                await asyncio.sleep(settings.sender_interval_seconds)

    return run
