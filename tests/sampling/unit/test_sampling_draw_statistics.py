"""The draw's statistics: inclusion probabilities are what the sample claims, every
subset is equally likely (simple random sampling), weights add up to N_h — and the same
checks demonstrably fail for biased samplers, so passing them means something.

All of it is deterministic: draw seeds come from fixed master seeds.

"The real sampler" is the draw the service runs: the SQL of ``services.sampling.draw_sql`` in a
real PostgreSQL (fixture ``sql_draw``); the plain-Python reference ``draw_sample`` must pass the
same checks and agree with it unit for unit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sampling_testkit import (
    Frame,
    InclusionReport,
    PostgresSampler,
    allocation_with_sizes,
    check_inclusion,
    seeds,
    stat_frame,
    subset_uniformity_p_value,
)

from services.sampling import draw_sql
from services.sampling.domain import Allocation, SampledUnit, StratumKey, draw_sample, unit_key

DRAWS = 2_000
MASTER_SEED = 20230828  # week 35, 2023: the pilot's first dispatch
SMALL_STRATUM: StratumKey = ("147", "job_og_uddannelsesparate")  # N = 6, n = 2: 15 subsets


@pytest.fixture(scope="module")
def setup() -> tuple[Frame, Allocation]:
    frame, sizes = stat_frame()
    return frame, allocation_with_sizes(frame, sizes)


@pytest.fixture(scope="module")
def report(setup: tuple[Frame, Allocation], sql_draw: PostgresSampler) -> InclusionReport:
    frame, allocation = setup
    return check_inclusion(sql_draw, frame, allocation, DRAWS, MASTER_SEED)


def _stratum_ids(frame: Frame, key: StratumKey) -> list[str]:
    return [uid for uid, k in frame if k == key]


# --- the real sampler ----------------------------------------------------------------


def test_inclusion_frequencies_match_stated_pi(
    setup: tuple[Frame, Allocation], report: InclusionReport
) -> None:
    frame, allocation = setup
    assert report.passed, report.problems
    # Sanity of the check itself: every unit was seen, π = 0 units never drawn.
    assert set(report.stated_pi) == {uid for uid, k in frame if allocation.strata[k].sample}
    assert all(report.counts[uid] == 0 for uid in _stratum_ids(frame, ("147", "dagpenge")))


def test_every_subset_equally_likely(
    setup: tuple[Frame, Allocation], report: InclusionReport
) -> None:
    frame, _ = setup
    p = subset_uniformity_p_value(report, SMALL_STRATUM, _stratum_ids(frame, SMALL_STRATUM), 2)
    assert p > 1e-3
    assert len(report.subsets[SMALL_STRATUM]) == math.comb(6, 2)  # all 15 occur


def test_the_python_reference_draws_the_same_samples(
    setup: tuple[Frame, Allocation], sql_draw: PostgresSampler
) -> None:
    frame, allocation = setup
    for seed in seeds(MASTER_SEED, 200):
        assert draw_sample(frame, allocation, seed) == sql_draw(frame, allocation, seed)


def test_a_stratum_short_below_its_sort_threshold_draws_the_same_sample(
    setup: tuple[Frame, Allocation], sql_draw: PostgresSampler, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thresholds below π·N make every stratum come up short: the fallback sorts everything.
    frame, allocation = setup
    assert any(t != draw_sql.NO_THRESHOLD for t in draw_sql.thresholds(allocation))
    monkeypatch.setattr(draw_sql, "THRESHOLD_SIGMAS", -3.0)
    for seed in seeds(MASTER_SEED, 50):
        assert sql_draw(frame, allocation, seed) == draw_sample(frame, allocation, seed)


def test_the_python_reference_passes_the_checks_too(setup: tuple[Frame, Allocation]) -> None:
    frame, allocation = setup
    report = check_inclusion(draw_sample, frame, allocation, DRAWS, MASTER_SEED + 1)
    assert report.passed, report.problems


# --- biased samplers the checks must catch -------------------------------------------

Sampler = Callable[[Frame, Allocation, int], list[SampledUnit]]


def _per_stratum(pick: Callable[[list[str], int, random.Random, int], list[str]]) -> Sampler:
    """Build a sampler that claims the correct π = n_h / N_h but picks with `pick`."""

    def sampler(frame: Frame, allocation: Allocation, seed: int) -> list[SampledUnit]:
        rng = random.Random(seed)
        grouped: dict[StratumKey, list[str]] = {}
        for uid, key in frame:
            grouped.setdefault(key, []).append(uid)
        out = []
        for key, ids in sorted(grouped.items()):
            s = allocation.strata[key]
            if s.sample:
                chosen = pick(sorted(ids), s.sample, rng, seed)
                out += [
                    SampledUnit(u, *key, s.sample / s.population, s.population / s.sample)
                    for u in chosen
                ]
        return out

    return sampler


def _naive_shuffle(ids: list[str], n: int, rng: random.Random, seed: int) -> list[str]:
    # The classic bug: swap each position with ANY position (not one at or after it).
    for i in range(len(ids)):
        j = rng.randrange(len(ids))
        ids[i], ids[j] = ids[j], ids[i]
    return ids[:n]


def _coarse_key(ids: list[str], n: int, rng: random.Random, seed: int) -> list[str]:
    # Too few random bits (4): ties are broken by id, which favours low ids.
    return sorted(ids, key=lambda u: (unit_key(seed, u) >> 60, u))[:n]


def _off_by_one(ids: list[str], n: int, rng: random.Random, seed: int) -> list[str]:
    # Draws from all but the last unit (range(N - 1)).
    return rng.sample(ids[:-1], n) if n < len(ids) else ids


def _systematic(ids: list[str], n: int, rng: random.Random, seed: int) -> list[str]:
    # Random start, fixed interval: every unit has the right π, but only N/n of the
    # C(N, n) samples can occur — not simple random sampling.
    start = rng.random() * len(ids) / n
    return [ids[int(start + i * len(ids) / n)] for i in range(n)]


def _reference(ids: list[str], n: int, rng: random.Random, seed: int) -> list[str]:
    return rng.sample(ids, n)  # Python's own SRSWOR: the checks' control


@pytest.mark.parametrize(
    "pick", [_naive_shuffle, _coarse_key, _off_by_one], ids=lambda f: f.__name__
)
def test_inclusion_check_fails_for_biased_samplers(
    setup: tuple[Frame, Allocation], pick: Callable[..., list[str]]
) -> None:
    frame, allocation = setup
    report = check_inclusion(_per_stratum(pick), frame, allocation, DRAWS, MASTER_SEED)
    assert not report.passed


def test_systematic_sampling_has_right_pi_but_fails_subset_uniformity(
    setup: tuple[Frame, Allocation],
) -> None:
    frame, allocation = setup
    report = check_inclusion(_per_stratum(_systematic), frame, allocation, DRAWS, MASTER_SEED)
    ids = _stratum_ids(frame, SMALL_STRATUM)
    assert not [p for p in report.problems if any(u in p for u in ids)]  # per-unit π is right
    assert subset_uniformity_p_value(report, SMALL_STRATUM, ids, 2) < 1e-6


def test_checks_accept_a_known_good_sampler(setup: tuple[Frame, Allocation]) -> None:
    # Guards against a check tuned to our sampler: Python's random.sample passes too.
    frame, allocation = setup
    report = check_inclusion(_per_stratum(_reference), frame, allocation, DRAWS, MASTER_SEED)
    assert report.passed, report.problems
    ids = _stratum_ids(frame, SMALL_STRATUM)
    assert subset_uniformity_p_value(report, SMALL_STRATUM, ids, 2) > 1e-3


# --- weights -------------------------------------------------------------------------


@st.composite
def frames_with_sizes(draw: st.DrawFn) -> tuple[Frame, dict[StratumKey, int]]:
    frame: Frame = []
    sizes: dict[StratumKey, int] = {}
    serial = 0
    for k in range(draw(st.integers(1, 4))):
        for g in draw(
            st.lists(
                st.sampled_from(["dagpenge", "sygedagpenge", "aktivitetsparate"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        ):
            population = draw(st.integers(1, 400))
            sizes[(str(101 + k), g)] = draw(st.integers(0, population))
            for _ in range(population):
                serial += 1
                frame.append((f"u{serial}", (str(101 + k), g)))
    return frame, sizes


@given(frames_with_sizes(), st.integers(0, 2**63 - 1))
@settings(max_examples=100, deadline=None)
def test_weights_sum_to_population_in_every_stratum(
    sql_draw: PostgresSampler, data: tuple[Frame, dict[StratumKey, int]], seed: int
) -> None:
    frame, sizes = data
    allocation = allocation_with_sizes(frame, sizes)
    sample = sql_draw(frame, allocation, seed)
    assert sample == draw_sample(frame, allocation, seed)  # the reference agrees, unit for unit
    weights: dict[StratumKey, list[float]] = {}
    for unit in sample:
        weights.setdefault(unit.stratum, []).append(unit.design_weight)
        s = allocation.strata[unit.stratum]
        assert unit.inclusion_probability == s.sample / s.population
        assert unit.design_weight == s.population / s.sample
    for key, s in allocation.strata.items():
        drawn = weights.get(key, [])
        assert len(drawn) == s.sample
        if s.sample:
            assert math.isclose(math.fsum(drawn), s.population, rel_tol=1e-12)
    assert len({u.unit_id for u in sample}) == len(sample)  # without replacement
