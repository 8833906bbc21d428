"""Issue #20, over time: releases are cut, ONE new answer arrives, another release is cut, and
the attacker reads the pair (unknowns for both releases, counts only growing). Between any two
releases a reader has seen, no cell (respondents per level of every dimension, answers per code
of every question) may be known to have gained 1..T-1 respondents."""

from __future__ import annotations

import itertools
import json
import os


from attack_ilp import score_change, summary
from attack_rounds import generate_round
from attack_scenario import Service, knowledge, prepared
from services.analytics.main import create_app
from shared.testing.fixtures import running_app
from test_attack_static import manual_releases

STEPS = int(os.environ.get("ATTACK_TIME_STEPS", "2"))


async def test_one_new_answer_cannot_be_read_from_two_releases(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    rnd = generate_round("attack-time", 7, kommuner=("101", "147", "751"), questions=("q1", "q2", "q3"))
    snapshots = []  # (respondents at the release, national view, municipal view)
    async with running_app(create_app(manual_releases(service_env))) as client:
        svc = Service(client, dev_issuer, kafka_bootstrap, topic_prefix, service_env["DATABASE_URL"], rnd)
        await svc.send(rnd.samples + rnd.invitations + rnd.responses)
        await svc.wait_consumed()
        await svc.cut()
        snapshots.append((list(rnd.respondents), *await svc.read()))
        for step in range(STEPS):
            person, event = rnd.pending.pop()
            rnd.answer(person, event)
            await svc.send([event])
            await svc.wait_consumed()
            # Fieldwork's preliminary releases, then the final one (and a revision of it).
            await svc.cut("preliminary" if step == 0 else "final")
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
