"""Exclusions applied to the population extract before allocation and draw.

Exclusion must happen *before* the allocation: N_h is the count of citizens who can be
drawn, so π = n_h / N_h stays true and the weights add up to the eligible population.
Every excluded citizen is counted under a reason so the operator can report it.

This module is the eligibility rule. Sampling's SQL (the frame counts, the draw's frame and the
duplicate check, ``services.sampling.service.frame``) is generated from ``UNIT_FLAGS`` and the
reasons' order here, and the integration tests check the counts it gives against
``apply_exclusions``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .strata import FrameUnit, StratumKey


class ExclusionReason(StrEnum):
    # Order = precedence: a citizen excluded for several reasons is counted once, under
    # the first that applies (legal protection first, then register status, then policy).
    FORSKERBESKYTTET = "forskerbeskyttet"  # protected from research/survey contact (CPR)
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    RECENTLY_SAMPLED = "recently_sampled"


# The reasons a unit carries as a flag (``FrameUnit``'s field, and the column of the same name in
# sampling's frame_unit and frame_cell tables), in precedence order. RECENTLY_SAMPLED is the one
# reason that is not the unit's own: it comes from earlier rounds' samples.
UNIT_FLAGS: dict[ExclusionReason, str] = {
    ExclusionReason.FORSKERBESKYTTET: "forskerbeskyttet",
    ExclusionReason.DECEASED: "deceased",
    ExclusionReason.EMIGRATED: "emigrated",
}


def reasons_for(flags: Mapping[ExclusionReason, bool]) -> list[ExclusionReason]:
    """The reasons that apply, in precedence order (the first is the one a unit is counted under);
    none: the unit is eligible. ``flags`` says for every reason whether it applies."""
    return [reason for reason in ExclusionReason if flags[reason]]


class ExclusionRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Spare citizens who were sampled in any of the last N rounds (0 = no such rule),
    # so the same people are not asked round after round.
    recent_rounds: int = Field(1, ge=0)


@dataclass(frozen=True)
class ExclusionResult:
    eligible: tuple[FrameUnit, ...]
    excluded: tuple[tuple[FrameUnit, ExclusionReason], ...]  # with the counted reason
    # Each excluded citizen once, under the first reason in precedence order;
    # sums to len(excluded).
    counts: dict[ExclusionReason, int]
    # Every reason that applied (a citizen can appear under several); for reporting
    # e.g. how many forskerbeskyttede there were regardless of other reasons.
    flag_counts: dict[ExclusionReason, int]
    counts_by_stratum: dict[StratumKey, dict[ExclusionReason, int]]

    def frame(self) -> list[tuple[str, StratumKey]]:
        """The eligible units in the shape draw_sample takes."""
        return [(u.unit_id, (u.kommunekode, u.maalgruppe)) for u in self.eligible]

    def frame_counts(self) -> dict[StratumKey, int]:
        """N_h per stratum of the eligible units, the input of allocate()."""
        return dict(sorted(Counter((u.kommunekode, u.maalgruppe) for u in self.eligible).items()))


def apply_exclusions(
    units: Iterable[FrameUnit],
    previous_rounds: Sequence[Set[str]] = (),
    rules: ExclusionRules | None = None,
) -> ExclusionResult:
    """Split the extract into eligible and excluded units.

    `previous_rounds` are the sets of pseudonyms sampled in earlier rounds, newest
    first; only the first `rules.recent_rounds` of them count.
    """
    rules = rules or ExclusionRules()
    if isinstance(previous_rounds, (Set, str)):
        # A bare set would make "the last N rounds" meaningless; fail loudly instead.
        raise TypeError("previous_rounds must be a sequence of per-round sets, newest first")
    recent: set[str] = set().union(*previous_rounds[: rules.recent_rounds])
    eligible: list[FrameUnit] = []
    excluded: list[tuple[FrameUnit, ExclusionReason]] = []
    counts: Counter[ExclusionReason] = Counter()
    flags: Counter[ExclusionReason] = Counter()
    by_stratum: dict[StratumKey, Counter[ExclusionReason]] = {}
    for unit in units:
        reasons = _reasons(unit, recent)
        if not reasons:
            eligible.append(unit)
            continue
        excluded.append((unit, reasons[0]))
        counts[reasons[0]] += 1
        flags.update(reasons)
        by_stratum.setdefault(unit.stratum, Counter())[reasons[0]] += 1
    order = list(ExclusionReason)
    return ExclusionResult(
        eligible=tuple(eligible),
        excluded=tuple(excluded),
        counts={r: counts[r] for r in order},
        flag_counts={r: flags[r] for r in order},
        counts_by_stratum={
            k: dict(sorted(c.items(), key=lambda kv: order.index(kv[0])))
            for k, c in sorted(by_stratum.items())
        },
    )


def _reasons(unit: FrameUnit, recent: set[str]) -> list[ExclusionReason]:
    flags = {reason: getattr(unit, flag) for reason, flag in UNIT_FLAGS.items()}
    return reasons_for({**flags, ExclusionReason.RECENTLY_SAMPLED: unit.unit_id in recent})
