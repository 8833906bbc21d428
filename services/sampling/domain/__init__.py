"""Pure domain logic of the sampling service: exclusions → allocation → draw → margins.

No database, Kafka or web code lives here, so every statistical rule can be tested in
isolation. Typical round:

    result = apply_exclusions(units, previous_rounds, ExclusionRules())
    allocation = allocate(result.frame_counts(), AllocationRules())
    allocation = adjust(allocation, operator_overrides)        # optional
    seed = new_seed()                                          # record it with the round
    sample = draw_sample(result.frame(), allocation, seed)
    population_margins = margins(result.eligible)
"""

from .allocation import (
    DEFAULT_RESPONSE_RATES,
    Allocation,
    AllocationError,
    AllocationRules,
    AllocationWarning,
    CapConflict,
    MunicipalityAllocation,
    SizePoint,
    StratumAllocation,
    WarningCode,
    adjust,
    allocate,
    design_weight,
    inclusion_probability,
)
from .draw import (
    MISSING_BAND,
    Margins,
    SampledUnit,
    SampleError,
    check_seed,
    draw_sample,
    margins,
    new_seed,
    unit_key,
)
from .exclusions import UNIT_FLAGS, ExclusionReason, ExclusionResult, ExclusionRules, apply_exclusions, reasons_for
from .strata import MAALGRUPPER, FrameUnit, Kommunekode, Maalgruppe, StratumKey

__all__ = [
    "DEFAULT_RESPONSE_RATES",
    "MAALGRUPPER",
    "MISSING_BAND",
    "UNIT_FLAGS",
    "Allocation",
    "AllocationError",
    "AllocationRules",
    "AllocationWarning",
    "CapConflict",
    "ExclusionReason",
    "ExclusionResult",
    "ExclusionRules",
    "FrameUnit",
    "Kommunekode",
    "Maalgruppe",
    "Margins",
    "MunicipalityAllocation",
    "SampleError",
    "SampledUnit",
    "SizePoint",
    "StratumAllocation",
    "StratumKey",
    "WarningCode",
    "adjust",
    "allocate",
    "apply_exclusions",
    "check_seed",
    "design_weight",
    "draw_sample",
    "inclusion_probability",
    "margins",
    "new_seed",
    "reasons_for",
    "unit_key",
]
