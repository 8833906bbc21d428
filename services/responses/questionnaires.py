"""Which questionnaire a citizen gets, and the admin side of it (round configuration and local
supplements), on top of the pure domain package.

A questionnaire is named by its ``version_key`` (``kl_core@1+digital_tools@1+lokal_751@2``).
Core and modules are published JSON files shipped with the code; supplements are rows in
``local_supplement``. Both are immutable once published, so a questionnaire built from a key
can be cached for the life of the process: that keeps every page view free of extra queries.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.responses.config import ResponsesSettings
from services.responses.domain import (
    LocalSupplement,
    Questionnaire,
    QuestionnaireError,
    effective_questionnaire,
    load_module,
    load_questionnaire,
)
from services.responses.models import LocalSupplementRow, RoundQuestionnaire

_PART = re.compile(r"^([a-z][a-z0-9_]*)@(\d+)$")
_SUPPLEMENT = re.compile(r"^lokal_(\d{3})$")
_CACHE_SIZE = 512
_cache: OrderedDict[str, Questionnaire] = OrderedDict()
_offered: OrderedDict[tuple, Questionnaire] = OrderedDict()


class SupplementConflict(Exception):
    """That supplement version is already published with different content."""


def _file_name(component_id: str, version: int) -> str:
    return f"{component_id}_v{version}"


def _remember(questionnaire: Questionnaire) -> Questionnaire:
    _cache[questionnaire.version_key] = questionnaire
    _cache.move_to_end(questionnaire.version_key)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return questionnaire


SupplementFetcher = Callable[[str, int], Awaitable[LocalSupplement]]


async def load_supplement(session: AsyncSession, kommunekode: str, version: int) -> LocalSupplement:
    row = await session.get(LocalSupplementRow, (kommunekode, version))
    if row is None:
        raise QuestionnaireError(f"no local supplement {kommunekode} version {version}")
    return LocalSupplement.model_validate(row.definition)


def cached_questionnaire(key: str) -> Questionnaire | None:
    """The questionnaire named by ``key`` if this process has built it already (no I/O)."""
    return _cache.get(key)


async def build_for_key(key: str, fetch_supplement: SupplementFetcher) -> Questionnaire:
    """Rebuild the exact questionnaire named by ``key`` (cached); supplements come from ``fetch_supplement``."""
    if (cached := _cache.get(key)) is not None:
        return cached
    parts = [_PART.match(part) for part in key.split("+")]
    if not parts or any(p is None for p in parts):
        raise QuestionnaireError(f"malformed questionnaire key {key!r}")
    (core_id, core_version), *rest = [(p.group(1), int(p.group(2))) for p in parts]  # type: ignore[union-attr]
    core = load_questionnaire(_file_name(core_id, core_version))
    modules, supplement = [], None
    for component_id, version in rest:
        if m := _SUPPLEMENT.match(component_id):
            supplement = await fetch_supplement(m.group(1), version)
        else:
            modules.append(load_module(_file_name(component_id, version)))
    questionnaire = effective_questionnaire(core, supplement, modules=modules)
    if questionnaire.version_key != key:
        raise QuestionnaireError(f"questionnaire key {key!r} does not name a published combination")
    return _remember(questionnaire)


async def questionnaire_for_key(session: AsyncSession, key: str) -> Questionnaire:
    """Rebuild the exact questionnaire named by ``key`` (cached)."""
    return await build_for_key(key, lambda kommunekode, version: load_supplement(session, kommunekode, version))


async def offered_questionnaire(
    settings: ResponsesSettings,
    config: tuple[str, tuple[str, ...], int | None] | None,
    kommunekode: str,
    fetch_supplement: SupplementFetcher,
) -> Questionnaire:
    """The questionnaire a round configured as ``config`` (core, modules, this municipality's
    supplement version; None: not configured) gives a citizen of ``kommunekode``.

    Cached by those components: core and modules are published files and a supplement version
    is immutable once stored, so the same components always build the same questionnaire. The
    round's configuration itself is read fresh by the caller every time (it may change)."""
    if config is None:
        return load_questionnaire(settings.default_questionnaire)  # lru-cached
    core, modules, supplement_version = config
    cache_key = (core, modules, kommunekode if supplement_version else "", supplement_version)
    if (cached := _offered.get(cache_key)) is not None:
        return cached
    supplement = await fetch_supplement(kommunekode, supplement_version) if supplement_version else None
    questionnaire = effective_questionnaire(load_questionnaire(core), supplement, modules=[load_module(name) for name in modules])
    _offered[cache_key] = questionnaire
    while len(_offered) > _CACHE_SIZE:
        _offered.popitem(last=False)
    return _remember(questionnaire)


async def questionnaire_for_round(
    session: AsyncSession, settings: ResponsesSettings, round_id: str, kommunekode: str
) -> Questionnaire:
    """The questionnaire a citizen of ``kommunekode`` in ``round_id`` is given today."""
    config = await session.get(RoundQuestionnaire, round_id)
    components = None
    if config is not None:
        supplement_version = config.supplements.get(kommunekode)
        components = (config.core, tuple(config.modules), int(supplement_version) if supplement_version else None)
    return await offered_questionnaire(
        settings, components, kommunekode, lambda k, version: load_supplement(session, k, version)
    )


# --- admin ------------------------------------------------------------------------------------


async def publish_supplement(session: AsyncSession, supplement: LocalSupplement) -> bool:
    """Store a supplement version; True if new. Re-publishing identical content is a no-op."""
    existing = await session.get(LocalSupplementRow, (supplement.kommunekode, supplement.version))
    definition = supplement.model_dump(mode="json")
    if existing is not None:
        if LocalSupplement.model_validate(existing.definition) != supplement:
            raise SupplementConflict()
        return False
    # It must combine with the default core (ids namespaced, scales consistent) before it is stored.
    effective_questionnaire(load_questionnaire("kl_core_v1"), supplement)
    session.add(
        LocalSupplementRow(
            kommunekode=supplement.kommunekode,
            version=supplement.version,
            definition=definition,
            created_at=datetime.now(UTC),
        )
    )
    return True


async def configure_round(
    session: AsyncSession, round_id: str, core: str, modules: list[str], supplements: dict[str, int]
) -> RoundQuestionnaire:
    """Set a round's questionnaire. Checked by building every municipality's effective
    questionnaire; citizens who already opened their link keep the version they were given."""
    core_qn = load_questionnaire(core)
    module_qns = [load_module(name) for name in modules]
    effective_questionnaire(core_qn, modules=module_qns)
    for kommunekode, version in supplements.items():
        effective_questionnaire(core_qn, await load_supplement(session, kommunekode, version), modules=module_qns)
    config = await session.get(RoundQuestionnaire, round_id)
    if config is None:
        config = RoundQuestionnaire(round_id=round_id)
        session.add(config)
    config.core, config.modules, config.supplements = core, list(modules), dict(supplements)
    config.updated_at = datetime.now(UTC)
    return config
