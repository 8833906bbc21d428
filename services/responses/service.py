"""Responses' service functions: look up a link, spend it atomically with the answers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa

from services.responses.config import ResponsesSettings
from services.responses.models import Respondent, Response
from shared.bus import UnitOfWork
from shared.events import Bands, ResponseOptedOut, ResponseSubmitted


class UnknownLink(Exception):
    pass


class LinkUsed(Exception):
    pass


class LinkExpired(Exception):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_link(uow: UnitOfWork, token: str) -> Respondent:
    respondent = await uow.session.get(Respondent, hash_token(token))
    if respondent is None:
        raise UnknownLink()
    if respondent.status != "open":
        raise LinkUsed(respondent.status)
    if respondent.expires_at <= datetime.now(UTC):
        raise LinkExpired()
    return respondent


async def _spend(uow: UnitOfWork, token: str, new_status: str) -> Respondent:
    """Spend the link: the conditional UPDATE is the one place that decides, so a double click
    or a second tab cannot submit twice."""
    now = datetime.now(UTC)
    spent = (
        await uow.session.execute(
            sa.update(Respondent)
            .where(Respondent.token_hash == hash_token(token), Respondent.status == "open", Respondent.expires_at > now)
            .values(status=new_status, finished_at=now, draft={})
            .returning(Respondent)
        )
    ).scalar_one_or_none()
    if spent is None:
        await open_link(uow, token)  # raises the precise reason
        raise LinkUsed("open")  # raced with another submit
    return spent


async def submit(uow: UnitOfWork, settings: ResponsesSettings, token: str, answers: dict, mode: str = "web") -> Respondent:
    respondent = await _spend(uow, token, "submitted")
    now = datetime.now(UTC)
    uow.session.add(
        Response(
            token_hash=respondent.token_hash,
            questionnaire_id=settings.questionnaire_id,
            questionnaire_version=settings.questionnaire_version,
            mode=mode,
            answers=answers,
            submitted_at=now,
        )
    )
    uow.publish(
        ResponseSubmitted(
            round_id=respondent.round_id,
            kommunekode=respondent.kommunekode,
            pseudonym=respondent.pseudonym,
            questionnaire_id=settings.questionnaire_id,
            questionnaire_version=settings.questionnaire_version,
            mode=mode,
            maalgruppe=respondent.maalgruppe,
            stratum=respondent.stratum,
            bands=Bands(gender=respondent.gender, age_band=respondent.age_band, duration_band=respondent.duration_band),
            design_weight=respondent.design_weight,
            arm=respondent.arm,
            answers=answers,
            submitted_at=now,
        )
    )
    await uow.commit()
    return respondent


async def opt_out(uow: UnitOfWork, token: str) -> Respondent:
    respondent = await _spend(uow, token, "opted_out")
    uow.publish(
        ResponseOptedOut(
            round_id=respondent.round_id,
            kommunekode=respondent.kommunekode,
            pseudonym=respondent.pseudonym,
            stratum=respondent.stratum,
            opted_out_at=datetime.now(UTC),
        )
    )
    await uow.commit()
    return respondent
