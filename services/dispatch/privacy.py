"""What retention and erasure mean in dispatch (the plumbing is shared.privacy).

Dispatch holds the most sensitive copies: sealed contact details (on invitations, and released
ahead of their invitation in ``released_contact``), the nonce a survey link is derived from, the
link's hash and the pseudonym behind it, and (development sink) the letters as sent. A purged
round keeps only what its reports need, the steps' statuses and timestamps, with the invitation
anonymised; steps not yet sent (planned, or waiting for a contact) are cancelled, and the
round's released contacts are deleted. An erased citizen's invitation, steps and released
contacts are deleted. Both leave a tombstone (shared.privacy): a sample chunk or a contact
release arriving later plans or keeps nothing of that round or citizen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from services.dispatch.config import DispatchSettings
from services.dispatch.domain.lifecycle import UNSENT, StepStatus
from services.dispatch.models import AUDIT, TOMBSTONES, DispatchStep, Invitation, ReleasedContactRow
from shared.bus import UnitOfWork
from shared.privacy import PrivacyRules, rows_with_pseudonyms

ANONYMOUS = "anon-"
_PURGED_TOKEN = "purged-"


def _remove_sink_files(sink_dir: Path, references: Sequence[str | None]) -> int:
    """Delete the development sink's copies (provider_reference is the file's path there)."""
    removed = 0
    root = sink_dir.resolve()
    for reference in references:
        if not reference:
            continue
        path = Path(reference).resolve()
        if root not in path.parents:  # a real provider's reference, not a file of ours
            continue
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def privacy_rules(settings: DispatchSettings) -> PrivacyRules:
    sink_dir = Path(settings.dev_sink_dir)

    def round_invitations(round_id: str):
        return sa.select(Invitation.id).where(Invitation.round_id == round_id)

    async def purge_round(uow: UnitOfWork, round_id: str) -> dict[str, int]:
        references = list(
            await uow.session.scalars(
                sa.select(DispatchStep.provider_reference).where(
                    DispatchStep.invitation_id.in_(round_invitations(round_id)), DispatchStep.provider_reference.is_not(None)
                )
            )
        )
        files = _remove_sink_files(sink_dir, references)
        cancelled = await uow.session.execute(
            sa.update(DispatchStep)
            .where(DispatchStep.invitation_id.in_(round_invitations(round_id)),
                   DispatchStep.status.in_(UNSENT))
            .values(status=StepStatus.SKIPPED, skip_reason="round_purged")
        )
        released = await uow.session.execute(sa.delete(ReleasedContactRow).where(ReleasedContactRow.round_id == round_id))
        await uow.session.execute(
            sa.update(DispatchStep)
            .where(DispatchStep.invitation_id.in_(round_invitations(round_id)))
            .values(provider_reference=None, last_error=None)
        )
        invitations = await uow.session.execute(
            sa.update(Invitation)
            .where(Invitation.round_id == round_id, ~Invitation.pseudonym.startswith(ANONYMOUS))
            .values(
                pseudonym=sa.literal(ANONYMOUS) + sa.cast(sa.func.gen_random_uuid(), sa.Text),
                token_hash=sa.literal(_PURGED_TOKEN) + sa.cast(sa.func.gen_random_uuid(), sa.Text),
                token_nonce=b"",
                contact={},
            )
        )
        return {"invitation": invitations.rowcount, "steps_cancelled": cancelled.rowcount,
                "released_contact": released.rowcount, "sink_files": files}

    async def identifiers_left_in_round(uow: UnitOfWork, round_id: str) -> int:
        released = await uow.session.scalar(
            sa.select(sa.func.count()).select_from(ReleasedContactRow).where(ReleasedContactRow.round_id == round_id)
        )
        return released + await uow.session.scalar(
            sa.select(sa.func.count())
            .select_from(Invitation)
            .where(
                Invitation.round_id == round_id,
                sa.or_(
                    ~Invitation.pseudonym.startswith(ANONYMOUS),
                    ~Invitation.token_hash.startswith(_PURGED_TOKEN),
                    sa.func.length(Invitation.token_nonce) > 0,
                    # NULL: no contact was ever released to this invitation, nothing to remove.
                    Invitation.contact != sa.cast(sa.literal("{}"), Invitation.contact.type),
                ),
            )
        )

    async def erase_citizens(uow: UnitOfWork, pseudonyms: Sequence[str]) -> dict[str, int]:
        ids = sa.select(Invitation.id).where(Invitation.pseudonym.in_(pseudonyms))
        references = list(
            await uow.session.scalars(sa.select(DispatchStep.provider_reference).where(DispatchStep.invitation_id.in_(ids)))
        )
        files = _remove_sink_files(sink_dir, references)
        steps = await uow.session.execute(sa.delete(DispatchStep).where(DispatchStep.invitation_id.in_(ids)))
        invitations = await uow.session.execute(sa.delete(Invitation).where(Invitation.pseudonym.in_(pseudonyms)))
        released = await uow.session.execute(sa.delete(ReleasedContactRow).where(ReleasedContactRow.pseudonym.in_(pseudonyms)))
        return {"invitation": invitations.rowcount, "dispatch_step": steps.rowcount,
                "released_contact": released.rowcount, "sink_files": files}

    return PrivacyRules(
        service="dispatch",
        purge_round=purge_round,
        identifiers_left_in_round=identifiers_left_in_round,
        erase_citizens=erase_citizens,
        rows_left_for_citizens=rows_with_pseudonyms(Invitation, ReleasedContactRow),
        audit_table=AUDIT,
        tombstones=TOMBSTONES,  # a late sample chunk or contact release plans or keeps nothing of them
    )
