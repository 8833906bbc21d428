"""The overview's service functions: read the round's snapshots (and analytics' own invited and
answered facts) and assemble the figures (domain)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from services.analytics.domain.suppression import SUPPRESSION_THRESHOLD
from services.analytics.models import Invited, ResponseFact, SampleChunk
from services.analytics.overview import domain
from services.analytics.overview.models import OverviewDelivery, OverviewRound, OverviewSnapshot
from services.analytics.overview.schemas import Figures, RoundOverview
from shared.bus import UnitOfWork


OPERATOR_SCOPES = ("rounds:admin", "kommuner:all")  # KL's operator: every municipality of the round


def may_see(principal) -> bool:
    """The overview spans every municipality of a round: KL's operator only."""
    return all(scope in principal.scopes for scope in OPERATOR_SCOPES)


class RoundUnknown(Exception):
    """Nothing of the round has reached analytics."""


async def list_rounds(uow: UnitOfWork) -> list[tuple[str, str, str]]:
    """(round_id, name, phase) of every round analytics has a definition of, newest first."""
    rows = await uow.session.execute(
        sa.select(OverviewRound.round_id, OverviewRound.definition["name"].astext, OverviewRound.phase)
        .order_by(OverviewRound.received_at.desc(), OverviewRound.round_id)
    )
    return [tuple(row) for row in rows.all()]


async def sampled_and_answered(uow: UnitOfWork, round_id: str, version: int | None = None) -> tuple[list[tuple], list[tuple]]:
    """Who could have answered against who did, for the response rates by band and the
    R-indicator (domain.representativeness): the sampled (sample.drawn's persons, counted per
    chunk) as (kommunekode, maalgruppe, gender, age_band, duration_band, design weight, citizens),
    and the answers as (kommunekode, maalgruppe, gender, age_band, duration_band, citizens);
    ``version``: only the answers counted up to that round version (a release's)."""
    sampled = [
        (k, *cell)
        for k, cells in (await uow.session.execute(
            sa.select(SampleChunk.kommunekode, SampleChunk.cells).where(SampleChunk.round_id == round_id)
        )).all()
        for cell in cells
    ]
    f_ = ResponseFact
    query = sa.select(f_.kommunekode, f_.maalgruppe, f_.gender, f_.age_band, f_.duration_band, sa.func.count()).where(f_.round_id == round_id)
    if version is not None:
        query = query.where(f_.version <= version)
    answered = [tuple(row) for row in (await uow.session.execute(
        query.group_by(f_.kommunekode, f_.maalgruppe, f_.gender, f_.age_band, f_.duration_band)
    )).all()]
    return sampled, answered


async def round_overview(uow: UnitOfWork, round_id: str, now: datetime | None = None, min_count: int = SUPPRESSION_THRESHOLD) -> RoundOverview:
    now = now or domain.now_utc()
    session = uow.session
    # One snapshot of every table read.
    await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    definition_row = await session.get(OverviewRound, round_id)
    definition = definition_row.definition if definition_row else {}
    snapshots = {
        source: (as_of, snapshot)
        for source, as_of, snapshot in (
            await session.execute(
                sa.select(OverviewSnapshot.source, OverviewSnapshot.as_of, OverviewSnapshot.snapshot)
                .where(OverviewSnapshot.round_id == round_id)
            )
        ).all()
    }
    columns = OverviewDelivery.__table__.columns
    deliveries = [
        {c.key: getattr(row, c.key) for c in columns}
        for row in (await session.execute(sa.select(OverviewDelivery).where(OverviewDelivery.round_id == round_id))).scalars()
    ]
    invited = dict(
        (await session.execute(
            sa.select(Invited.kommunekode, sa.func.count()).where(Invited.round_id == round_id).group_by(Invited.kommunekode)
        )).all()
    )
    # Answers per municipality and Danish calendar day (domain.answer_days).
    day = sa.cast(sa.func.timezone(str(domain.LOCAL), ResponseFact.submitted_at), sa.Date)
    submitted = [
        tuple(row) for row in (
            await session.execute(
                sa.select(ResponseFact.kommunekode, day, sa.func.count())
                .where(ResponseFact.round_id == round_id).group_by(ResponseFact.kommunekode, day)
            )
        ).all()
    ]
    if definition_row is None and not snapshots and not deliveries and not invited and not submitted:
        raise RoundUnknown(round_id)

    sampling = snapshots.get("sampling", (None, {}))[1]
    dispatch = snapshots.get("dispatch", (None, {}))[1]
    target = sampling.get("min_expected_answers")
    kommuner = list(definition.get("kommuner") or [])
    by_kommune: dict[str, Figures] = {}

    def figures(kommunekode: str) -> Figures:
        if kommunekode not in by_kommune:
            by_kommune[kommunekode] = Figures(kommunekode=kommunekode, participates=not kommuner or kommunekode in kommuner,
                                              target_answers=target)
        return by_kommune[kommunekode]

    for kommunekode in kommuner:
        figures(kommunekode)
    grouped: dict[str, list[dict]] = {}
    for d in deliveries:
        grouped.setdefault(d["kommunekode"], []).append(d)
    for kommunekode, of_kommune in grouped.items():
        domain.delivery_figures(figures(kommunekode), of_kommune)
    for m in sampling.get("municipalities", []):
        f = figures(m["kommunekode"])
        f.frame_population, f.frame_exclusions, f.eligible = m["population"], dict(m["excluded"]), m["eligible"]
        f.sample, f.expected_answers, f.capped = m["sample"], m["expected_answers"], m["capped"]
    steps: dict[str, list[dict]] = {}
    for row in dispatch.get("steps", []):
        steps.setdefault(row["kommunekode"], []).append(row)
    for kommunekode, rows in steps.items():
        figures(kommunekode).messages = domain.message_counts(rows)
    for c in dispatch.get("contacts", []):
        f = figures(c["kommunekode"])
        f.waiting_for_contact, f.no_contact = c["waiting"], c["no_contact"]
    for kommunekode, n in invited.items():
        figures(kommunekode).invited = n
    invitation_at = domain.parse_time(definition.get("invitation_at"))
    days, per_day = domain.answer_days(invitation_at, submitted, now)
    for kommunekode, _, n in submitted:
        figures(kommunekode).answers += n
    for f in by_kommune.values():
        f.answers_by_day = per_day.get(f.kommunekode, [0] * len(days))
        domain.rates(f)
    municipal, national = domain.representativeness(*await sampled_and_answered(uow, round_id), min_count)
    for kommunekode, figures_of in municipal.items():
        figures(kommunekode).representativeness = figures_of
    municipalities = sorted(by_kommune.values(), key=lambda f: f.kommunekode)
    total = domain.total_of(municipalities, len(days), target)
    total.representativeness = national
    return RoundOverview(
        round_id=round_id,
        name=definition.get("name"),
        revision=definition_row.revision if definition_row else None,
        phase=definition_row.phase if definition_row else None,
        phase_changed_at=domain.parse_time(definition.get("phase_changed_at")),
        waits_for=domain.waits_for(definition_row.phase if definition_row else None, definition,
                                   {k for k, f in by_kommune.items() if f.deliveries}, sampling.get("stage"), now),
        kommuner=kommuner,
        delivery_deadline=domain.parse_time(definition.get("delivery_deadline")),
        invitation_at=invitation_at,
        reminders_at=[domain.parse_time(r) for r in definition.get("reminders_at") or []],
        fieldwork_ends_at=domain.parse_time(definition.get("fieldwork_ends_at")),
        sampling_stage=sampling.get("stage"),
        forced=sampling.get("forced", False),
        sending=dispatch.get("sending"),
        days=days,
        municipalities=municipalities,
        total=total,
        sampling_as_of=snapshots.get("sampling", (None, None))[0],
        dispatch_as_of=snapshots.get("dispatch", (None, None))[0],
    )

