from pydantic import Field

from services.sampling.domain import AllocationRules
from shared.settings import ServiceSettings


class SamplingSettings(ServiceSettings):
    service_name: str = "sampling"
    # Persons per sample.drawn event, and population cells per frame.margins event.
    event_chunk_size: int = 500
    # Default allocation rules for a round (JSON in ALLOCATION_RULES, e.g.
    # '{"min_sample": 800, "response_rates": {"dagpenge": 0.31, ...}}'); a round's preview
    # may override any of them, e.g. with the response rates observed in earlier rounds.
    allocation_rules: AllocationRules = Field(default_factory=AllocationRules)
    # Spare citizens sampled in any of the last N earlier rounds (0 turns the rule off).
    # "Earlier" = a drawn round whose frame has an earlier reference date.
    exclude_sampled_in_last_rounds: int = Field(1, ge=0)
