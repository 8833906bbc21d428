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
from .suppression import STATUS_CODES, TOTAL, CellDecision, CellStatus, CountTable, decide, suppress

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


# Per status code (suppression.STATUS_CODES) and caution flag: a row's suppressed, suppression
# and caution columns.
_STATUS_COLUMNS: dict[tuple[int, bool], tuple[bool, str, bool]] = {
    (code, caution): (status is not CellStatus.PUBLISHED, status.value, caution)
    for code, status in enumerate(STATUS_CODES)
    for caution in (False, True)
}


@dataclass(eq=False)
class IndicatorTable:
    """A round's indicator rows, suppressed, held as columns (numpy) and made tuples where read.

    A live round's publication is rebuilt several times a second and crosses from the builder
    process to the service at every build, while a reader asks for a few of its ~5,000 rows.
    Built as tuples of ~60 Python objects each (from one CellDecision object per cell), a live
    round of 6,000 answers took 144 ms of the builder's CPU, and pickling and unpickling it 22 +
    27 ms more (the unpickling on the service's event loop); as columns it takes 49 ms and the
    pickling ~1.5 ms (measured together). :meth:`rows` makes only the rows read: all of them
    cost ~40 ms, once per version, where a reader asks for every row.

    Row ``i`` is the cell (question ``questions[question[i]]``, dimension
    ``DIMENSIONS[dimension[i]]``, municipality ``kommuner[kommune[i]]`` (0 is national), level
    ``levels[slot[i]]``), with its suppression status (``status``: a code of
    suppression.STATUS_CODES, and ``caution``) and its figures: row ``cell[i]`` of ``numbers``
    (answers, valid, "Ved ikke") and of ``values`` (the indicators in _FIGURE_NAMES order, NaN
    where the base is empty). A suppressed row's figures are never published (None).
    """

    round_id: str
    questionnaire_id: str | None
    questions: list[str]
    kommuner: list[str]
    levels: list[str]
    question: np.ndarray
    dimension: np.ndarray
    kommune: np.ndarray
    slot: np.ndarray
    status: np.ndarray
    caution: np.ndarray
    cell: np.ndarray
    numbers: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls, round_id: str, questionnaire_id: str | None) -> IndicatorTable:
        none = np.zeros(0, dtype=np.int32)
        return cls(round_id, questionnaire_id, [], [NATIONAL], [ALL_LEVELS], none, none, none, none, none,
                   np.zeros(0, dtype=bool), none, np.zeros((0, 3), dtype=np.int64), np.zeros((0, len(_FIGURE_NAMES) - 3)))

    def __len__(self) -> int:
        return len(self.question)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndicatorTable):
            return NotImplemented
        return self.rows() == other.rows()

    def positions(self, question: str | None = None, dimension: str | None = None, kommunekode: str | None = None) -> np.ndarray:
        """The rows of one question, dimension and/or municipality, in table order."""
        mask = np.ones(len(self), dtype=bool)
        for wanted, labels, column in (
            (question, self.questions, self.question), (dimension, DIMENSIONS, self.dimension), (kommunekode, self.kommuner, self.kommune),
        ):
            if wanted is None:
                continue
            if wanted not in labels:
                return np.zeros(0, dtype=np.intp)
            mask &= column == labels.index(wanted)
        return np.flatnonzero(mask)

    def rows(self, positions: np.ndarray | None = None) -> list[tuple]:
        """The rows at ``positions`` (default: all) as tuples in INDICATOR_COLUMNS order."""
        if positions is None:
            positions = np.arange(len(self))
        n = len(positions)
        cell = self.cell[positions]
        status = self.status[positions]
        caution = self.caution[positions]
        hidden = status != 0
        # One object array of the rows, filled a column at a time, then made tuples: numpy does
        # the boxing, and no Python loop runs per value.
        out = np.empty((n, len(INDICATOR_COLUMNS)), dtype=object)
        out[:, 0] = self.round_id
        out[:, 1] = self.questionnaire_id
        out[:, 2] = _labels(self.questions)[self.question[positions]]
        out[:, 3] = _labels(DIMENSIONS)[self.dimension[positions]]
        out[:, 4] = _labels(self.kommuner)[self.kommune[positions]]
        out[:, 5] = _labels(self.levels)[self.slot[positions]]
        numbers = self.numbers[cell].astype(object)
        numbers[hidden] = None
        out[:, 6:9] = numbers
        out[:, 9] = hidden.astype(object)
        out[:, 10] = _labels([st.value for st in STATUS_CODES])[status]
        out[:, 11] = caution.astype(object)
        values = self.values[cell]
        boxed = values.astype(object)
        boxed[np.isnan(values) | hidden[:, None]] = None
        out[:, 12:] = boxed
        return list(map(tuple, out.tolist()))


def _labels(labels) -> np.ndarray:
    out = np.empty(len(labels), dtype=object)
    out[:] = list(labels)
    return out


@dataclass
class RoundPublication:
    """Everything published for a round, already suppressed: rows are ready for any reader.

    The indicator rows are held as columns (:class:`IndicatorTable`, what crosses from the
    builder process) and made dicts where read, each row once, shared by every selection that
    contains it.
    """

    round_id: str
    questionnaire_id: str | None
    min_count: int
    caution_below: int
    indicator_columns: IndicatorTable | None = None
    rate_rows: list[dict] = field(default_factory=list)
    # Made on first use, never pickled with the publication (see __getstate__): each row's dict,
    # each selection's list of them.
    _dicts: list = field(default_factory=list, init=False, repr=False, compare=False)
    _selections: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.indicator_columns is None:
            self.indicator_columns = IndicatorTable.empty(self.round_id, self.questionnaire_id)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dicts": [], "_selections": {}}

    @property
    def indicator_table(self) -> list[tuple]:
        """Every indicator row as a tuple in INDICATOR_COLUMNS order."""
        return self.indicator_columns.rows()

    @property
    def indicator_rows(self) -> list[dict]:
        """Every indicator row as a dict."""
        return self.indicators()

    def questions(self) -> list[str]:
        table = self.indicator_columns
        present = set(np.unique(table.question).tolist())
        return sorted((q for i, q in enumerate(table.questions) if i in present), key=natural_key)

    def indicators(self, question: str | None = None, dimension: str | None = None, kommunekode: str | None = None) -> list[dict]:
        """Indicator rows of one question, dimension and/or municipality, in table order. A
        publication is never changed once built, so each selection is kept."""
        key = (question, dimension, kommunekode)
        rows = self._selections.get(key)
        if rows is not None:
            return rows
        table = self.indicator_columns
        if not self._dicts:
            self._dicts.extend([None] * len(table))
        positions = table.positions(question, dimension, kommunekode)
        dicts = self._dicts
        missing = [i for i in positions.tolist() if dicts[i] is None]
        if missing:
            for i, row in zip(missing, table.rows(np.array(missing, dtype=np.intp))):
                dicts[i] = dict(zip(INDICATOR_COLUMNS, row))
        rows = self._selections[key] = [dicts[i] for i in positions.tolist()]
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
    return RoundPublication(
        round_id, questionnaire_id, min_count, caution_below,
        indicator_columns=build_indicator_table(
            round_id, questionnaire_id, strata, answer_counts, min_count=min_count, caution_below=caution_below
        ),
        rate_rows=build_rate_rows(round_id, rate_counts, min_count=min_count, caution_below=caution_below),
    )


def build_indicator_table(
    round_id: str,
    questionnaire_id: str | None,
    strata: Mapping[str, StratumInfo],
    answer_counts: Iterable[AnswerCount | GroupedCounts],
    *,
    min_count: int = 5,
    caution_below: int = 20,
) -> IndicatorTable:
    """The indicator tables of a round, suppressed, in table order (question, dimension, the
    national cells then each municipality's, the total then each level).

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
        return IndicatorTable.empty(round_id, questionnaire_id)

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

    # Each question's tables suppressed together; the decisions laid out per (question,
    # dimension) block of rows. Every question's tables have the same shape (the same levels),
    # so a block's entries are found once per dimension.
    row_entries: dict[int, np.ndarray] = {}
    blocks: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (question, dimension, status, count) per row
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
        decided = decide(count_tables, min_count=min_count)
        for t, dim in enumerate(DIMENSIONS):
            if not levels[dim]:
                continue  # a dimension with no answers at all has no table
            entries = row_entries.get(t)
            if entries is None:
                position = {key: i for i, key in enumerate(decided.keys[t])}
                entries = row_entries[t] = np.array(
                    [position[(k, lvl)] for k in (TOTAL, *kommuner) for lvl in (TOTAL, *levels[dim])], dtype=np.intp
                )
            ids = decided.entry_ids[t][entries]
            blocks.append((qi, t, decided.status[ids], decided.count[ids]))

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
    numbers, values = _figure_arrays(
        stacked,
        np.concatenate([np.tile(weight, n_blocks), np.tile(weight[order], n_blocks)]),
        np.concatenate([np.tile(fpc, n_blocks), np.tile(fpc[order], n_blocks)]),
        np.concatenate([np.tile(n_units, n_blocks), np.tile(n_units[order], n_blocks)]),
        starts,
        n_total,
    )

    # Per dimension, a block's rows: municipality (0 national, then 1 + its index) and slot of
    # each, and where its figures are: cell ``q * n_s + slot`` (national) or
    # ``n_blocks + (q * n_s + slot) * n_k + municipality index``, i.e. offset + q x step.
    layout: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for t, dim in enumerate(DIMENSIONS):
        slots = np.array([0] + [slot_of[(dim, lvl)] for lvl in levels[dim]], dtype=np.intp)
        n_l = len(slots)
        kommune = np.repeat(np.arange(n_k + 1), n_l)
        slot = np.tile(slots, n_k + 1)
        national_row = kommune == 0
        offset = np.where(national_row, slot, n_blocks + slot * n_k + kommune - 1)
        step = np.where(national_row, n_s, n_s * n_k)
        layout[t] = (kommune, slot, offset, step)
    question = np.concatenate([np.full(len(st), qi, dtype=np.int32) for qi, _, st, _ in blocks])
    dimension = np.concatenate([np.full(len(st), t, dtype=np.int8) for _, t, st, _ in blocks])
    status = np.concatenate([st for _, _, st, _ in blocks])
    count = np.concatenate([c for _, _, _, c in blocks])
    return IndicatorTable(
        round_id,
        questionnaire_id,
        questions,
        [NATIONAL, *kommuner],
        [ALL_LEVELS] + [lvl for dim in DIMENSIONS for lvl in levels[dim]],
        question,
        dimension,
        np.concatenate([layout[t][0] for _, t, _, _ in blocks]),
        np.concatenate([layout[t][1] for _, t, _, _ in blocks]),
        status,
        (status == 0) & (count < caution_below),
        np.concatenate([layout[t][2] + qi * layout[t][3] for qi, t, _, _ in blocks]),
        numbers,
        values,
    )


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
    numbers, values = _figure_arrays(counts, np.array(weight), np.array(fpc), np.array(n, dtype=float), np.array(starts), n_total)
    boxed = values.astype(object)
    boxed[np.isnan(values)] = None
    return [dict(zip(_FIGURE_NAMES, (*c, *v))) for c, v in zip(numbers.tolist(), boxed.tolist())]


_FIGURE_NAMES: tuple[str, ...] = ("n_answers", "n_valid", "n_dont_know") + tuple(
    f"{ind}{suffix}" for ind in INDICATORS for suffix in ESTIMATE_SUFFIXES
)
# IndicatorTable.rows lays a row out in INDICATOR_COLUMNS order: the figures' counts, the
# suppression status, then the indicators.
assert INDICATOR_COLUMNS[6:] == _FIGURE_NAMES[:3] + ("suppressed", "suppression", "caution") + _FIGURE_NAMES[3:]


def _figure_arrays(
    counts: np.ndarray, weight: np.ndarray, fpc: np.ndarray, n: np.ndarray, starts: np.ndarray, n_total: int
) -> tuple[np.ndarray, np.ndarray]:
    """The published figures of many cells: (numbers, values), one row per cell, the counts
    (answers, valid, "Ved ikke") and the indicators (_FIGURE_NAMES order after the counts),
    NaN where an indicator's base is empty (published as None).

    ``counts`` has one row per (cell, stratum), a cell's rows contiguous from ``starts``, with
    the stratum's weight, fpc and n beside."""
    merged = np.add.reduceat(counts, starts, axis=0)
    weighted = _ratio_estimates(counts, weight, fpc, n, starts)
    # The unweighted design: all respondents as one unstratified sample, no fpc (R: ids=~1).
    k = len(starts)
    plain_n = float(max(n_total, 1))
    unweighted = _ratio_estimates(merged, np.ones(k), np.ones(k), np.full(k, plain_n), np.arange(k))
    valid = merged[:, : len(SCORES)].sum(axis=1).round().astype(np.int64)
    dont_know = merged[:, len(SCORES)].round().astype(np.int64)
    numbers = np.stack([valid + dont_know, valid, dont_know], axis=1)
    columns = []
    for (w_est, w_se, q), (u_est, u_se, _) in zip(weighted, unweighted):
        # An empty base has no estimate: its standard error (0) and interval are not figures either.
        w_missing, u_missing = np.isnan(w_est), np.isnan(u_est)
        for figures, missing in (
            (w_est, w_missing), (w_se, w_missing), (w_est - q * w_se, w_missing), (w_est + q * w_se, w_missing),
            (u_est, u_missing), (u_se, u_missing),
        ):
            columns.append(np.where(missing, np.nan, figures))
    return numbers, np.stack(columns, axis=1)


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
