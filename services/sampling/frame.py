"""What sampling keeps about a delivery when it becomes the active frame, so that no preview or
draw has to scan the frame's units to count them.

When a delivery is activated (handlers._activate), in its transaction:

* ``frame_cell``: its units counted by (target group, bands, exclusion flags) — ~200 rows for a
  municipality of 5,000. Population, eligible N_h, exclusions per reason and the margins of a
  round are sums of these (service.frame.scan_draw_frame) plus, when earlier draws exclude citizens, a
  count of the round's units those draws sampled.
* ``frame_duplicate``: its units whose pseudonym is in another active delivery of the round (a
  citizen delivered by two municipalities). Activations of one round take a transaction-scoped
  advisory lock, so they run one after the other and each sees every delivery activated before
  it: of two deliveries sharing a citizen, the later one records the citizen. The draw re-checks
  the candidates against the active frame (usually there are none), so rows whose twin has been
  replaced since, or erased, do no harm.

Every change to a delivery's units after activation goes through ``refresh`` (erasure) or
removes its cells with the units (round purge), so the cells always count the units there are.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa

SCHEMA = "sampling"
# First key of the two-key advisory lock that serialises a round's activations (the second is
# hashtext(round_id)): "sampling frame" in a 31-bit constant, so no other lock shares it.
ROUND_LOCK_CLASS = 0x53465201

_LOCK = sa.text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:round_id))")
_DELETE = [
    sa.text(f"DELETE FROM {SCHEMA}.frame_cell WHERE delivery_id = :delivery_id"),
    sa.text(f"DELETE FROM {SCHEMA}.frame_duplicate WHERE delivery_id = :delivery_id"),
]
_CELLS = sa.text(
    f"""
    INSERT INTO {SCHEMA}.frame_cell (delivery_id, maalgruppe, gender, age_band, duration_band,
                                     forskerbeskyttet, deceased, emigrated, n)
    SELECT delivery_id, maalgruppe, gender, age_band, duration_band, forskerbeskyttet, deceased, emigrated, count(*)
    FROM {SCHEMA}.frame_unit
    WHERE delivery_id = :delivery_id
      AND EXISTS (SELECT 1 FROM {SCHEMA}.frame_delivery WHERE delivery_id = :delivery_id AND active)
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """
)
# Index probes by pseudonym (ix_frame_unit_pseudonym): a delivery's few thousand units, not the
# round's frame.
_DUPLICATES = sa.text(
    f"""
    INSERT INTO {SCHEMA}.frame_duplicate (delivery_id, pseudonym)
    SELECT fu.delivery_id, fu.pseudonym FROM {SCHEMA}.frame_unit fu
    WHERE fu.delivery_id = :delivery_id AND EXISTS (
        SELECT 1 FROM {SCHEMA}.frame_unit o JOIN {SCHEMA}.frame_delivery od ON od.delivery_id = o.delivery_id
        WHERE o.pseudonym = fu.pseudonym AND o.delivery_id <> fu.delivery_id AND od.round_id = :round_id AND od.active
    )
    """
)


async def lock_round(executor, round_id: str) -> None:
    """Serialise with every other activation of the round until this transaction ends."""
    await executor.execute(_LOCK, {"lock_class": ROUND_LOCK_CLASS, "round_id": round_id})


async def record_activation(executor, delivery_id: uuid.UUID, round_id: str) -> None:
    """Count the (now active) delivery into frame_cell and record its duplicate candidates.
    `executor`: an AsyncSession or AsyncConnection inside the activating transaction, which
    must hold ``lock_round`` and have made the delivery active (and dropped the ones it
    replaces) already. Idempotent: a delivery activated again is counted afresh."""
    params = {"delivery_id": delivery_id, "round_id": round_id}
    for statement in _DELETE:
        await executor.execute(statement, params)
    await executor.execute(_CELLS, params)
    await executor.execute(_DUPLICATES, params)


async def refresh(executor, delivery_ids: Iterable[uuid.UUID]) -> None:
    """Recount deliveries whose units changed after activation (erasure). Their duplicate
    candidates stay: fewer units cannot make new duplicates, and stale candidates are re-checked."""
    for delivery_id in sorted(set(delivery_ids)):
        params = {"delivery_id": delivery_id}
        await executor.execute(_DELETE[0], params)
        await executor.execute(_CELLS, params)
