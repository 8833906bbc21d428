"""The round guard: sampling does work only for a round it has a definition of."""

from __future__ import annotations

from services.sampling.domain.readiness import DRAWABLE_PHASES
from services.sampling.models import RoundDefinition
from services.sampling.service.errors import RoundNotDefined, RoundRefused
from shared.bus import UnitOfWork


async def require_round(uow: UnitOfWork, round_id: str, *, drawing: bool = False) -> RoundDefinition:
    """The round's definition; when ``drawing`` (an allocation or a draw), also a phase in which
    it may still be drawn."""
    definition = await uow.session.get(RoundDefinition, round_id)
    if definition is None:
        raise RoundNotDefined(round_id)
    if drawing and definition.phase not in DRAWABLE_PHASES:
        raise RoundRefused(f"round {round_id} is {definition.phase}: it is drawn only while its extracts are collected")
    return definition
