"""The round's questionnaire administration as service functions (each takes the unit of work and
commits): a municipality's local supplement, a round's questionnaire, and what a round is set to.
The rules are in questionnaires.py and the domain package."""

from __future__ import annotations

from services.responses import printed, questionnaires
from services.responses.config import ResponsesSettings
from services.responses.domain import LocalSupplement
from services.responses.models import RoundQuestionnaire
from services.responses.schemas import RoundQuestionnaireOut
from shared.bus import UnitOfWork


async def publish_supplement(uow: UnitOfWork, supplement: LocalSupplement) -> bool:
    """Publish a supplement version; True if new (publishing identical content again: False)."""
    created = await questionnaires.publish_supplement(uow.session, supplement)
    await uow.commit()
    return created


async def configure_round(
    uow: UnitOfWork, settings: ResponsesSettings, round_id: str, core: str, modules: list[str], supplements: dict[str, int]
) -> RoundQuestionnaireOut:
    """Set the round's questionnaire and send what it offers for print (dispatch prints from it)."""
    await questionnaires.configure_round(uow.session, round_id, core, modules, supplements)
    await printed.publish_offered(uow, settings, round_id)
    await uow.commit()
    return await round_questionnaire(uow, settings, round_id)


async def round_questionnaire(uow: UnitOfWork, settings: ResponsesSettings, round_id: str) -> RoundQuestionnaireOut:
    """The round's questionnaire (the default core when none is set) and the version key each
    municipality's citizens get."""
    config = await uow.session.get(RoundQuestionnaire, round_id)
    supplements = config.supplements if config else {}
    keys = {
        name: (await questionnaires.questionnaire_for_round(uow.session, settings, round_id, kommunekode)).version_key
        for name, kommunekode in [("default", ""), *((k, k) for k in supplements)]
    }
    return RoundQuestionnaireOut(
        round_id=round_id,
        core=config.core if config else settings.default_questionnaire,
        modules=config.modules if config else [],
        supplements=supplements,
        version_keys=keys,
    )
