"""Analytics' read side."""

from __future__ import annotations

import sqlalchemy as sa

from services.analytics.models import Invited, ResponseFact
from services.analytics.schemas import ResponseRateRow, ResponseRates
from shared.auth import Principal
from shared.bus import UnitOfWork


async def response_rates(uow: UnitOfWork, round_id: str, principal: Principal, threshold: int) -> ResponseRates:
    invited = dict(
        (
            await uow.session.execute(
                sa.select(Invited.kommunekode, sa.func.count()).where(Invited.round_id == round_id).group_by(Invited.kommunekode)
            )
        ).all()
    )
    answered = dict(
        (
            await uow.session.execute(
                sa.select(ResponseFact.kommunekode, sa.func.count())
                .where(ResponseFact.round_id == round_id)
                .group_by(ResponseFact.kommunekode)
            )
        ).all()
    )
    counts = {k: (invited.get(k, 0), answered.get(k, 0)) for k in sorted(set(invited) | set(answered))}
    suppressed = {k for k, (_, a) in counts.items() if a < threshold}
    # Secondary suppression against the national total: a single suppressed municipality could
    # be recovered as national minus the others, so the next smallest is suppressed too.
    if len(suppressed) == 1 and len(counts) > 1:
        shown = sorted((a, k) for k, (_, a) in counts.items() if k not in suppressed)
        suppressed.add(shown[0][1])

    def row(kommunekode: str, n_invited: int, n_answered: int, hidden: bool) -> ResponseRateRow:
        return ResponseRateRow(
            kommunekode=kommunekode,
            invited=n_invited,
            answers=None if hidden else n_answered,
            response_rate=None if hidden or not n_invited else n_answered / n_invited,
            suppressed=hidden,
        )

    total_invited = sum(i for i, _ in counts.values())
    total_answered = sum(a for _, a in counts.values())
    rows = [row("national", total_invited, total_answered, total_answered < threshold)]
    rows += [
        row(k, i, a, k in suppressed)
        for k, (i, a) in counts.items()
        if principal.may_act_for(k)  # a municipality sees its own figures and the national ones
    ]
    return ResponseRates(round_id=round_id, suppression_threshold=threshold, rows=rows)
