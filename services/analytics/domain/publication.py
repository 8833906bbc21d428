"""A round's published indicator tables, computed from aggregated answer counts (no I/O).

Why counts are enough
---------------------
Every indicator is a ratio estimator of a 0/1 or 1..5 variable over a domain (a cell), and the
design weight is constant within a stratum (``w_h = N_h / n_h``, respondents' n_h, see
:mod:`.estimators`). The Taylor-linearised variance of :class:`~.estimators.StratifiedDesign`
then depends on a stratum's units only through how many of them sit in the domain with each
answer: with ``z_hi = w_h (y_hi - ybar) / W`` for units in the domain and 0 elsewhere,

    sum_i z_hi   = w_h / W   * sum_c m_hc (y_c - ybar)
    sum_i z_hi^2 = (w_h/W)^2 * sum_c m_hc (y_c - ybar)^2
    V = sum_h (1 - f_h) n_h / (n_h - 1) * (sum z^2 - (sum z)^2 / n_h)

where ``m_hc`` counts the domain's units of stratum h answering category c. So analytics keeps
an incremental tally (round x stratum x bands x question x answer code) and never needs the
response rows to publish; :func:`estimate_from_counts` reproduces ``StratifiedDesign.mean`` (and
the unweighted design) to rounding, which the tests check against the domain and R.

Tables
------
Per question and per dimension d in (maalgruppe, gender, age_band, duration_band) one table
municipality x d, with its margins: municipality totals, national per level of d, and the
national total. Response rates: respondents per municipality x target group and municipality x
dispatch arm, with the same margins. All of a round's tables go through one call of
:func:`~.suppression.suppress`, so a number hidden in one table cannot be recovered from another.
The suppression count of a question cell is the number of *valid* (scale) answers: the mean and
the top-two box rest on them, so a cell is published only when at least ``min_count`` citizens
gave a scale answer ("Ved ikke" alone never publishes a cell).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .answers import CODES, DONT_KNOW, SCORES
from .estimators import Estimate, normal_quantile
from .suppression import TOTAL, CellDecision, CountTable, SuppressedTable, suppress

DIMENSIONS: tuple[str, ...] = ("maalgruppe", "gender", "age_band", "duration_band")
RATE_DIMENSIONS: tuple[str, ...] = ("maalgruppe", "arm")
NATIONAL = "national"
ALL_LEVELS = "total"
NO_ARM = "none"
_CENSUS_EPSILON = 1e-7  # as the domain estimator (and R): 1 - f_h below this is a census

# Indicators in column order; the distribution is one share per score plus "Ved ikke".
INDICATORS: tuple[str, ...] = ("mean", "top2_share", "dont_know_share") + tuple(f"share_{s}" for s in SCORES)
ESTIMATE_SUFFIXES: tuple[str, ...] = ("", "_se", "_ci_low", "_ci_high", "_unweighted", "_unweighted_se")
INDICATOR_COLUMNS: tuple[str, ...] = (
    "round_id",
    "questionnaire_id",
    "question",
    "dimension",
    "kommunekode",
    "level",
    "n_answers",
    "n_valid",
    "n_dont_know",
    "suppressed",
    "suppression",
    "caution",
) + tuple(f"{ind}{suffix}" for ind in INDICATORS for suffix in ESTIMATE_SUFFIXES)
RATE_COLUMNS: tuple[str, ...] = (
    "round_id",
    "dimension",
    "kommunekode",
    "level",
    "invited",
    "answers",
    "response_rate",
    "suppressed",
    "suppression",
    "caution",
)


@dataclass(frozen=True, slots=True)
class StratumInfo:
    kommunekode: str
    maalgruppe: str
    respondents: int  # n_h: respondents of the round in the stratum
    population: int | None  # N_h from sample.drawn; None until the frame has arrived


@dataclass(frozen=True, slots=True)
class AnswerCount:
    """Answers of one stratum, grouped by one background dimension ("total": not grouped)."""

    stratum: str
    dimension: str
    level: str
    question: str
    code: str
    n: int


# The tallies as the service loads them: (stratum, dimension, level, question, counts per answer
# code in CODES order), one row per group instead of one AnswerCount per code. Building tens of
# thousands of frozen AnswerCount objects took longer than the query that returned them.
GroupedCounts = tuple[str, str, str, str, tuple[int, ...]]
_CODE_INDEX = {code: i for i, code in enumerate(CODES)}


@dataclass(frozen=True, slots=True)
class RateCount:
    stratum: str
    kommunekode: str
    maalgruppe: str
    arm: str
    invited: int
    answered: int


# -- estimation from counts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stratum:
    n: int  # units of the stratum in the analysis file
    weight: float
    fpc: float  # 1 - n/N, or 1 without a population size


def estimate_from_counts(
    values: Mapping[Hashable, Mapping[float, int]],
    strata: Mapping[Hashable, _Stratum],
    degrees_of_freedom: int,
    level: float = 0.95,
) -> Estimate | None:
    """The ratio estimator of :meth:`StratifiedDesign.mean` from per-stratum value counts.

    ``values[h][y]`` is how many units of stratum h are in the domain with value y. None when
    the domain has no unit with a value.
    """
    total_w = math.fsum(strata[h].weight * m for h, vc in values.items() for m in vc.values())
    n_inside = sum(m for vc in values.values() for m in vc.values())
    if n_inside == 0:
        return None
    estimate = math.fsum(strata[h].weight * y * m for h, vc in values.items() for y, m in vc.items()) / total_w
    parts = []
    for h, vc in values.items():
        s = strata[h]
        if s.fpc < _CENSUS_EPSILON or not any(vc.values()):
            continue  # census stratum, or no unit in the domain: every z is 0
        scale = s.weight / total_w
        sum_z = scale * math.fsum(m * (y - estimate) for y, m in vc.items())
        sum_z2 = scale * scale * math.fsum(m * (y - estimate) ** 2 for y, m in vc.items())
        if s.n == 1:
            parts.append(s.fpc * sum_z2)  # lonely stratum, "adjust": centred at 0
        else:
            parts.append(s.fpc * s.n / (s.n - 1) * max(sum_z2 - sum_z * sum_z / s.n, 0.0))
    se = math.sqrt(math.fsum(parts))
    q = normal_quantile(level)
    return Estimate(estimate, se, estimate - q * se, estimate + q * se, level, n_inside, total_w, degrees_of_freedom)


def design_strata(strata: Mapping[str, StratumInfo]) -> dict[str, _Stratum]:
    """Weights N_h / n_h and the fpc; without a frame (N_h unknown) weight 1 and no fpc."""
    out = {}
    for h, info in strata.items():
        n = max(info.respondents, 1)
        if info.population is None:
            out[h] = _Stratum(n, 1.0, 1.0)
        else:
            big_n = max(info.population, n)  # a frame smaller than the answers is a data error
            out[h] = _Stratum(n, big_n / n, 1.0 - n / big_n)
    return out


@dataclass(frozen=True, slots=True)
class CellEstimates:
    n_answers: int
    n_valid: int
    n_dont_know: int
    weighted: dict[str, Estimate | None]
    unweighted: dict[str, Estimate | None]


def _indicator_values(codes: Mapping[str, int]) -> dict[str, dict[float, int]]:
    """Per indicator: value -> count of one stratum's units in the domain with that value."""
    valid = sum(codes.get(s, 0) for s in SCORES)
    answered = valid + codes.get(DONT_KNOW, 0)
    top = codes.get("4", 0) + codes.get("5", 0)
    out = {
        "mean": {float(s): codes.get(s, 0) for s in SCORES},
        "top2_share": {1.0: top, 0.0: valid - top},
        "dont_know_share": {1.0: codes.get(DONT_KNOW, 0), 0.0: valid},
    }
    for s in SCORES:
        out[f"share_{s}"] = {1.0: codes.get(s, 0), 0.0: answered - codes.get(s, 0)}
    return out


def cell_estimates(
    by_stratum: Mapping[str, Mapping[str, int]],
    design: Mapping[str, _Stratum],
    n_total: int,
    degrees_of_freedom: int,
) -> CellEstimates:
    """Weighted and unweighted indicators of one cell from its strata's answer-code counts."""
    per_indicator: dict[str, dict[str, dict[float, int]]] = defaultdict(dict)
    merged: dict[str, int] = defaultdict(int)
    for h, codes in by_stratum.items():
        for ind, vc in _indicator_values(codes).items():
            per_indicator[ind][h] = vc
        for c, n in codes.items():
            merged[c] += n
    # The unweighted design: all respondents as one unstratified sample, no fpc (R: ids=~1).
    plain = {None: _Stratum(n_total, 1.0, 1.0)}
    plain_values = _indicator_values(merged)
    weighted = {ind: estimate_from_counts(per_indicator.get(ind, {}), design, degrees_of_freedom) for ind in INDICATORS}
    unweighted = {ind: estimate_from_counts({None: plain_values[ind]}, plain, n_total - 1) for ind in INDICATORS}
    valid = sum(merged.get(s, 0) for s in SCORES)
    return CellEstimates(valid + merged.get(DONT_KNOW, 0), valid, merged.get(DONT_KNOW, 0), weighted, unweighted)


# -- the publication ---------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def natural_key(text: str) -> tuple:
    """q2 before q10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _level_order(level: str) -> tuple:
    return (level != ALL_LEVELS, natural_key(level))


def _kommune_order(kommunekode: str) -> tuple:
    return (kommunekode != NATIONAL, natural_key(kommunekode))


_QUESTION, _DIMENSION, _KOMMUNE = (INDICATOR_COLUMNS.index(c) for c in ("question", "dimension", "kommunekode"))


@dataclass
class RoundPublication:
    """Everything published for a round, already suppressed: rows are ready for any reader.

    The indicator rows are held as tuples in INDICATOR_COLUMNS order (``indicator_table``) and
    made dicts where read: a publication crosses from the builder process to the service at
    every build of a live round, and ~5,000 tuples pickle and unpickle in half the time of as
    many dicts (and are built faster), while a read turns only the rows it returns into dicts.
    """

    round_id: str
    questionnaire_id: str | None
    min_count: int
    caution_below: int
    indicator_table: list[tuple] = field(default_factory=list)
    rate_rows: list[dict] = field(default_factory=list)
    # Made on first use, never pickled with the publication (see __getstate__): row positions by
    # selection, each row's dict, each selection's list of them.
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _dicts: list = field(default_factory=list, init=False, repr=False, compare=False)
    _selections: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_index": {}, "_dicts": [], "_selections": {}}

    @property
    def indicator_rows(self) -> list[dict]:
        """Every indicator row as a dict."""
        return self.indicators()

    def questions(self) -> list[str]:
        return sorted({r[_QUESTION] for r in self.indicator_table}, key=natural_key)

    def indicators(self, question: str | None = None, dimension: str | None = None, kommunekode: str | None = None) -> list[dict]:
        """Indicator rows of one question, dimension and/or municipality, in table order, from
        an index built on first use (a publication is never changed once built). A row's dict
        is made once, when first read, and shared by every selection that contains it."""
        key = (question, dimension, kommunekode)
        rows = self._selections.get(key)
        if rows is not None:
            return rows
        if not self._dicts:
            self._dicts.extend([None] * len(self.indicator_table))
        if key == (None, None, None):
            positions = range(len(self.indicator_table))
        else:
            if not self._index:
                index: dict[tuple, list[int]] = defaultdict(list)
                for i, r in enumerate(self.indicator_table):
                    q, d, k = r[_QUESTION], r[_DIMENSION], r[_KOMMUNE]
                    for wanted in ((q, None, None), (None, d, None), (None, None, k), (q, d, None), (q, None, k), (None, d, k), (q, d, k)):
                        index[wanted].append(i)
                self._index.update(index)
            positions = self._index.get(key, [])
        dicts, table = self._dicts, self.indicator_table
        for i in positions:
            if dicts[i] is None:
                dicts[i] = dict(zip(INDICATOR_COLUMNS, table[i]))
        rows = self._selections[key] = [dicts[i] for i in positions]
        return rows


def _status(decision: CellDecision) -> dict:
    return {"suppressed": decision.suppressed, "suppression": decision.status.value, "caution": decision.caution}


def _label(value: Hashable, outer: str) -> str:
    return outer if value is TOTAL else str(value)


def build_publication(
    round_id: str,
    questionnaire_id: str | None,
    strata: Mapping[str, StratumInfo],
    answer_counts: Iterable[AnswerCount | GroupedCounts],
    rate_counts: Iterable[RateCount],
    *,
    min_count: int = 5,
    caution_below: int = 20,
) -> RoundPublication:
    publication = RoundPublication(round_id, questionnaire_id, min_count, caution_below)
    publication.indicator_table = build_indicator_rows(
        round_id, questionnaire_id, strata, answer_counts, min_count=min_count, caution_below=caution_below
    )
    publication.rate_rows = build_rate_rows(round_id, rate_counts, min_count=min_count, caution_below=caution_below)
    return publication


def build_indicator_rows(
    round_id: str,
    questionnaire_id: str | None,
    strata: Mapping[str, StratumInfo],
    answer_counts: Iterable[AnswerCount | GroupedCounts],
    *,
    min_count: int = 5,
    caution_below: int = 20,
) -> list[tuple]:
    """The indicator tables of a round, suppressed, in table order: one tuple per row, in
    INDICATOR_COLUMNS order.

    Suppression runs per question: the tables of one measure (``valid:<question>``) are linked
    by shared cells, tables of different measures never are (no equation of the attacker or
    line of the line rule spans two measures), so one :func:`suppress` call per measure decides
    exactly what one call over the whole round decides (tested).

    The counts are held as one array ``(question, stratum, slot, answer code)``, a slot being
    "all" or one level of one dimension, and every cell of every table (municipality or
    national x slot) is estimated at once with numpy (:func:`_ratio_estimates`): a cell takes
    every stratum of its municipality (or of the country), in sorted order, strata without
    answers in the cell adding exact zeros, so its figures equal :func:`cell_estimates` on its
    counts (tested) and depend only on the tallies.
    """
    design = design_strata(strata)
    n_total = sum(s.respondents for s in strata.values())
    kommuner = sorted({s.kommunekode for s in strata.values()}, key=natural_key)

    # One (question, stratum, dimension, level, counts in CODES order) per input row; a "total"
    # row is also the stratum's row of its target group (strata nest in target groups).
    grouped: list[GroupedCounts] = []
    for row in answer_counts:
        if isinstance(row, AnswerCount):
            if row.code not in _CODE_INDEX or row.n <= 0:
                continue
            vector = [0] * len(CODES)
            vector[_CODE_INDEX[row.code]] = row.n
            row = (row.stratum, row.dimension, row.level, row.question, vector)
        grouped.append(row)
    # Negative counts (never from the tallies) count as none; a group without answers is dropped
    # before its question or level is seen.
    vectors = np.maximum(np.array([row[4][: len(CODES)] for row in grouped], dtype=float).reshape(-1, len(CODES)), 0.0)
    present = vectors.any(axis=1)
    grouped = list(itertools.compress(grouped, present.tolist()))
    vectors = vectors[present]
    if not grouped:
        return []

    # A "total" row is also the stratum's row of its target group (strata nest in target groups).
    is_total = [row[1] == "total" for row in grouped]
    group_of_total = [("maalgruppe", strata[row[0]].maalgruppe) for row, total in zip(grouped, is_total) if total]
    questions = sorted({row[3] for row in grouped}, key=natural_key)
    seen_levels = {(row[1], row[2]) for row in grouped} | set(group_of_total)
    levels = {dim: sorted({lvl for d, lvl in seen_levels if d == dim}, key=natural_key) for dim in DIMENSIONS}
    # Slots: 0 = all levels, then the levels of each dimension in order.
    slot_of: dict[tuple[str, str], int] = {("total", ALL_LEVELS): 0}
    for dim in DIMENSIONS:
        for lvl in levels[dim]:
            slot_of[(dim, lvl)] = len(slot_of)
    # Strata in sorted order (the national cells' order), and grouped by municipality in
    # sorted order within each (the municipal cells' order).
    names = sorted(strata)
    position = {h: i for i, h in enumerate(names)}
    kommune_index = {k: i for i, k in enumerate(kommuner)}
    by_kommune = sorted(range(len(names)), key=lambda i: (kommune_index[strata[names[i]].kommunekode], names[i]))
    q_index = {q: i for i, q in enumerate(questions)}
    n_q, n_h, n_s, n_c, n_k = len(questions), len(names), len(slot_of), len(CODES), len(kommuner)

    counts = np.zeros((n_q, n_h, n_s, n_c))
    q_of = np.array([q_index[row[3]] for row in grouped])
    h_of = np.array([position[row[0]] for row in grouped])
    np.add.at(counts, (q_of, h_of, np.array([slot_of.get((row[1], row[2]), 0) for row in grouped])), vectors)
    totals = np.array(is_total)
    np.add.at(counts, (q_of[totals], h_of[totals], np.array([slot_of[g] for g in group_of_total], dtype=int)), vectors[totals])

    # Valid (scale) answers per (question, municipality, slot) and (question, slot): the counts
    # suppression decides on.
    valid = counts[..., : len(SCORES)].sum(axis=3)  # (q, h, slot)
    kommune_of_h = np.array([kommune_index[strata[h].kommunekode] for h in names], dtype=int)
    valid_k = np.zeros((n_q, n_k, n_s))
    np.add.at(valid_k, (slice(None), kommune_of_h, slice(None)), valid)
    valid_k = valid_k.round().astype(int).tolist()

    decided: list[tuple[str, str, SuppressedTable]] = []
    for q in questions:
        qi = q_index[q]
        count_tables: list[CountTable] = []
        for dim in DIMENSIONS:
            cells = {
                (k, lvl): valid_k[qi][ki][slot_of[(dim, lvl)]]
                for ki, k in enumerate(kommuner)
                for lvl in levels[dim]
            }
            count_tables.append(CountTable(("kommunekode", dim), cells, (("kommunekode",), (dim,), ()), f"valid:{q}"))
        results = suppress(count_tables, min_count=min_count, caution_below=caution_below)
        decided.extend((q, dim, result) for dim, result in zip(DIMENSIONS, results))

    # Every (question, slot) cell: first the national one over all strata, then one per
    # municipality over its strata. Rows: one per (cell, stratum).
    design_rows = [design[h] for h in names]
    weight = np.array([s.weight for s in design_rows])
    fpc = np.array([s.fpc for s in design_rows])
    n_units = np.array([s.n for s in design_rows], dtype=float)
    national = counts.transpose(0, 2, 1, 3)  # (q, slot, h, code), h in sorted order
    municipal = counts[:, by_kommune].transpose(0, 2, 1, 3)  # h grouped by municipality
    n_blocks = n_q * n_s
    stacked = np.concatenate([national.reshape(n_blocks * n_h, n_c), municipal.reshape(n_blocks * n_h, n_c)])
    # First row of each municipality within a block (every municipality has a stratum).
    kommune_starts = np.flatnonzero(np.diff(np.concatenate([[-1], kommune_of_h[by_kommune]])))
    block_offsets = np.arange(n_blocks) * n_h
    starts = np.concatenate([block_offsets, n_blocks * n_h + (block_offsets[:, None] + kommune_starts[None, :]).ravel()])
    order = np.array(by_kommune, dtype=int)
    columns = _figure_columns(
        stacked,
        np.concatenate([np.tile(weight, n_blocks), np.tile(weight[order], n_blocks)]),
        np.concatenate([np.tile(fpc, n_blocks), np.tile(fpc[order], n_blocks)]),
        np.concatenate([np.tile(n_units, n_blocks), np.tile(n_units[order], n_blocks)]),
        starts,
        n_total,
    )
    figures = list(zip(*columns))  # one tuple per cell, in _FIGURE_NAMES order

    def figures_of(qi: int, k, slot: int) -> tuple:
        if k is TOTAL:
            return figures[qi * n_s + slot]
        return figures[n_blocks + (qi * n_s + slot) * n_k + kommune_index[k]]

    # Rows in table order (question, dimension, the national cells then each municipality's,
    # the total then each level), walked directly rather than sorted afterwards.
    rows: list[tuple] = []
    status_columns = {}  # (status, caution) -> (suppressed, suppression, caution)
    for q, dim, result in decided:
        qi = q_index[q]
        decisions = result.decisions
        level_slots = [(TOTAL, ALL_LEVELS, 0)] + [(lvl, lvl, slot_of[(dim, lvl)]) for lvl in levels[dim]]
        for k in (TOTAL, *kommuner):
            kommune_label = _label(k, NATIONAL)
            for lvl, level_label, slot in level_slots:
                decision = decisions.get((k, lvl))
                if decision is None:
                    continue  # a dimension with no answers at all has no table
                status = status_columns.get((decision.status, decision.caution))
                if status is None:
                    status = status_columns[(decision.status, decision.caution)] = tuple(_status(decision).values())
                values = _SUPPRESSED_VALUES if decision.suppressed else figures_of(qi, k, slot)
                rows.append((round_id, questionnaire_id, q, dim, kommune_label, level_label, *values[:3], *status, *values[3:]))
    return rows


def build_rate_rows(
    round_id: str, rate_counts: Iterable[RateCount], *, min_count: int = 5, caution_below: int = 20
) -> list[dict]:
    """Response-rate tables (respondents per municipality x target group and x arm, with
    margins), suppressed together (one measure), sorted."""
    rate_cells: dict[str, dict[tuple[str, str], list[int]]] = {d: defaultdict(lambda: [0, 0]) for d in RATE_DIMENSIONS}
    for r in rate_counts:
        for dim, lvl in (("maalgruppe", r.maalgruppe), ("arm", r.arm)):
            acc = rate_cells[dim][(r.kommunekode, lvl)]
            acc[0] += r.invited
            acc[1] += r.answered
    dims = [dim for dim in RATE_DIMENSIONS if rate_cells[dim]]
    count_tables = [
        CountTable(("kommunekode", dim), {key: v[1] for key, v in rate_cells[dim].items()}, (("kommunekode",), (dim,), ()), "respondents")
        for dim in dims
    ]
    decided = suppress(count_tables, min_count=min_count, caution_below=caution_below) if count_tables else []
    rows: list[dict] = []
    for dim, result in zip(dims, decided):
        acc_table = rate_cells[dim]
        invited_by: dict[tuple, int] = defaultdict(int)
        for (kk, ll), v in acc_table.items():
            for key in ((kk, ll), (kk, TOTAL), (TOTAL, ll), (TOTAL, TOTAL)):
                invited_by[key] += v[0]
        for key, decision in result.decisions.items():
            k, lvl = key
            invited = invited_by.get(key, 0)
            row = {
                "round_id": round_id,
                "dimension": dim,
                "kommunekode": _label(k, NATIONAL),
                "level": _label(lvl, ALL_LEVELS),
                "invited": invited,
                "answers": None if decision.suppressed else decision.count,
                "response_rate": None if decision.suppressed or not invited else decision.count / invited,
                **_status(decision),
            }
            rows.append({c: row[c] for c in RATE_COLUMNS})
    rows.sort(key=lambda r: (RATE_DIMENSIONS.index(r["dimension"]), _kommune_order(r["kommunekode"]), _level_order(r["level"])))
    return rows


# Per indicator (in INDICATORS order): which answer codes (CODES order) are in its base, and
# the value each code takes. Mirrors _indicator_values.
_IN_BASE = np.array(
    [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]] + [[1, 1, 1, 1, 1, 1]] * len(SCORES), dtype=float
)
_VALUE = np.array(
    [[1, 2, 3, 4, 5, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]]
    + [[1.0 if j == i else 0.0 for j in range(len(CODES))] for i in range(len(SCORES))],
    dtype=float,
)


def _ratio_estimates(
    counts: np.ndarray, weight: np.ndarray, fpc: np.ndarray, n: np.ndarray, starts: np.ndarray, level: float = 0.95
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Vectorised :func:`estimate_from_counts` for many domains at once.

    ``counts`` has one row per (domain, stratum) with the counts per answer code (CODES order),
    rows of a domain contiguous and starting at ``starts``; ``weight``, ``fpc`` and ``n`` are
    the row's stratum's. Returns per indicator (value, se, units in the base) per domain; a
    domain whose base is empty has value NaN (published as null).
    """
    q = normal_quantile(level)
    lengths = np.diff(np.append(starts, len(counts)))
    census = fpc < _CENSUS_EPSILON
    lonely = n == 1
    safe_n = np.where(lonely, 2.0, n)
    # Codes first, (code, row): sums over a row's six codes are then five whole-array adds, where
    # summing the short inner axis of (row, code) was a third of the estimates' time.
    by_code = np.ascontiguousarray(counts.T)
    out = []
    for base, value in zip(_IN_BASE, _VALUE):
        m = by_code * base[:, None]
        inside = m.sum(axis=0)
        n_inside = np.add.reduceat(inside, starts)
        total_w = np.add.reduceat(weight * inside, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimate = np.add.reduceat(weight * (value @ m), starts) / total_w
            scale = weight / np.repeat(total_w, lengths)
            dev = value[:, None] - np.repeat(estimate, lengths)[None, :]
            weighted_dev = m * dev
            sum_z = scale * weighted_dev.sum(axis=0)
            sum_z2 = scale * scale * (weighted_dev * dev).sum(axis=0)
            part = np.where(
                lonely, fpc * sum_z2, fpc * safe_n / (safe_n - 1) * np.maximum(sum_z2 - sum_z * sum_z / safe_n, 0.0)
            )
        part = np.where(census | (inside == 0), 0.0, part)
        se = np.sqrt(np.add.reduceat(part, starts))
        estimate = np.where(n_inside == 0, np.nan, estimate)
        out.append((estimate, se, q))
    return out


def estimate_cells(
    cells: list[Mapping[str, Mapping[str, int]]], design: Mapping[str, _Stratum], n_total: int
) -> list[dict]:
    """Published figures (counts, weighted and unweighted indicators) of many cells at once.

    Each cell is ``stratum -> code -> n``. Equal to :func:`cell_estimates` per cell to rounding
    (tested); strata are taken in sorted order so a cell's figures depend only on its counts.
    """
    if not cells:
        return []
    rows, weight, fpc, n, starts = [], [], [], [], []
    vectors: dict[int, list[int]] = {}  # the same counts object sits in several cells
    for by_stratum in cells:
        starts.append(len(rows))
        for h in sorted(by_stratum):
            codes = by_stratum[h]
            s = design[h]
            vector = vectors.get(id(codes))
            if vector is None:
                vector = vectors[id(codes)] = [codes.get(c, 0) for c in CODES]
            rows.append(vector)
            weight.append(s.weight)
            fpc.append(s.fpc)
            n.append(s.n)
        if not by_stratum:  # never for a published cell; keeps the segments well formed
            rows.append([0] * len(CODES))
            weight.append(1.0)
            fpc.append(1.0)
            n.append(1)
    counts = np.array(rows, dtype=float)
    columns = _figure_columns(counts, np.array(weight), np.array(fpc), np.array(n, dtype=float), np.array(starts), n_total)
    return [dict(zip(_FIGURE_NAMES, figures)) for figures in zip(*columns)]


_FIGURE_NAMES: tuple[str, ...] = ("n_answers", "n_valid", "n_dont_know") + tuple(
    f"{ind}{suffix}" for ind in INDICATORS for suffix in ESTIMATE_SUFFIXES
)
_SUPPRESSED_VALUES: tuple[None, ...] = (None,) * len(_FIGURE_NAMES)
# build_indicator_rows lays a row out in INDICATOR_COLUMNS order: the figures' counts, the
# suppression status, then the indicators.
assert INDICATOR_COLUMNS[6:] == _FIGURE_NAMES[:3] + ("suppressed", "suppression", "caution") + _FIGURE_NAMES[3:]


def _figure_columns(
    counts: np.ndarray, weight: np.ndarray, fpc: np.ndarray, n: np.ndarray, starts: np.ndarray, n_total: int
) -> list[list]:
    """The published figures (_FIGURE_NAMES order) of many cells as one list per figure.

    ``counts`` has one row per (cell, stratum), a cell's rows contiguous from ``starts``, with
    the stratum's weight, fpc and n beside; NaN (an empty base) is published as None."""
    merged = np.add.reduceat(counts, starts, axis=0)
    weighted = _ratio_estimates(counts, weight, fpc, n, starts)
    # The unweighted design: all respondents as one unstratified sample, no fpc (R: ids=~1).
    k = len(starts)
    plain_n = float(max(n_total, 1))
    unweighted = _ratio_estimates(merged, np.ones(k), np.ones(k), np.full(k, plain_n), np.arange(k))
    valid = merged[:, : len(SCORES)].sum(axis=1).astype(int)
    dont_know = merged[:, len(SCORES)].astype(int)
    columns = [(valid + dont_know).tolist(), valid.tolist(), dont_know.tolist()]
    for (w_est, w_se, q), (u_est, u_se, _) in zip(weighted, unweighted):
        w_missing, u_missing = np.isnan(w_est), np.isnan(u_est)
        for figures, missing in (
            (w_est, w_missing), (w_se, w_missing), (w_est - q * w_se, w_missing), (w_est + q * w_se, w_missing),
            (u_est, u_missing), (u_se, u_missing),
        ):
            if missing.any():
                # NaN (empty base) -> None without a Python loop: most cells of a live round's
                # dense arrays are empty or suppressed.
                boxed = figures.astype(object)
                boxed[missing] = None
                columns.append(boxed.tolist())
            else:
                columns.append(figures.tolist())
    return columns


# -- trends ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    difference: float
    se: float
    z: float
    p_value: float
    significant: bool


def change_between(previous: tuple[float, float], current: tuple[float, float], level: float = 0.95) -> Change:
    """Difference of two independent design-based estimates (value, se) with a two-sided z-test.

    Rounds are drawn independently, so Var(b - a) = SE_a^2 + SE_b^2.
    """
    (a, se_a), (b, se_b) = previous, current
    diff = b - a
    se = math.sqrt(se_a * se_a + se_b * se_b)
    if se == 0.0:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        z = diff / se
    p = math.erfc(abs(z) / math.sqrt(2.0))  # two-sided normal p-value
    return Change(diff, se, z, p, abs(z) > normal_quantile(level))
