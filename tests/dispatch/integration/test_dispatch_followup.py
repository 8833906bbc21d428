"""The adaptive follow-up through the dispatch service (real PostgreSQL and broker): the operator
sets the rule; before the first reminder the worker ranks the cells by their observed response
rate, assigns the citizens of the cells answering least to an extra SMS or to control within the
budget; the extra messages go out, and every message sent after the assignment carries the arm on
invitation.sent. Refused rules say which field is wrong."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from dispatch_harness import answered, consume_all, invitations, make_settings, produce, round_defined, sample, sink_files, step_statuses, wait_for
from services.dispatch.domain.followup import FOLLOWUP_CONTROL, FOLLOWUP_EXTRA, CellCount, FollowupRule, assign
from services.dispatch.main import create_app
from services.dispatch.models import FollowupRuleRow
from shared.testing.fixtures import bearer, running_app

ROUND = "f1"
# Cells (municipality x Dagpenge) of 20 citizens and how many answer before the first reminder.
ANSWERS = {"101": 10, "147": 2, "151": 5, "153": 0}
SIZES = {"101": 20, "147": 20, "151": 20, "153": 4}  # 153 is under min_invited: never ranked
RULE = {"step": "reminder_1", "lowest_cells": 2, "min_invited": 10, "channel": "sms", "budget": 7,
        "control_share": 0.3, "seed": "followup-seed"}


async def test_rule_spends_its_budget_in_the_chosen_cells_and_its_arm_is_on_the_events(service_env, dev_issuer):
    settings = make_settings(service_env, reminder_count=1, followup_interval_seconds=0.2, followup_lead_seconds=2.0)
    sink = Path(service_env["DEV_SINK_DIR"])
    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    chunks = [sample(service_env, ROUND, k, SIZES[k], seed=i + 1, no_phone={3}) for i, k in enumerate(SIZES)]
    app = create_app(settings)
    async with running_app(app) as client:
        assert (await client.get(f"/rounds/{ROUND}/followup", headers=admin)).status_code == 404
        assert (await client.put(f"/rounds/{ROUND}/followup", json=RULE)).status_code in (401, 403)
        for body, field in (({**RULE, "below_rate": 0.2}, "exactly one of lowest_cells"),
                            ({**RULE, "step": "reminder_2"}, "step: the round's plans send 1 reminder(s)"),
                            ({**RULE, "channel": "paper_questionnaire"}, "channel: responses has offered no questionnaire"),
                            ({**RULE, "budget": -1}, "budget")):
            r = await client.put(f"/rounds/{ROUND}/followup", json=body, headers=admin)
            assert r.status_code == 422 and field in r.text, (body, r.text)
        r = await client.put(f"/rounds/{ROUND}/followup", json=RULE, headers=admin)
        assert r.status_code == 200 and r.json()["applied_at"] is None, r.text

        # The invitations go now; the first reminder is far off while the citizens answer.
        far = datetime.now(UTC) + timedelta(hours=1)
        await produce(service_env, round_defined(ROUND, reminders_at=[far]), *(e for c in chunks for e in c.events))

        async def invited():
            return (await step_statuses(app, ROUND))[("invitation", "letter", "sent")] == sum(SIZES.values())
        await wait_for(invited, 60, "every invitation sent")
        who_answers = [p.pseudonym for c in chunks for p in c.persons[: ANSWERS[c.kommunekode]]]
        await produce(service_env, *(answered(c, p.pseudonym) for c in chunks for p in c.persons[: ANSWERS[c.kommunekode]]))

        async def recorded():
            return sum(inv.status == "answered" for inv in await invitations(app, ROUND)) == len(who_answers)
        await wait_for(recorded, 30, "dispatch to record the answers")
        assert (await client.get(f"/rounds/{ROUND}/followup", headers=admin)).json()["applied_at"] is None

        # The operator brings the reminder forward: the rule acts 2 s before it, then it goes.
        await produce(service_env, round_defined(ROUND, revision=2, reminders_at=[datetime.now(UTC) + timedelta(seconds=4)]))

        async def reminded():
            counts = await step_statuses(app, ROUND)
            return counts[("reminder_1", "letter", "sent")] == sum(SIZES.values()) - len(who_answers) and counts
        counts = await wait_for(reminded, 60, "the first reminders")

        async def extras_done():
            c = await step_statuses(app, ROUND)
            return not c[("reminder_1", "sms", "planned")] and not c[("reminder_1", "sms", "sending")] and c
        counts = await wait_for(extras_done, 30, "the extra messages")
        state = (await client.get(f"/rounds/{ROUND}/followup", headers=admin)).json()
        # The rule has acted and cannot change any more.
        r = await client.put(f"/rounds/{ROUND}/followup", json=RULE, headers=admin)
        assert r.status_code == 409, r.text
        invs = {inv.pseudonym: inv for inv in await invitations(app, ROUND)}
        async with app.state.runtime.sessionmaker() as session:
            row = await session.get(FollowupRuleRow, ROUND)

    # The cells answering least among those with 10 invited or more, lowest first.
    assert state["applied_at"] is not None
    assert [c["stratum"] for c in state["cells"] if c["chosen"]] == ["147:Dagpenge", "151:Dagpenge"]
    assert {c["stratum"]: (c["invited"], c["answered"]) for c in state["cells"]} == {
        f"{k}:Dagpenge": (SIZES[k], ANSWERS[k]) for k in SIZES}
    # Within the budget, only in the chosen cells, and reproducible from what the rule saw.
    arms = {p: inv.followup_arm for p, inv in invs.items() if inv.followup_arm}
    assert Counter(arms.values())[FOLLOWUP_EXTRA] == RULE["budget"] and Counter(arms.values())[FOLLOWUP_CONTROL] >= 1
    assert {invs[p].stratum for p in arms} <= {"147:Dagpenge", "151:Dagpenge"}
    assert state["arms"] == dict(Counter(arms.values()))
    candidates: dict[str, list[str]] = {}
    for p, inv in invs.items():
        if inv.status == "active":
            candidates.setdefault(inv.stratum, []).append(p)
    again = assign(FollowupRule.model_validate(row.rule), ROUND,
                   [CellCount(cell, *n) for cell, n in row.counts.items()], candidates)
    assert again.arms == arms
    # The extra SMS: one step per citizen of the extra arm, sent unless the citizen has no phone.
    extra = {p for p, arm in arms.items() if arm == FOLLOWUP_EXTRA}
    planned_sms = counts[("reminder_1", "sms", "sent")] + counts[("reminder_1", "sms", "skipped")]
    assert planned_sms == len(extra) <= RULE["budget"]
    assert sum(v for v in state["extra_messages"].values()) == len(extra)
    files = sink_files(sink)
    sms_keys = {key for key in files if key.endswith(".reminder_1.sms")}
    assert sms_keys == {f"{invs[p].id}.reminder_1.sms" for p in extra if f"{invs[p].id}.reminder_1.sms" in sms_keys}
    assert len(sms_keys) == counts[("reminder_1", "sms", "sent")] >= 1

    # The arm is on the events: every message sent after the assignment carries it, none before.
    sent = await consume_all(service_env, "invitation.sent", sum(SIZES.values()) * 2 - len(who_answers))
    by_key = {(e["pseudonym"], e["step"], e["channel"]): e for e in sent}
    assert all(e["followup_arm"] is None for e in sent if e["step"] == "invitation")
    for e in sent:
        if e["step"] == "reminder_1":
            assert e["followup_arm"] == arms.get(e["pseudonym"]), e
    assert {p for (p, step, channel) in by_key if step == "reminder_1" and channel == "sms"} <= extra
    assert {p for (p, step, channel), e in by_key.items() if step == "reminder_1" and channel == "digital_post"
            and e["followup_arm"] == FOLLOWUP_CONTROL} == {p for p, arm in arms.items() if arm == FOLLOWUP_CONTROL}


async def test_a_rule_for_a_step_that_has_gone_out_is_refused(service_env, dev_issuer):
    settings = make_settings(service_env, reminder_count=1, reminder_interval_days=1 / 86400)
    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    chunk = sample(service_env, "f2", "101", 3)
    app = create_app(settings)
    async with running_app(app) as client:
        await produce(service_env, round_defined("f2"), *chunk.events)

        async def reminded():
            return (await step_statuses(app, "f2"))[("reminder_1", "letter", "sent")] == 3
        await wait_for(reminded, 60, "the reminders")
        r = await client.put("/rounds/f2/followup", json=RULE, headers=admin)
        assert r.status_code == 422 and "step: reminder_1 has gone out to 3 citizen(s) already" in r.text, r.text
        async with app.state.runtime.sessionmaker() as session:
            assert await session.scalar(sa.select(sa.func.count()).select_from(FollowupRuleRow)
                                        .where(FollowupRuleRow.round_id == "f2")) == 0
