"""When a round's survey is closed (pure): the end of fieldwork.

Responses follows the round's definition (round.defined, owned by ingest). Fieldwork is over when
the round's phase is ``fieldwork_ended``, ``closed`` or ``purged``, or its ``fieldwork_ends_at``
has passed (the date alone closes, without waiting for ingest to move the phase). Then no answer,
draft save or opt-out is taken in; what a citizen saved as a draft stays stored (until the
round's retention purge), it just cannot be sent in.

A round responses has no definition of is open: links arrive on link.issued and the definition
on another topic, so a link may well be known before its round is, and only a known, ended
round closes. ``closed_sql`` is the same rule for the statements that must decide atomically
(the submit), generated from the same constants.
"""

from __future__ import annotations

from shared.events import FIELDWORK_OVER_PHASES as ENDED_PHASES
from shared.events import fieldwork_over

__all__ = ["ENDED_PHASES", "closed_sql", "fieldwork_over"]


def closed_sql(alias: str, now: str) -> str:
    """``fieldwork_over`` as an SQL condition on a ``round_state`` row ``alias`` at the instant
    ``now`` (an SQL expression)."""
    phases = ", ".join(f"'{phase}'" for phase in ENDED_PHASES)
    return f"({alias}.phase IN ({phases}) OR {alias}.fieldwork_ends_at <= {now})"
