"""Exclusions before the draw, and the whole pure pipeline end to end."""

from __future__ import annotations

import math
import random

import pytest
from pydantic import ValidationError

from services.sampling.domain import (
    MAALGRUPPER,
    ExclusionReason,
    ExclusionRules,
    FrameUnit,
    allocate,
    apply_exclusions,
    draw_sample,
    margins,
)

R = ExclusionReason


def unit(uid: str, kode: str = "101", gruppe: str = "dagpenge", **flags: bool) -> FrameUnit:
    return FrameUnit(uid, kode, gruppe, **flags)


def test_each_reason_is_counted() -> None:
    units = [
        unit("a"),
        unit("b", forskerbeskyttet=True),
        unit("c", deceased=True),
        unit("d", emigrated=True),
        unit("e"),  # sampled last round
        unit("f", gruppe="sygedagpenge"),
    ]
    result = apply_exclusions(units, previous_rounds=[{"e"}])
    assert [u.unit_id for u in result.eligible] == ["a", "f"]
    assert result.counts == {
        R.FORSKERBESKYTTET: 1,
        R.DECEASED: 1,
        R.EMIGRATED: 1,
        R.RECENTLY_SAMPLED: 1,
    }
    assert [(u.unit_id, r) for u, r in result.excluded] == [
        ("b", R.FORSKERBESKYTTET),
        ("c", R.DECEASED),
        ("d", R.EMIGRATED),
        ("e", R.RECENTLY_SAMPLED),
    ]
    assert result.counts_by_stratum == {
        ("101", "dagpenge"): {
            R.FORSKERBESKYTTET: 1,
            R.DECEASED: 1,
            R.EMIGRATED: 1,
            R.RECENTLY_SAMPLED: 1,
        }
    }


def test_several_reasons_count_once_under_the_first_but_all_flags_are_kept() -> None:
    units = [unit("x", forskerbeskyttet=True, deceased=True), unit("y", emigrated=True)]
    result = apply_exclusions(units, previous_rounds=[{"x", "y"}])
    assert result.counts[R.FORSKERBESKYTTET] == 1 and result.counts[R.EMIGRATED] == 1
    assert sum(result.counts.values()) == len(result.excluded) == 2
    assert result.flag_counts == {
        R.FORSKERBESKYTTET: 1,
        R.DECEASED: 1,
        R.EMIGRATED: 1,
        R.RECENTLY_SAMPLED: 2,
    }


@pytest.mark.parametrize(
    ("rounds", "expected_excluded"),
    [(0, set()), (1, {"n1"}), (2, {"n1", "n2"}), (5, {"n1", "n2", "n3"})],
)
def test_only_the_last_n_rounds_count(rounds: int, expected_excluded: set[str]) -> None:
    units = [unit(u) for u in ("n1", "n2", "n3", "never")]
    history = [{"n1"}, {"n2"}, {"n3"}]  # newest first
    result = apply_exclusions(units, history, ExclusionRules(recent_rounds=rounds))
    assert {u.unit_id for u, _ in result.excluded} == expected_excluded
    assert result.counts[R.RECENTLY_SAMPLED] == len(expected_excluded)


def test_history_must_be_per_round() -> None:
    with pytest.raises(TypeError, match="newest first"):
        apply_exclusions([unit("a")], {"a"})  # type: ignore[arg-type]


def test_rules_validate() -> None:
    with pytest.raises(ValidationError):
        ExclusionRules(recent_rounds=-1)
    assert ExclusionRules().recent_rounds == 1


def test_eligible_frame_feeds_allocation_and_draw() -> None:
    units = [unit("a"), unit("b", gruppe="aktivitetsparate"), unit("c", deceased=True)]
    result = apply_exclusions(units)
    assert result.frame_counts() == {("101", "aktivitetsparate"): 1, ("101", "dagpenge"): 1}
    assert result.frame() == [("a", ("101", "dagpenge")), ("b", ("101", "aktivitetsparate"))]


def test_pipeline_weights_add_up_to_the_eligible_population() -> None:
    # Exclude → allocate → draw → margins on a synthetic extract of 30,000 citizens in
    # six municipalities: the weighted sample reproduces every eligible stratum count,
    # which is exactly what post-stratification later relies on.
    rng = random.Random(4)
    units = [
        FrameUnit(
            f"{rng.getrandbits(64):016x}",
            str(rng.choice([101, 147, 151, 153, 825, 860])),
            rng.choices(MAALGRUPPER, weights=[30, 20, 25, 18, 7])[0],
            forskerbeskyttet=rng.random() < 0.08,
            deceased=rng.random() < 0.005,
            bands={"koen": rng.choice("KM")},
        )
        for _ in range(30_000)
    ]
    last_round = {u.unit_id for u in rng.sample(units, 2_000)}
    result = apply_exclusions(units, [last_round])
    allocation = allocate(result.frame_counts())
    sample = draw_sample(result.frame(), allocation, seed=2023)
    population = margins(result.eligible)

    assert population.strata == result.frame_counts()
    weighted: dict = {}
    for s in sample:
        weighted[s.stratum] = weighted.get(s.stratum, 0.0) + s.design_weight
    for key, count in population.strata.items():
        if allocation.strata[key].sample:
            assert math.isclose(weighted[key], count, rel_tol=1e-12)
    excluded_ids = {u.unit_id for u, _ in result.excluded}
    assert not excluded_ids & {s.unit_id for s in sample}
    assert sum(result.counts.values()) + len(result.eligible) == len(units)
