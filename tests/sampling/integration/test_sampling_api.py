"""Sampling against real PostgreSQL and a real broker: population.received in (v2, and v1 still
read), the allocation previewed, adjusted and confirmed over the API, the draw out as
sample.drawn v2 (no contact data: consume_sample checks every chunk)."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter, defaultdict
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.sampling.config import SamplingSettings
from services.sampling import draw_sql
from services.sampling.domain import UNIT_FLAGS, AllocationRules, ExclusionReason, ExclusionRules, adjust, allocate, apply_exclusions, draw_sample, margins
from services.sampling.main import create_app
from services.sampling.models import BUS
from services.sampling.privacy import RULES as PRIVACY
from shared.bus import UnitOfWork
from shared.db import make_sessionmaker, to_async_url
from shared.testing.fixtures import bearer, create_test_database, running_app, settings_from_env

from sampling_helpers import citizens, consume_frame_margins, consume_sample, delivery, frame_units, produce, wait_for_frame, with_contacts

REF = date(2025, 8, 1)
SIZES = {"101": 1_800, "147": 300, "751": 40}


def admin(dev_issuer) -> str:
    return dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])


async def test_preview_adjust_confirm_draw_and_the_events_carry_exact_weights(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    round_id = "r-2025"
    people = {k: citizens(round_id, k, n, seed=i) for i, (k, n) in enumerate(SIZES.items())}
    token = admin(dev_issuer)
    async with running_app(create_app(settings_from_env(SamplingSettings, service_env))) as client:
        await produce(kafka_bootstrap, topic_prefix, [c for k, p in people.items() for c in delivery(round_id, k, p, reference_date=REF)])
        frame = await wait_for_frame(client, token, round_id, SIZES)

        # Exclusions are counted per reason exactly as the domain counts them.
        domain = apply_exclusions([u for k, p in people.items() for u in frame_units(k, p)], [], ExclusionRules())
        assert frame["exclusions"] == {r.value: n for r, n in domain.counts.items()}
        assert frame["exclusion_flags"] == {r.value: n for r, n in domain.flag_counts.items()}
        assert frame["exclusions"]["forskerbeskyttet"] > 0 and frame["exclusions"]["deceased"] > 0 and frame["exclusions"]["emigrated"] > 0
        eligible = domain.frame_counts()
        assert {(s["kommunekode"], s["maalgruppe"]): s["eligible"] for s in frame["strata"]} == eligible

        # Only rounds:admin may see or touch any of it.
        reader = dev_issuer.mint("bi", ["aggregates:read", "kommuner:all"])
        for method, path in [("GET", "frame"), ("POST", "allocation"), ("GET", "allocation"), ("PATCH", "allocation"), ("POST", "allocation/confirm"), ("POST", "draws")]:
            r = await client.request(method, f"/rounds/{round_id}/{path}", headers=bearer(reader), json={"overrides": []} if method == "PATCH" else None)
            assert r.status_code == 403, (method, path, r.text)
        assert (await client.post(f"/rounds/{round_id}/draws")).status_code == 401

        # Preview: observed response rates for one group override the default.
        r = await client.post(f"/rounds/{round_id}/allocation", json={"rules": {"response_rates": {"aktivitetsparate": 0.15}}}, headers=bearer(token))
        assert r.status_code == 200, r.text
        view = r.json()
        assert view["status"] == "proposed" and view["rules"]["response_rates"]["aktivitetsparate"] == 0.15
        strata = {(s["kommunekode"], s["maalgruppe"]): s for s in view["strata"]}
        assert {k: s["eligible"] for k, s in strata.items()} == eligible
        towns = {m["kommunekode"]: m for m in view["municipalities"]}
        # 101 is big enough to sample 1,000-2,000 with >= 200 expected answers; the small ones
        # take everyone and say how many answers they fall short.
        assert 1_000 <= towns["101"]["sample"] < towns["101"]["eligible"] and towns["101"]["expected_answers"] >= 200
        assert not towns["101"]["warnings"]
        for kode in ("147", "751"):
            assert towns[kode]["sample"] == towns[kode]["eligible"]
            warning = towns[kode]["warnings"][0]
            assert warning["code"] == "min_answers_unreachable"
            assert math.isclose(warning["shortfall"], 200 - towns[kode]["expected_answers"])
        for s in view["strata"]:
            assert math.isclose(s["expected_answers"], s["sample"] * s["response_rate"])
            assert s["eligible"] == 0 or math.isclose(s["inclusion_probability"], s["sample"] / s["eligible"])
        assert (await client.get(f"/rounds/{round_id}/allocation", headers=bearer(token))).json()["strata"] == view["strata"]

        # Operator overrides: re-validated; the 200 rule becomes a warning with the shortfall.
        target = ("101", "dagpenge")
        r = await client.patch(
            f"/rounds/{round_id}/allocation",
            json={"overrides": [{"kommunekode": "101", "maalgruppe": "dagpenge", "sample": strata[target]["eligible"] + 1}]},
            headers=bearer(token),
        )
        assert r.status_code == 422, r.text
        r = await client.patch(
            f"/rounds/{round_id}/allocation",
            json={"overrides": [{"kommunekode": "101", "maalgruppe": g, "sample": 10} for g in ("dagpenge", "sygedagpenge", "jobafklaring")]},
            headers=bearer(token),
        )
        assert r.status_code == 200, r.text
        low = {m["kommunekode"]: m for m in r.json()["municipalities"]}["101"]
        assert [w["code"] for w in low["warnings"]][0] == "min_answers_not_met" and low["shortfall"] > 0
        r = await client.put(
            f"/rounds/{round_id}/allocation/overrides",
            json={"overrides": [{"kommunekode": "101", "maalgruppe": "dagpenge", "sample": 150}]},
            headers=bearer(token),
        )
        adjusted = {(s["kommunekode"], s["maalgruppe"]): s for s in r.json()["strata"]}
        assert adjusted[target]["sample"] == 150 and adjusted[target]["overridden"]
        assert not adjusted[("101", "sygedagpenge")]["overridden"]
        r = await client.post(f"/rounds/{round_id}/allocation/confirm", headers=bearer(token))
        assert r.status_code == 200 and r.json()["status"] == "confirmed" and r.json()["confirmed_by"] == "kl-operator"

        # The draw takes the confirmed allocation, once.
        r = await client.post(f"/rounds/{round_id}/draws", json={"seed": 7}, headers=bearer(token))
        assert r.status_code == 201, r.text
        result = r.json()
        expected_n = {k: s["sample"] for k, s in adjusted.items()}
        assert result["seed"] == 7 and result["sampled"] == sum(expected_n.values())
        assert (await client.post(f"/rounds/{round_id}/draws", json={"seed": 8}, headers=bearer(token))).status_code == 409
        assert (await client.post(f"/rounds/{round_id}/allocation", headers=bearer(token))).status_code == 409

        events = await consume_sample(kafka_bootstrap, topic_prefix, round_id, result["sampled"])
        persons = [p for _, e in events for p in e.persons]
        assert len({p.pseudonym for p in persons}) == len(persons) == result["sampled"]
        excluded = {u.unit_id for u, _ in domain.excluded}
        assert not excluded & {p.pseudonym for p in persons}
        drawn = Counter((p.stratum.split(":")[0], p.maalgruppe) for p in persons)
        assert drawn == +Counter(expected_n)
        weights: dict[tuple[str, str], float] = defaultdict(float)
        for p in persons:
            key = tuple(p.stratum.split(":"))
            assert math.isclose(p.inclusion_probability, expected_n[key] / eligible[key])
            weights[key] += p.design_weight
        for key, total in weights.items():
            assert math.isclose(total, eligible[key], rel_tol=1e-12), key  # Σ w = N_h
        # One design weight, N_h / n_h, exactly (not merely close) in the draw's response, in every
        # sample.drawn person and in the recorded sample.
        expected_w = {f"{k}:{g}": eligible[(k, g)] / n for (k, g), n in expected_n.items() if n}
        assert {s["stratum"]: s["design_weight"] for s in result["strata"] if s["sample"]} == expected_w
        assert all(s["design_weight"] == 0.0 for s in result["strata"] if not s["sample"])
        assert {s["stratum"]: s["inclusion_probability"] for s in result["strata"] if s["sample"]} == {
            f"{k}:{g}": n / eligible[(k, g)] for (k, g), n in expected_n.items() if n
        }
        assert {(p.stratum, p.design_weight) for p in persons} == set(expected_w.items())
        engine = create_async_engine(to_async_url(service_env["DATABASE_URL"]))
        async with engine.connect() as conn:
            recorded = set((await conn.execute(sa.text("SELECT DISTINCT stratum, design_weight FROM sampling.sampled_unit"))).all())
        await engine.dispose()
        assert recorded == set(expected_w.items())
        finals = {e.kommunekode: e for _, e in events if e.final}
        assert set(finals) == set(SIZES)
        for kode, e in finals.items():
            assert e.chunk_count == sum(1 for _, x in events if x.kommunekode == kode)
            assert {s.stratum: (s.population, s.sample) for s in e.strata} == {
                f"{k}:{g}": (eligible[(k, g)], expected_n[(k, g)]) for (k, g) in eligible if k == kode
            }
        # Every chunk is sample.drawn v2 without contacts (consume_sample checks each raw
        # chunk), and the final chunks alone carry the strata.
        assert all(not e.strata for _, e in events if not e.final)

        # Margins of the drawn frame, as the domain counts them.
        r = await client.get(f"/rounds/{round_id}/draws/{result['draw_id']}/margins", headers=bearer(token))
        assert r.status_code == 200, r.text
        expected_margins = margins(domain.eligible)
        for m in r.json()["municipalities"]:
            assert m["population"] == expected_margins.municipalities[m["kommunekode"]]
            assert m["margins"] == expected_margins.for_municipality(m["kommunekode"])

        # The population the round estimates for travels to analytics as frame.margins: the
        # eligible frame (not the sample) per target group x gender x age band x duration band,
        # counts only.
        published = await consume_frame_margins(kafka_bootstrap, topic_prefix, round_id, set(SIZES))
        expected_cells = Counter(
            (u.kommunekode, u.maalgruppe, u.bands["gender"], u.bands["age_band"], u.bands["duration_band"]) for u in domain.eligible
        )
        got = Counter()
        for raw, e in published:
            assert e.draw_id == uuid.UUID(result["draw_id"])
            assert b"pseudonym" not in raw and b"contact" not in raw
            for c in e.cells:
                got[(e.kommunekode, c.maalgruppe, c.bands.gender, c.bands.age_band, c.bands.duration_band)] += c.population
        assert got == expected_cells
        for kode in SIZES:
            final = [e for _, e in published if e.kommunekode == kode and e.final]
            assert len(final) == 1 and final[0].population == expected_margins.municipalities[kode]
            assert final[0].chunk_count == sum(1 for _, e in published if e.kommunekode == kode)


async def sample_everyone(client, token: str, broker: tuple[str, str], round_id: str, kommunekode: str, persons) -> None:
    """A round of last year (reference date 2024-08-01) that delivered `persons` and sampled them all."""
    await produce(*broker, delivery(round_id, kommunekode, persons, reference_date=date(2024, 8, 1)))
    await wait_for_frame(client, token, round_id, {kommunekode: len(persons)})
    r = await client.post(f"/rounds/{round_id}/draws", json={"seed": 42, "sample_per_stratum": 1000}, headers=bearer(token))
    assert r.status_code == 201 and r.json()["sampled"] == len(persons), r.text


async def test_redelivery_recent_rounds_and_a_stale_allocation(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    token = admin(dev_issuer)
    async with running_app(create_app(settings_from_env(SamplingSettings, service_env))) as client:
        # Last year's round sampled all 30 citizens of 751 (the e2e/demo call shape).
        await sample_everyone(client, token, (kafka_bootstrap, topic_prefix), "r-2024", "751", citizens("r-2024", "751", 30, seed=1, flagged=False))

        # This year: the same 30 plus 20 new ones; a parallel round with the same reference
        # date does not count as "earlier".
        first = citizens("r-2025", "751", 50, seed=2, flagged=False)
        await produce(kafka_bootstrap, topic_prefix, delivery("r-2025", "751", first, reference_date=REF, chunk_size=20))
        frame = await wait_for_frame(client, token, "r-2025", {"751": 50})
        assert frame["exclusions"]["recently_sampled"] == 30
        r = await client.post("/rounds/r-2025/allocation", headers=bearer(token))
        assert r.json()["totals"] == {"population": 50, "eligible": 20, "sample": 20, "expected_answers": r.json()["totals"]["expected_answers"]}
        r = await client.post("/rounds/r-2025/allocation", json={"recent_rounds": 0}, headers=bearer(token))
        assert r.json()["totals"]["eligible"] == 50

        # A re-delivery arrives: while incomplete, the frame stays the old delivery.
        second = citizens("r-2025", "751", 45, seed=3, flagged=False, start=100)
        chunks = delivery("r-2025", "751", second, reference_date=REF, chunk_size=20, supersedes=None)
        await produce(kafka_bootstrap, topic_prefix, chunks[:-1])
        engine = create_async_engine(to_async_url(service_env["DATABASE_URL"]))
        async with asyncio.timeout(30):
            while True:  # until the service holds the partial re-delivery
                async with engine.connect() as conn:
                    received = await conn.scalar(
                        sa.text("SELECT chunks_received FROM sampling.frame_delivery WHERE delivery_id = :d"), {"d": chunks[0].delivery_id}
                    )
                if received == len(chunks) - 1:
                    break
                await asyncio.sleep(0.1)
        await engine.dispose()
        populations = {(s["maalgruppe"], s["population"]) for s in frame["strata"]}
        assert {(s["maalgruppe"], s["population"]) for s in (await client.get("/rounds/r-2025/frame", headers=bearer(token))).json()["strata"]} == populations
        # Drawing from the allocation of the old frame would state wrong probabilities: refused.
        await produce(kafka_bootstrap, topic_prefix, chunks[-1:])
        await wait_for_frame(client, token, "r-2025", {"751": 45})
        r = await client.post("/rounds/r-2025/draws", json={"seed": 1}, headers=bearer(token))
        assert r.status_code == 409 and "changed" in r.text
        assert (await client.post("/rounds/r-2025/allocation/confirm", headers=bearer(token))).status_code == 409
        assert (await client.post("/rounds/r-2025/allocation", headers=bearer(token))).status_code == 200
        r = await client.post("/rounds/r-2025/draws", headers=bearer(token))  # no seed: one is made and recorded
        assert r.status_code == 201 and r.json()["sampled"] == 45 and r.json()["seed"] >= 0
        # No citizen from the replaced delivery made it into the sample.
        events = await consume_sample(kafka_bootstrap, topic_prefix, "r-2025", 45)
        assert {p.pseudonym for _, e in events for p in e.persons} == {p.pseudonym for p in second}


async def test_same_frame_and_seed_give_the_same_sample_in_a_fresh_database(
    service_env, dev_issuer, kafka_bootstrap, topic_prefix, postgres_admin_url, monkeypatch
):
    token = admin(dev_issuer)
    people = {"101": citizens("r", "101", 300, seed=5), "147": citizens("r", "147", 120, seed=6)}
    payloads = [c for k, p in people.items() for c in delivery("r", k, p, reference_date=REF)]
    samples = []
    for n, prefix in enumerate([topic_prefix, topic_prefix + "again."]):
        env = dict(service_env, KAFKA_TOPIC_PREFIX=prefix)
        if n:
            env["DATABASE_URL"] = await create_test_database(postgres_admin_url)
            # The second time every stratum comes up short below its sort threshold, so the draw
            # takes its fallback (everything sorted): it must draw the very same sample.
            monkeypatch.setattr(draw_sql, "THRESHOLD_SIGMAS", -3.0)
        async with running_app(create_app(settings_from_env(SamplingSettings, env))) as client:
            # Reversed order the second time: the sample must not depend on arrival order.
            await produce(kafka_bootstrap, prefix, payloads if n == 0 else payloads[::-1])
            await wait_for_frame(client, token, "r", {k: len(p) for k, p in people.items()})
            r = await client.post("/rounds/r/draws", json={"seed": 2026, "sample_per_stratum": 25}, headers=bearer(token))
            assert r.status_code == 201, r.text
        engine = create_async_engine(to_async_url(env["DATABASE_URL"]))
        async with engine.connect() as conn:
            rows = (
                await conn.execute(sa.text("SELECT pseudonym, stratum, seq, design_weight FROM sampling.sampled_unit ORDER BY seq"))
            ).all()
        await engine.dispose()
        samples.append([tuple(row) for row in rows])
    assert samples[0] == samples[1] and len(samples[0]) > 200  # min(25, N_h) per stratum

    # And it is the sample of the plain-Python reference of the draw, unit for unit, in order.
    eligible = apply_exclusions([u for k, p in people.items() for u in frame_units(k, p)], [], ExclusionRules())
    counts = eligible.frame_counts()
    allocation = adjust(allocate(counts, AllocationRules()), {k: min(25, n) for k, n in counts.items()})
    reference = draw_sample(eligible.frame(), allocation, 2026)
    assert samples[0] == [(u.unit_id, f"{u.kommunekode}:{u.maalgruppe}", seq, u.design_weight) for seq, u in enumerate(reference)]


async def test_a_concurrent_second_draw_and_a_duplicated_citizen_are_refused(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    token = admin(dev_issuer)
    people = {"101": citizens("c", "101", 200, seed=7), "147": citizens("c", "147", 80, seed=8)}
    async with running_app(create_app(settings_from_env(SamplingSettings, service_env))) as client:
        await produce(kafka_bootstrap, topic_prefix, [c for k, p in people.items() for c in delivery("c", k, p, reference_date=REF)])
        await wait_for_frame(client, token, "c", {k: len(p) for k, p in people.items()})
        results = await asyncio.gather(
            *(client.post("/rounds/c/draws", json={"seed": seed}, headers=bearer(token)) for seed in (1, 2))
        )
        assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]

        # One citizen delivered by two municipalities: the draw refuses (their π would be wrong).
        moved = citizens("d", "101", 60, seed=9, flagged=False)
        other = citizens("d", "147", 40, seed=10, flagged=False)
        other[0] = other[0].model_copy(update={"pseudonym": moved[0].pseudonym})
        await produce(kafka_bootstrap, topic_prefix, delivery("d", "101", moved, reference_date=REF) + delivery("d", "147", other, reference_date=REF))
        await wait_for_frame(client, token, "d", {"101": 60, "147": 40})
        r = await client.post("/rounds/d/draws", json={"seed": 3}, headers=bearer(token))
        assert r.status_code in (409, 422) and "more than once" in r.text, r.text
        assert moved[0].pseudonym not in r.text


async def test_a_citizen_is_delivered_twice_only_where_the_eligibility_rule_keeps_both(
    service_env, dev_issuer, kafka_bootstrap, topic_prefix
):
    """The duplicate check's SQL (service.frame._DUPLICATES_SQL) is generated from the eligibility
    rule (domain.exclusions): a citizen delivered by two municipalities blocks the draw only where
    both occurrences are eligible. Here every second occurrence is excluded, once for each reason
    (its own flag, or a sample of an earlier round for both), so by the domain's rule nobody is
    eligible twice and the draw goes ahead; a check that dropped a reason would refuse it."""
    token = admin(dev_issuer)
    async with running_app(create_app(settings_from_env(SamplingSettings, service_env))) as client:
        # An earlier round sampled the one citizen both municipalities deliver for every reason.
        earlier = citizens("dup-2024", "101", 1, seed=20, flagged=False)
        await sample_everyone(client, token, (kafka_bootstrap, topic_prefix), "dup-2024", "101", earlier)

        first = citizens("dup", "101", 40, seed=21, flagged=False)
        again = [first[0]] + [
            first[i].model_copy(update={flag: True}) for i, flag in enumerate(UNIT_FLAGS.values(), start=1)
        ]
        second = citizens("dup", "147", 40, seed=22, flagged=False) + again
        assert {ExclusionReason.RECENTLY_SAMPLED, *UNIT_FLAGS} == set(ExclusionReason)  # every reason has its copy
        recent = {p.pseudonym for p in earlier}
        eligible = apply_exclusions(frame_units("101", first) + frame_units("147", second), [recent]).eligible
        assert Counter(u.unit_id for u in eligible).most_common(1)[0][1] == 1
        assert len(eligible) == 39 + 40  # 101's citizens but the one sampled before, and 147's own

        await produce(
            kafka_bootstrap, topic_prefix, delivery("dup", "101", first, reference_date=REF) + delivery("dup", "147", second, reference_date=REF)
        )
        await wait_for_frame(client, token, "dup", {"101": 40, "147": 40 + len(again)})
        r = await client.post("/rounds/dup/draws", json={"seed": 5}, headers=bearer(token))
        assert r.status_code == 201, r.text
        assert r.json()["population"] == len(eligible)


async def test_the_kept_counts_follow_redelivery_and_erasure(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    """The counts and duplicate candidates recorded at activation (services.sampling.frame) stay
    the frame's own: a re-delivery that drops a citizen delivered twice lets the draw go ahead,
    and an erased citizen leaves the counts, the margins and the sample."""
    token = admin(dev_issuer)
    moved = citizens("e", "101", 60, seed=11)
    other = citizens("e", "147", 40, seed=12, flagged=False)
    twin = other[0]
    other[0] = twin.model_copy(update={"pseudonym": moved[0].pseudonym})
    async with running_app(create_app(settings_from_env(SamplingSettings, service_env))) as client:
        await produce(kafka_bootstrap, topic_prefix, delivery("e", "101", moved, reference_date=REF) + delivery("e", "147", other, reference_date=REF))
        await wait_for_frame(client, token, "e", {"101": 60, "147": 40})
        r = await client.post("/rounds/e/draws", json={"seed": 3}, headers=bearer(token))
        assert r.status_code in (409, 422) and "more than once" in r.text, r.text

        # 147 delivers again with its own citizen in place of the twin.
        other[0] = twin
        redelivery = delivery("e", "147", other, reference_date=REF)
        await produce(kafka_bootstrap, topic_prefix, redelivery)
        engine = create_async_engine(to_async_url(service_env["DATABASE_URL"]))
        try:
            async with asyncio.timeout(30):
                while True:
                    async with engine.connect() as conn:
                        active = await conn.scalar(
                            sa.text("SELECT active FROM sampling.frame_delivery WHERE delivery_id = :d"), {"d": redelivery[0].delivery_id}
                        )
                    if active:
                        break
                    await asyncio.sleep(0.1)

            # An eligible citizen of 101 asks for erasure.
            erased = next(p for p in moved[1:] if not (p.forskerbeskyttet or p.deceased or p.emigrated))
            sessionmaker = make_sessionmaker(engine)
            async with UnitOfWork(sessionmaker, BUS, source="sampling") as uow:
                removed = await PRIVACY.erase_citizens(uow, [erased.pseudonym])
                assert removed["frame_unit"] == 1
                await uow.commit()
        finally:
            await engine.dispose()
        frame = await wait_for_frame(client, token, "e", {"101": 59, "147": 40})
        domain = apply_exclusions([u for u in frame_units("101", moved) + frame_units("147", other) if u.unit_id != erased.pseudonym], [], ExclusionRules())
        assert {(s["kommunekode"], s["maalgruppe"]): s["eligible"] for s in frame["strata"]} == domain.frame_counts()
        assert frame["exclusions"] == {r.value: n for r, n in domain.counts.items()}

        r = await client.post("/rounds/e/draws", json={"seed": 3, "sample_per_stratum": 1000}, headers=bearer(token))
        assert r.status_code == 201, r.text
        assert r.json()["population"] == r.json()["sampled"] == sum(domain.frame_counts().values())
        stored = (await client.get(f"/rounds/e/draws/{r.json()['draw_id']}/margins", headers=bearer(token))).json()
        expected = margins(domain.eligible)
        by_kommune = {m["kommunekode"]: m for m in stored["municipalities"]}
        assert by_kommune["101"]["population"] == expected.municipalities["101"]
        assert by_kommune["101"]["margins"] == expected.for_municipality("101")
        events = await consume_sample(kafka_bootstrap, topic_prefix, "e", r.json()["sampled"])
        assert erased.pseudonym not in {p.pseudonym for _, e in events for p in e.persons}


async def test_a_v1_population_is_still_consumed_and_its_contacts_are_not_kept(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    """population.received v1 chunks published before ingest kept the contacts may still sit on
    the topic: sampling must take their citizens into the frame like v2's, and keep none of the
    sealed contacts they carry, in any table, nor pass them on in sample.drawn."""
    token = admin(dev_issuer)
    old = with_contacts("v", citizens("v", "101", 150, seed=13))  # v1, with sealed contacts
    new = citizens("v", "147", 60, seed=14)  # v2: one round can mix them while ingest moves over
    chunks = delivery("v", "101", old, reference_date=REF, chunk_size=40) + delivery("v", "147", new, reference_date=REF)
    assert {(c.event_type, c.event_version) for c in chunks} == {("population.received", 1), ("population.received", 2)}
    async with running_app(create_app(settings_from_env(SamplingSettings, service_env))) as client:
        await produce(kafka_bootstrap, topic_prefix, chunks)
        frame = await wait_for_frame(client, token, "v", {"101": 150, "147": 60})
        # The v1 citizens are in the frame with their flags, exactly as v2's would be.
        domain = apply_exclusions(frame_units("101", old) + frame_units("147", new), [], ExclusionRules())
        assert {(s["kommunekode"], s["maalgruppe"]): s["eligible"] for s in frame["strata"]} == domain.frame_counts()
        assert frame["exclusions"] == {r.value: n for r, n in domain.counts.items()}

        # No contact anywhere in sampling's schema: no column for one (migration 0007), and no
        # row of any table (frame, processed marks, outboxes, audit, ...) holds a ciphertext.
        ciphertexts = [p.contact.ciphertext for p in old]
        engine = create_async_engine(to_async_url(service_env["DATABASE_URL"]))
        try:
            async with engine.connect() as conn:
                columns = (
                    await conn.execute(
                        sa.text("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'sampling'")
                    )
                ).all()
                assert ("frame_unit", "pseudonym") in columns and not [c for c in columns if "contact" in c.column_name]
                tables = {table for table, _ in columns}
                for table in tables:
                    found = await conn.scalar(
                        sa.text(f"SELECT count(*) FROM sampling.{table} x, unnest(CAST(:c AS text[])) c WHERE strpos(x::text, c) > 0"),
                        {"c": ciphertexts},
                    )
                    assert found == 0, table
        finally:
            await engine.dispose()

        # The draw takes the v1 citizens like any others and publishes v2 without contacts.
        r = await client.post("/rounds/v/draws", json={"seed": 5, "sample_per_stratum": 1000}, headers=bearer(token))
        assert r.status_code == 201, r.text
        assert r.json()["sampled"] == sum(domain.frame_counts().values())
        events = await consume_sample(kafka_bootstrap, topic_prefix, "v", r.json()["sampled"])
        drawn = {p.pseudonym for _, e in events for p in e.persons}
        assert drawn == {u.unit_id for u in domain.eligible}
        assert not any(c.encode() in raw for raw, _ in events for c in ciphertexts)
