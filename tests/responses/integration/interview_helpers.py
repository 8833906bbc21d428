"""Helpers for the interview tests: links with phone numbers released as dispatch releases them
(interview.phones_released, sealed under the interview key), and reading the interview rows."""

from __future__ import annotations

import asyncio
import re

import sqlalchemy as sa

from responses_helpers import issue, link_issued, produce, token_hash
from services.responses.models import AUDIT, InterviewRow, Respondent, Response
from shared.crypto import seal_phone
from shared.events import InterviewPhonesReleased, ReleasedPhone
from shared.settings import parse_keyring

INTERVIEW_ID = re.compile(r"/calls/([0-9a-f-]{36})/answers")
PHONE = re.compile(r'id="phone">([^<]+)<')


def pseudonym(token: str) -> str:
    return link_issued(token).pseudonym


async def issue_with_phones(app, env, n: int, *, round_id: str, kommunekode: str = "751",
                            phones: list[str] | None = None) -> list[str]:
    """``n`` links of the round, each citizen with a phone number released for interviews."""
    bootstrap, prefix = env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_PREFIX"]
    tokens = await issue(app, bootstrap, prefix, n, round_id=round_id, kommunekode=kommunekode)
    phones = phones or [f"+4520{i:06d}" for i in range(n)]
    key_id = env["INTERVIEW_ACTIVE_KEY_ID"]
    key = parse_keyring(env["INTERVIEW_KEYS"])[key_id]
    released = [
        ReleasedPhone(pseudonym=pseudonym(t), phone=seal_phone(p, round_id=round_id, pseudonym=pseudonym(t), key_id=key_id, key=key))
        for t, p in zip(tokens, phones, strict=True)
    ]
    await produce(bootstrap, prefix, [InterviewPhonesReleased(round_id=round_id, kommunekode=kommunekode, phones=released)])
    async with asyncio.timeout(60):
        while await interview_count(app, round_id) < len(tokens):
            await asyncio.sleep(0.1)
    return tokens


async def interview_count(app, round_id: str) -> int:
    async with app.state.runtime.sessionmaker() as session:
        return await session.scalar(sa.select(sa.func.count()).select_from(InterviewRow).where(InterviewRow.round_id == round_id))


async def interview_of(app, token: str) -> InterviewRow:
    async with app.state.runtime.sessionmaker() as session:
        return (await session.execute(sa.select(InterviewRow).where(InterviewRow.pseudonym == pseudonym(token)))).scalar_one()


async def responses_of(app, token: str) -> list[Response]:
    async with app.state.runtime.sessionmaker() as session:
        return list((await session.execute(sa.select(Response).where(Response.token_hash == token_hash(token)))).scalars())


async def link_status(app, token: str) -> str:
    async with app.state.runtime.sessionmaker() as session:
        return await session.scalar(sa.select(Respondent.status).where(Respondent.token_hash == token_hash(token)))


async def phone_views(app, interview_id: str) -> list[dict]:
    async with app.state.runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.select(AUDIT).where(AUDIT.c.kind == "phone-number-view", AUDIT.c.resource["interview_id"].astext == interview_id)
        )
        return [dict(r._mapping) for r in rows]


async def audit_rows(app) -> list[dict]:
    async with app.state.runtime.sessionmaker() as session:
        return [dict(r._mapping) for r in await session.execute(sa.select(AUDIT))]
