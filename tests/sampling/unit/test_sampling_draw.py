"""The draw's mechanics: reproducibility from the seed, independence of input order,
validation of the frame, the reference hash (PostgreSQL's, bit for bit), margins, and speed."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sampling_testkit import Frame, allocation_with_sizes

from services.sampling.domain import (
    MAALGRUPPER,
    MISSING_BAND,
    FrameUnit,
    SampleError,
    StratumKey,
    allocate,
    draw_sample,
    margins,
    new_seed,
    unit_key,
)
from services.sampling.domain.draw import SEED_BITS, _unit_keys
from services.sampling.draw_sql import KEY_SQL

SEED = 8_675_309


def make_frame(n: int, seed: int = 1, kommuner: int = 98) -> Frame:
    rng = random.Random(seed)
    codes = [str(101 + k) for k in range(kommuner)]
    return [
        (f"{rng.getrandbits(128):032x}", (rng.choice(codes), rng.choice(MAALGRUPPER)))
        for _ in range(n)
    ]


def ids_by_stratum(sample) -> dict[StratumKey, list[str]]:
    out: dict[StratumKey, list[str]] = {}
    for unit in sample:
        out.setdefault(unit.stratum, []).append(unit.unit_id)
    return out


@pytest.fixture(scope="module")
def medium() -> tuple[Frame, object]:
    frame = make_frame(20_000, kommuner=4)
    return frame, allocate(Counter(k for _, k in frame))


# --- reproducibility -----------------------------------------------------------------


@given(shuffle=st.integers(0, 2**32), seed=st.integers(0, 2**63 - 1))
@settings(max_examples=25, deadline=None)
def test_same_frame_and_seed_in_any_order_gives_the_same_sample(
    medium, shuffle: int, seed: int
) -> None:
    frame, allocation = medium
    shuffled = list(frame)
    random.Random(shuffle).shuffle(shuffled)
    assert draw_sample(shuffled, allocation, seed) == draw_sample(frame, allocation, seed)


def test_frame_can_be_any_iterable(medium) -> None:
    frame, allocation = medium
    assert draw_sample(iter(frame), allocation, SEED) == draw_sample(frame, allocation, SEED)


def test_different_seeds_give_different_samples(medium) -> None:
    frame, allocation = medium
    samples = [frozenset(u.unit_id for u in draw_sample(frame, allocation, s)) for s in range(10)]
    assert len(set(samples)) == 10
    # ... and not just different at the margin: two seeds overlap about as much as two
    # independent samples would (Σ n_h²/N_h expected common units).
    expected = sum(s.sample**2 / s.population for s in allocation.strata.values() if s.population)
    assert abs(len(samples[0] & samples[1]) - expected) < 6 * expected**0.5


def test_a_stratum_sample_ignores_the_rest_of_the_frame(medium) -> None:
    # A unit's random key depends only on (seed, unit_id): adding another municipality
    # to the extract must not change anyone else's draw.
    frame, allocation = medium
    extra = [(f"extra{i}", ("999", "dagpenge")) for i in range(500)]
    bigger = allocate(Counter(k for _, k in frame + extra))
    before = ids_by_stratum(draw_sample(frame, allocation, SEED))
    after = ids_by_stratum(draw_sample(frame + extra, bigger, SEED))
    assert {k: v for k, v in after.items() if k[0] != "999"} == before


def test_output_is_grouped_by_stratum_in_random_order(medium) -> None:
    frame, allocation = medium
    sample = draw_sample(frame, allocation, SEED)
    strata = [u.stratum for u in sample]
    assert strata == sorted(strata)
    first = ids_by_stratum(sample)[min(allocation.strata)]
    keys = [unit_key(SEED, uid) for uid in first]
    assert keys == sorted(keys)  # the random order, so any prefix is itself an SRS


def test_whole_population_and_empty_strata() -> None:
    frame = [(f"a{i}", ("101", "dagpenge")) for i in range(5)] + [
        (f"b{i}", ("101", "sygedagpenge")) for i in range(7)
    ]
    allocation = allocation_with_sizes(frame, {("101", "dagpenge"): 5, ("101", "sygedagpenge"): 0})
    sample = draw_sample(frame, allocation, SEED)
    assert sorted(u.unit_id for u in sample) == [f"a{i}" for i in range(5)]
    assert all(u.inclusion_probability == 1.0 and u.design_weight == 1.0 for u in sample)


# --- the random key ------------------------------------------------------------------

unit_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=40,
)


@given(st.lists(unit_ids, min_size=1, max_size=30), st.integers(0, 2**SEED_BITS - 1))
@settings(max_examples=200, deadline=None)
def test_vectorised_key_equals_the_reference(ids: list[str], seed: int) -> None:
    assert _unit_keys(ids, seed).tolist() == [unit_key(seed, i) for i in ids]


@given(st.integers(1, 40), st.integers(0, 2**SEED_BITS - 1))
@settings(max_examples=50, deadline=None)
def test_vectorised_key_fast_path_equals_the_reference(length: int, seed: int) -> None:
    rng = random.Random(seed)
    ids = ["".join(rng.choice("0123456789abcdef") for _ in range(length)) for _ in range(50)]
    assert _unit_keys(ids, seed).tolist() == [unit_key(seed, i) for i in ids]


@given(st.lists(unit_ids, min_size=1, max_size=30), st.integers(0, 2**SEED_BITS - 1))
@settings(max_examples=100, deadline=None)
def test_reference_key_is_postgresqls_hashtextextended(sql_draw, ids: list[str], seed: int) -> None:
    # The service ranks by draw_sql.KEY_SQL in PostgreSQL; the reference must be that, bit for bit.
    rows = sql_draw.fetch(
        f"SELECT {KEY_SQL.format(unit='u', seed='$2::bigint')} FROM unnest($1::text[]) WITH ORDINALITY AS t(u, o) ORDER BY o",
        ids,
        seed,
    )
    assert [r[0] for r in rows] == [unit_key(seed, i) for i in ids]


def test_keys_look_uniform_even_for_sequential_ids() -> None:
    # Top 4 bits of 16,000 keys of "P000001".. into 16 cells: χ² with 15 df must be
    # unremarkable (p > 1e-4 ⇔ χ² < 44.3).
    ids = [f"P{i:06d}" for i in range(16_000)]
    cells = Counter(((_unit_keys(ids, SEED) >> 60) & 15).tolist())  # keys are signed int64
    chi2 = sum((cells[c] - 1_000) ** 2 / 1_000 for c in range(16))
    assert chi2 < 44.3


def test_new_seed_is_in_range_and_fresh() -> None:
    seeds = {new_seed() for _ in range(100)}
    assert len(seeds) == 100 and all(0 <= s < 2**SEED_BITS for s in seeds)


# --- validation ----------------------------------------------------------------------


def test_rejects_frame_that_does_not_match_the_allocation(medium) -> None:
    frame, allocation = medium
    with pytest.raises(SampleError, match="does not match"):
        draw_sample(frame[:-1], allocation, SEED)
    with pytest.raises(SampleError, match="no allocation"):
        draw_sample(frame + [("x", ("999", "dagpenge"))], allocation, SEED)


def test_rejects_duplicate_ids() -> None:
    frame = [("a", ("101", "dagpenge")), ("b", ("101", "dagpenge")), ("a", ("147", "dagpenge"))]
    allocation = allocate(Counter(k for _, k in frame))
    with pytest.raises(SampleError, match="more than once"):
        draw_sample(frame, allocation, SEED)


@pytest.mark.parametrize("bad_id", ["", "a\0b"])
def test_rejects_unusable_ids(bad_id: str) -> None:
    frame = [(bad_id, ("101", "dagpenge")), ("ok", ("101", "dagpenge"))]
    with pytest.raises(SampleError):
        draw_sample(frame, allocate(Counter(k for _, k in frame)), SEED)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True, "7"])
def test_rejects_bad_seeds(seed: object) -> None:
    frame = [("a", ("101", "dagpenge"))]
    with pytest.raises(SampleError, match="seed"):
        draw_sample(frame, allocate({("101", "dagpenge"): 1}), seed)  # type: ignore[arg-type]


def test_empty_frame_gives_empty_sample() -> None:
    assert draw_sample([], allocate({}), SEED) == []


# --- margins -------------------------------------------------------------------------


def test_margins_count_strata_and_bands_within_municipality() -> None:
    units = [
        FrameUnit("1", "101", "dagpenge", bands={"koen": "K", "aldersgruppe": "18-29"}),
        FrameUnit("2", "101", "dagpenge", bands={"koen": "M", "aldersgruppe": "18-29"}),
        FrameUnit("3", "101", "aktivitetsparate", bands={"koen": "K", "aldersgruppe": "30-49"}),
        FrameUnit("4", "147", "dagpenge", bands={"koen": "K", "varighed": "0-6 mdr"}),
    ]
    result = margins(units)
    assert result.strata == {
        ("101", "aktivitetsparate"): 1,
        ("101", "dagpenge"): 2,
        ("147", "dagpenge"): 1,
    }
    assert result.municipalities == {"101": 3, "147": 1}
    assert result.variables["koen"] == {("101", "K"): 2, ("101", "M"): 1, ("147", "K"): 1}
    assert result.variables["varighed"][("101", MISSING_BAND)] == 3
    assert result.for_municipality("147") == {
        "maalgruppe": {"dagpenge": 1},
        "aldersgruppe": {MISSING_BAND: 1},
        "koen": {"K": 1},
        "varighed": {"0-6 mdr": 1},
    }
    # Every margin of a municipality sums to its population, as raking requires.
    for kode, total in result.municipalities.items():
        assert all(sum(m.values()) == total for m in result.for_municipality(kode).values())


def test_margins_restricted_to_named_variables() -> None:
    units = [FrameUnit("1", "101", "dagpenge", bands={"koen": "K", "aldersgruppe": "18-29"})]
    assert set(margins(units, variables=["koen"]).variables) == {"koen"}


# --- speed ---------------------------------------------------------------------------


def test_draw_of_500k_units_is_fast() -> None:
    # The target is ~0.5 s on a developer machine. Measured in CPU time, not wall time,
    # so a busy CI host does not fail it; the bound is loose, but an accidental O(n²)
    # or a per-unit Python hash (several seconds) would still trip it.
    frame = make_frame(500_000)
    allocation = allocate(Counter(k for _, k in frame))
    best = float("inf")
    for seed in range(2):
        start = time.process_time()
        sample = draw_sample(frame, allocation, seed)
        best = min(best, time.process_time() - start)
    assert len(sample) == allocation.total_sample
    assert best < 2.5
