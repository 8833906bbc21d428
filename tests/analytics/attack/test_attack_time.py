"""Issue #20, over time: releases are cut, ONE new answer arrives, another release is cut, and
the attacker reads every pair (unknowns for both releases, counts only growing).

* The default loop (fieldwork's releases publish response rates, then the final): from no pair
  of publications may a single answer be inferred (no question's answers per code known to have
  gained 1..T-1 respondents between them), and a reader holding every release narrows no hidden
  count of the final below the protection level. A respondent count moved by 1 is published by design: it tells
  that someone answered, never what.
* The operator's release points with answers ("totals"), then the final: between any two
  releases no cell (respondents per level of every dimension, answers per code of every
  question) may be known to have gained 1..T-1 respondents (the growth rule)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os

import pytest

from attack_ilp import score, score_change, summary
from attack_rounds import generate_round
from attack_scenario import Service, knowledge, prepared
from services.analytics.main import create_app
from services.analytics.config import AnalyticsSettings
from shared.testing.fixtures import running_app, settings_from_env
from test_attack_static import manual_releases

STEPS = int(os.environ.get("ATTACK_TIME_STEPS", "2"))


async def test_one_new_answer_cannot_be_read_from_two_releases(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    rnd = generate_round("attack-time", 7, kommuner=("101", "147", "751"), questions=("q1", "q2", "q3"))
    snapshots = []  # (respondents at the release, national view, municipal view)
    async with running_app(create_app(manual_releases(service_env))) as client:
        svc = Service(client, dev_issuer, kafka_bootstrap, topic_prefix, service_env["DATABASE_URL"], rnd)
        await svc.send(rnd.samples + rnd.invitations + rnd.responses)
        await svc.wait_consumed()
        await svc.cut("preliminary", "totals")
        snapshots.append((list(rnd.respondents), *await svc.read()))
        for step in range(STEPS):
            person, event = rnd.pending.pop()
            rnd.answer(person, event)
            await svc.send([event])
            await svc.wait_consumed()
            # The operator's release point with answers, then the final one (and a revision of it).
            await svc.cut("preliminary" if step == 0 else "final", "totals" if step == 0 else None)
            snapshots.append((list(rnd.respondents), *await svc.read()))
    if dump := os.environ.get("ATTACK_DUMP"):  # for studying a failure offline
        import pickle

        with open(dump, "wb") as f:
            pickle.dump((rnd.population, snapshots), f)
    report, failures = [], []
    for (old, *old_views), (new, *new_views) in itertools.combinations(snapshots, 2):
        for reader, before, after in zip(("national", f"kommune {svc.bound_kommune}"), old_views, new_views):
            know = knowledge(rnd, after, form_requires_answers=True)
            added = [p for p in new if p not in old]
            attack = prepared(know, [before, after], [old, added])
            results = score_change(attack, old, new, after, know.kommuner, know.arms)
            report.append({"reader": reader, "new": [(p.kommunekode, p.maalgruppe, p.gender, p.age_band, p.duration_band, p.answers) for p in added]}
                          | summary(results) | {"solves": attack.solves})
            failures += [(reader, c.key, (c.lo, c.hi)) for c in results if c.narrowed]
    print("\ntime attack:", json.dumps(report, indent=1, default=str))
    # What the defence guarantees on its own terms: no published cell moved by 1..T-1.
    for (_, *old_views), (_, *new_views) in zip(snapshots, snapshots[1:]):
        for before, after in zip(old_views, new_views):
            for key, row in after.indicators.items():
                earlier = before.indicators.get(key)
                now, then = (r.get("n_respondents") if r else None for r in (row, earlier))
                if now not in (None, "") and then not in (None, ""):
                    assert not 0 < abs(int(now) - int(then)) < 5, (key, then, now)
    assert not failures, f"{len(failures)} cells known to have moved by 1..T-1 between two releases: {failures[:6]}"


@pytest.mark.timeout(1200)
async def test_the_default_loop_never_lets_an_answer_be_read(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    rnd = generate_round("attack-loop", 8, kommuner=("101", "147", "751"), questions=("q1", "q2"))
    # The release loop as deployed (its default preliminary scope), quick.
    settings = settings_from_env(AnalyticsSettings, service_env, publication_release_quiet_seconds=0.3)
    snapshots = []  # (respondents at the release, national view, municipal view)
    async with running_app(create_app(settings)) as client:
        svc = Service(client, dev_issuer, kafka_bootstrap, topic_prefix, service_env["DATABASE_URL"], rnd)

        async def next_release(seen: int) -> None:
            async with asyncio.timeout(90):  # the builder process starts first
                while len(listed := await svc.listed()) <= seen:
                    await asyncio.sleep(0.1)
            assert listed[-1]["scope"] == "rates" and not listed[-1]["answers_published"]
            await svc.served(listed[-1]["release"])
            snapshots.append((list(rnd.respondents), *await svc.read()))

        await svc.send(rnd.samples + rnd.invitations + rnd.responses)
        await svc.wait_consumed()
        await next_release(0)
        for step in range(STEPS):
            person, event = rnd.pending.pop()
            rnd.answer(person, event)
            await svc.send([event])
            await svc.wait_consumed()
            await next_release(step + 1)
        # Fieldwork is over: the final release publishes every cell.
        final = await svc.cut("final")
        assert (final["scope"], final["answers_published"]) == ("all", True)
        snapshots.append((list(rnd.respondents), *await svc.read()))
        listed = await svc.listed()
    assert [x["scope"] for x in listed] == ["rates"] * (STEPS + 1) + ["all"]
    for _, national, municipal in snapshots[:-1]:
        assert not any(national.indicators) and not any(municipal.indicators), "a rates release published answers"
    report, failures = [], []
    for (old, *old_views), (new, *new_views) in itertools.combinations(snapshots, 2):
        for reader, before, after in zip(("national", f"kommune {svc.bound_kommune}"), old_views, new_views):
            know = knowledge(rnd, after, form_requires_answers=True)
            added = [p for p in new if p not in old]
            attack = prepared(know, [before, after], [old, added])
            results = score_change(attack, old, new, after, know.kommuner, know.arms)
            answers = [c for c in results if c.key[0] in rnd.questions]  # answers per code, not respondents
            report.append({"reader": reader, "added": len(added)} | summary(answers))
            failures += [(reader, c.key, (c.lo, c.hi)) for c in answers if c.narrowed]
    # The final's hidden counts, for a reader holding every release.
    people = snapshots[-1][0]
    blocks, before = [], []
    for upto, *_ in snapshots:
        blocks.append([p for p in upto if p not in before])
        before = upto
    hidden = []
    for r, reader in enumerate(("national", f"kommune {svc.bound_kommune}")):
        views = [snap[1 + r] for snap in snapshots]
        know = knowledge(rnd, views[-1], form_requires_answers=True)
        attack = prepared(know, views, blocks)
        results = score(attack, people, views[-1], release=len(views) - 1, earlier=views[:-1])
        report.append({"reader": reader, "final": summary(results)})
        hidden += [(reader, c.kind, c.key, c.truth, (c.lo, c.hi)) for c in results if c.narrowed]
    print("\ndefault loop attack:", json.dumps(report, indent=1, default=str))
    assert not failures, f"{len(failures)} answers per code known to have moved by 1..T-1 between two publications: {failures[:6]}"
    # The final is held to the rates releases' equations together: a reader of every release
    # recovers no hidden count of it exactly and narrows none below the protection level.
    assert not hidden, f"{len(hidden)} hidden counts of the final narrowed below the protection level: {hidden[:6]}"
