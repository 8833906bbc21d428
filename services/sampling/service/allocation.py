"""The allocation of a round: previewed from rules, adjusted by the operator's overrides,
confirmed, and stored with the frame counts it was computed from."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import sqlalchemy as sa
from pydantic import ValidationError

from services.sampling.config import SamplingSettings
from services.sampling.domain import Allocation, AllocationError, AllocationRules, StratumKey, adjust, allocate
from services.sampling.models import AUDIT, Draw, RoundAllocation
from services.sampling.schemas import AllocationRequest, AllocationView, OverridesRequest, RulesOverride
from services.sampling.service.errors import DrawExists, EmptyFrame, InvalidAllocation, NoAllocation, StaleAllocation
from services.sampling.service.frame import FrameCounts, count_frame, parse_stratum, recent_draw_ids, round_reference_date, stratum_key
from services.sampling.service.rounds import require_round
from services.sampling.service.views import allocation_table, sampling_progress
from shared.audit import record
from shared.bus import UnitOfWork
from shared.events import SamplingProgress


def merge_rules(base: AllocationRules, override: RulesOverride) -> AllocationRules:
    """The service's default rules with a round's changes; response rates merge per group, so
    observed rates can be given for just the groups that have them."""
    values = base.model_dump()
    changes = override.model_dump(exclude_none=True)
    # A maximum the operator gives is a cap (it wins over the answer minimums), unless they say not.
    if "max_sample" in changes:
        changes.setdefault("max_sample_is_cap", True)
    if rates := changes.pop("response_rates", None):
        values["response_rates"] = {**values["response_rates"], **rates}
    values.update(changes)
    try:
        return AllocationRules.model_validate(values)
    except ValidationError as exc:
        raise InvalidAllocation(str(exc)) from None


def compute_allocation(
    counts: FrameCounts, rules: AllocationRules, overrides: Mapping[StratumKey, int] = {}
) -> Allocation:
    try:
        allocation = allocate(counts.eligible, rules)
        return adjust(allocation, overrides) if overrides else allocation
    except AllocationError as exc:
        raise InvalidAllocation(str(exc)) from None


def progress_of(stored: RoundAllocation, view: AllocationView) -> SamplingProgress:
    """sampling.progress for a stored allocation, from the view just computed of it."""
    return sampling_progress(
        stored.round_id, stored.status, {"municipalities": [m.model_dump(mode="json") for m in view.municipalities]},
        FrameCounts.from_json(stored.frame_counts), view.rules,
    )


def stored_overrides(stored: RoundAllocation) -> dict[StratumKey, int]:
    return {parse_stratum(k): n for k, n in stored.overrides.items()}


def allocation_view(stored: RoundAllocation) -> AllocationView:
    counts = FrameCounts.from_json(stored.frame_counts)
    rules = AllocationRules.model_validate(stored.rules)
    allocation = compute_allocation(counts, rules, stored_overrides(stored))
    decisions = {d["kommunekode"]: {"decided_by": d["decided_by"], "decided_at": d["decided_at"]} for d in stored.cap_decisions or []}
    return AllocationView(
        round_id=stored.round_id,
        status=stored.status,
        rules=rules,
        recent_rounds=stored.recent_rounds,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
        confirmed_by=stored.confirmed_by,
        **allocation_table(allocation, counts, decisions),
    )


async def ensure_not_drawn(uow: UnitOfWork, round_id: str) -> None:
    if await uow.session.scalar(sa.select(Draw.id).where(Draw.round_id == round_id)):
        raise DrawExists(round_id)


async def preview_allocation(
    uow: UnitOfWork, settings: SamplingSettings, round_id: str, request: AllocationRequest, actor: str
) -> AllocationView:
    """Compute and store the round's proposed allocation from rules (operator overrides of an
    earlier proposal are dropped: new rules, new starting point)."""
    await require_round(uow, round_id, drawing=True)
    await ensure_not_drawn(uow, round_id)
    rules = merge_rules(settings.allocation_rules, request.rules)
    recent_rounds = request.recent_rounds if request.recent_rounds is not None else settings.exclude_sampled_in_last_rounds
    reference_date = await round_reference_date(uow, round_id)
    counts = await count_frame(uow, round_id, await recent_draw_ids(uow, round_id, reference_date, recent_rounds))
    if not counts.population:
        raise EmptyFrame(round_id)
    allocation = compute_allocation(counts, rules)  # validates (e.g. a group without a response rate)
    stored = await uow.session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is None:
        stored = RoundAllocation(round_id=round_id)
        uow.session.add(stored)
    stored.rules = rules.model_dump(mode="json")
    stored.recent_rounds = recent_rounds
    stored.overrides = {}
    stored.frame_counts = counts.to_json()
    # Where the operator's cap wins over an answer rule: recorded, who and when, and audited.
    now = datetime.now(UTC)
    stored.cap_decisions = [
        {"kommunekode": kode, **m.cap_conflict.to_json(), "decided_by": actor, "decided_at": now.isoformat()}
        for kode, m in allocation.municipalities.items()
        if m.cap_conflict is not None
    ]
    if stored.cap_decisions:
        await record(
            uow.session, AUDIT, actor=actor, action="allocation.capped", kind="round",
            resource={"round_id": round_id, "cap_decisions": stored.cap_decisions},
        )
    return await _save_as_proposed(uow, stored, actor)


async def _save_as_proposed(uow: UnitOfWork, stored: RoundAllocation, actor: str) -> AllocationView:
    """Any change puts the allocation back to "proposed": it must be confirmed again."""
    stored.status = "proposed"
    stored.updated_by = actor
    stored.updated_at = datetime.now(UTC)
    stored.confirmed_by = None
    stored.confirmed_at = None
    await uow.session.flush()
    view = allocation_view(stored)
    uow.publish(progress_of(stored, view))
    await uow.commit()
    return view


async def get_allocation(uow: UnitOfWork, round_id: str) -> AllocationView:
    stored = await uow.session.get(RoundAllocation, round_id)
    if stored is None:
        raise NoAllocation(round_id)
    return allocation_view(stored)


async def set_overrides(uow: UnitOfWork, round_id: str, request: OverridesRequest, actor: str, *, replace_all: bool) -> AllocationView:
    """Operator overrides of n_h: PATCH merges them (sample null drops one), PUT replaces them
    all. The allocation is re-validated and goes back to "proposed" until confirmed again."""
    await ensure_not_drawn(uow, round_id)
    stored = await uow.session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is None:
        raise NoAllocation(round_id)
    overrides = {} if replace_all else dict(stored.overrides)
    for o in request.overrides:
        key = stratum_key(o.kommunekode, o.maalgruppe)
        if o.sample is None:
            overrides.pop(key, None)
        else:
            overrides[key] = o.sample
    stored.overrides = overrides
    compute_allocation(FrameCounts.from_json(stored.frame_counts), AllocationRules.model_validate(stored.rules), stored_overrides(stored))
    return await _save_as_proposed(uow, stored, actor)


async def confirm_allocation(uow: UnitOfWork, round_id: str, actor: str) -> AllocationView:
    await ensure_not_drawn(uow, round_id)
    stored = await uow.session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is None:
        raise NoAllocation(round_id)
    reference_date = await round_reference_date(uow, round_id)
    current = await count_frame(uow, round_id, await recent_draw_ids(uow, round_id, reference_date, stored.recent_rounds))
    if current.eligible != FrameCounts.from_json(stored.frame_counts).eligible:
        raise StaleAllocation(round_id)
    stored.status = "confirmed"
    stored.confirmed_by = actor
    stored.confirmed_at = datetime.now(UTC)
    await uow.session.flush()
    view = allocation_view(stored)
    uow.publish(progress_of(stored, view))
    await uow.commit()
    return view
