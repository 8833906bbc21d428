"""The draw as PostgreSQL runs it: stratified simple random sampling without replacement as
a seeded random permutation per stratum, so the national frame (500,000 rows) never crosses
into Python.

Every unit gets a sort key from a seeded hash of its id — ``hashtextextended(unit_id, seed)``,
ported to Python as ``domain.draw.unit_key``, the key ``domain.draw_sample`` (the plain-Python
reference of this draw) ranks by — and within each stratum the n_h units with the smallest
keys are taken:

    row_number() OVER (PARTITION BY stratum ORDER BY key, unit_id) <= n_h

Only the units whose key is below a per-stratum threshold are sorted: with keys uniform over
the 64-bit range, about π_h·N_h of them fall below π_h's point of the range, so a threshold a
few standard deviations above it keeps every stratum's n_h smallest keys while the sort sees
~170,000 of a national frame's 500,000 units. Which units are drawn does not depend on it: the
units below a threshold are a prefix of the stratum's order, so if at least n_h pass, the
first n_h of them are the first n_h of all. If a stratum comes up short (about once in 1e7
national draws, or always with ``THRESHOLD_SIGMAS`` negative in tests), the caller draws again
without thresholds (``NO_THRESHOLD``).

If the keys behave like independent uniform draws, every subset of size n_h is equally likely
(simple random sampling without replacement, π = n_h / N_h); a key depends only on the seed and
the id, so the sample depends on neither the frame's order nor the other strata, and the
recorded seed reproduces it. Ties (the same 64-bit key for two ids, about once in 1e8 national
draws) are broken by the id's bytes, never by storage order.

The statement text is shared by the service and the statistical tests
(``tests/sampling/unit/test_sampling_draw_statistics.py`` runs thousands of seeded draws through
``select_sample`` against a real PostgreSQL), so the tests exercise the SQL that draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.sampling.domain import Allocation, SampledUnit, check_seed

# The key of domain.draw.unit_key (which ports it to Python): lookup3 over the id's UTF-8
# bytes, seeded, 64-bit. `unit` is a text column with a deterministic collation.
KEY_SQL = "hashtextextended({unit}, {seed})"


@dataclass(frozen=True)
class StrataArrays:
    """The allocation as parallel arrays in its (sorted) stratum order, which is the order of
    the draw's ``seq``. π and the weight come once per stratum from the allocation
    (``domain.allocation.inclusion_probability`` and ``design_weight``, as ``draw_sample`` takes
    them) and travel to PostgreSQL as binary float8: the SQL computes neither. `offset` is the
    seq of the stratum's first drawn unit."""

    kommunekode: list[str]
    maalgruppe: list[str]
    population: list[int]
    sample: list[int]
    pi: list[float]
    weight: list[float]
    offset: list[int]

    @classmethod
    def of(cls, allocation: Allocation) -> StrataArrays:
        arrays = cls([], [], [], [], [], [], [])
        seq = 0
        for s in allocation.strata.values():
            arrays.kommunekode.append(s.kommunekode)
            arrays.maalgruppe.append(s.maalgruppe)
            arrays.population.append(s.population)
            arrays.sample.append(s.sample)
            arrays.pi.append(s.inclusion_probability)
            arrays.weight.append(s.design_weight)
            arrays.offset.append(seq)
            seq += s.sample
        return arrays

    def params(self) -> list[list]:
        return [self.kommunekode, self.maalgruppe, self.population, self.sample, self.pi, self.weight, self.offset]


PARAMS = 9  # seed + StrataArrays.params() + thresholds

THRESHOLD_SIGMAS = 5.0  # tests set it negative to take the fallback path
NO_THRESHOLD = (1 << 63) - 1


def thresholds(allocation: Allocation, sigmas: float | None = None) -> list[int]:
    """Per stratum (allocation order), the largest key worth sorting: the point of the key range
    (signed 64-bit, uniform) below which π·N + `sigmas` standard deviations + 5 units are
    expected. NO_THRESHOLD where that is the whole stratum, or with `sigmas` None."""
    sigmas = THRESHOLD_SIGMAS if sigmas is None else sigmas
    out = []
    for s in allocation.strata.values():
        if not s.population or s.sample >= s.population:
            out.append(NO_THRESHOLD)
            continue
        pi = s.inclusion_probability
        q = pi + sigmas * math.sqrt(pi * (1 - pi) / s.population) + 5 / s.population
        out.append(NO_THRESHOLD if q >= 1 else max(-(1 << 63), min(NO_THRESHOLD, int(-(2.0**63) + q * 2.0**64))))
    return out


def picked_sql(frame_sql: str, first_param: int, extra: Sequence[tuple[str, str]] = ()) -> str:
    """A query over the rows of `frame_sql` (columns pseudonym, kommunekode, maalgruppe and any
    others, which are passed through) that yields the drawn units, in ``seq`` order, with
    their stratum's index (``idx``, 1-based, allocation order), their ``rank`` in the
    stratum's random order, ``pi``, ``weight`` and ``seq`` (0-based position in the draw: by
    stratum in allocation order, then the random order).

    Parameters from `first_param` on: the seed (bigint), then ``StrataArrays.params()``, the
    thresholds (bigint[], ``thresholds``), then one array per `extra` (name, element type) per
    stratum, passed through as columns. With thresholds, a stratum may come up short: the
    caller checks that the draw has n_h units per stratum and otherwise draws again with
    NO_THRESHOLD."""
    p = [f"${first_param + i}" for i in range(PARAMS + len(extra))]
    key = KEY_SQL.format(seed=f"{p[0]}::bigint", unit="f.pseudonym")
    extra_arrays = "".join(f", {p[PARAMS + i]}::{type_}[]" for i, (_, type_) in enumerate(extra))
    extra_names = "".join(f", {name}" for name, _ in extra)
    return f"""
        WITH alloc AS (
            SELECT * FROM unnest({p[1]}::text[], {p[2]}::text[], {p[3]}::int[], {p[4]}::int[], {p[5]}::float8[],
                                 {p[6]}::float8[], {p[7]}::int[], {p[8]}::bigint[]{extra_arrays})
                WITH ORDINALITY AS a(kommunekode, maalgruppe, population, n, pi, weight, seq_offset, threshold{extra_names}, idx)
            WHERE n > 0
        ),
        frame AS ({frame_sql}),
        ranked AS (
            SELECT f.*, a.idx, a.population, a.n, a.pi, a.weight, a.seq_offset{extra_names},
                   row_number() OVER (PARTITION BY a.idx ORDER BY {key}, f.pseudonym COLLATE "C") AS rank
            FROM frame f JOIN alloc a ON a.kommunekode = f.kommunekode AND a.maalgruppe = f.maalgruppe
            WHERE {key} <= a.threshold
        )
        SELECT *, (seq_offset + rank - 1)::int AS seq FROM ranked WHERE rank <= n
    """


async def select_sample(conn, frame_sql: str, frame_params: Sequence, allocation: Allocation, seed: int) -> list[SampledUnit]:
    """The units the service's draw takes from the frame `frame_sql` (asyncpg connection; no
    writes), in ``seq`` order, as ``domain.draw_sample`` returns them. For tests and audits."""
    check_seed(seed)
    sql = f"SELECT pseudonym, kommunekode, maalgruppe, pi, weight FROM ({picked_sql(frame_sql, len(frame_params) + 1)}) s ORDER BY seq"
    arrays = StrataArrays.of(allocation).params()
    rows = await conn.fetch(sql, *frame_params, seed, *arrays, thresholds(allocation))
    if len(rows) < allocation.total_sample:  # a stratum came up short below its threshold
        rows = await conn.fetch(sql, *frame_params, seed, *arrays, [NO_THRESHOLD] * len(allocation.strata))
    return [SampledUnit(*r) for r in rows]
