"""A round's published indicator tables, computed from aggregated answer counts (no I/O). The
figures of a cell are estimated from its counts by :mod:`.count_estimates` (the indicators'
definitions: :mod:`.indicators`); a change between rounds is :mod:`.trends`'.

Tables
------
Per question and per dimension d in (maalgruppe, gender, age_band, duration_band) one table
municipality x d, with its margins: municipality totals, national per level of d, and the
national total. Response rates: respondents per municipality x target group, municipality x
dispatch arm, municipality x answer mode (web, paper, phone), municipality x language and, in a
round with an adaptive follow-up rule, municipality x follow-up arm, with the same margins. All of a round's tables go through one call of
:func:`~.suppression.suppress`, so a number hidden in one table cannot be recovered from another.
The suppression count of a question cell is the number of *valid* (scale) answers: the mean and
the top-two box rest on them, so a cell is published only when at least ``min_count`` citizens
gave a scale answer ("Ved ikke" alone never publishes a cell).
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from .answers import CODES
from .calibration import CALIBRATED_COLUMNS
from .count_estimates import (
    ESTIMATE_SUFFIXES,
    FIGURE_NAMES,
    WEIGHTED_SUFFIXES,
    StratumInfo,
    design_strata,
    estimate_cells,
    figure_arrays,
)
from .indicators import INDICATORS
from .suppression import CAUTION_BELOW, SUPPRESSION_THRESHOLD, TOTAL, CountTable, Decided, History, LastRelease, cell_key, decide

DIMENSIONS: tuple[str, ...] = ("maalgruppe", "gender", "age_band", "duration_band")
RATE_DIMENSIONS: tuple[str, ...] = ("maalgruppe", "arm", "mode", "language", "followup")
# How the citizens answered: known of respondents only (nobody is invited in a mode or a
# language), so a cell's invited are its municipality's (or the nation's) and its response rate
# is the share of them who answered that way; the shares of a municipality add up to its rate.
ANSWER_DIMENSIONS: tuple[str, ...] = ("mode", "language")
# The adaptive follow-up (dispatch's rule): the citizens assigned to its arms (followup_extra,
# followup_control) are RateCount rows of their own (``followup`` set); everyone else of a
# municipality is its level NO_FOLLOWUP. The table exists only in a round where someone was assigned.
FOLLOWUP = "followup"
NO_FOLLOWUP = "none"
# The respondent tables every published table follows (see respondent_pattern).
RESPONDENT_DIMENSIONS: tuple[str, ...] = DIMENSIONS + ("arm",) + ANSWER_DIMENSIONS + (FOLLOWUP,)
NATIONAL = "national"
ALL_LEVELS = "total"
NO_ARM = "none"
INDICATOR_COLUMNS: tuple[str, ...] = (
    "round_id",
    "questionnaire_id",
    "question",
    "dimension",
    "kommunekode",
    "level",
    "n_respondents",
    "n_answers",
    "n_valid",
    "n_dont_know",
    "suppressed",
    "caution",
    "few_answers",
    "weighting",
) + tuple(f"{ind}{suffix}" for ind in INDICATORS for suffix in ESTIMATE_SUFFIXES) + CALIBRATED_COLUMNS
RATE_COLUMNS: tuple[str, ...] = (
    "round_id",
    "dimension",
    "kommunekode",
    "level",
    "invited",
    "answers",
    "response_rate",
    "suppressed",
    "caution",
)
# The protected measure: people who answered the questionnaire, the same in every question's
# tables and the response-rate tables (see build_publication). The builder passes them as
# grouped counts under this question name, the count in the first code's place.
RESPONDENTS = "__respondents__"
RESPONDENT_MEASURE = "respondents"
# What the weighted figures of a row are (the ``weighting`` column): each stratum weighted by
# N_h / n_h; the same with the cell's suppressed strata as one weighting class; or none
# published (a breakdown by gender, age or duration: its weighted figures would give away how
# each stratum's answers split over the breakdown, see build_indicator_table).
WEIGHTINGS: tuple[str, ...] = ("strata", "strata_pooled", "unweighted")
# What a release publishes (docs/analytics-method.md, "Over time: releases"):
# * "rates": who answered, never what: the response-rate tables (respondents per municipality x
#   target group and x dispatch arm, with their margins) and no answer content at all. Its audit
#   is the respondent counts' static one against every earlier release's floors (counts only
#   grow) and the previous release in full, without the growth rule: a count moved by 1-4 tells
#   that someone answered, never what. The release loop's preliminaries publish this.
# * "totals": the national cells and each municipality's total, every question (an operator's
#   release point during fieldwork), held against the last release that published answers by
#   the growth rule: a cell published once is published again only after it moved by the
#   threshold.
# * "all": every cell (the final release).
SCOPES: tuple[str, ...] = ("all", "totals", "rates")
# The scopes whose release publishes answers (the releases the growth rule holds together).
CONTENT_SCOPES: tuple[str, ...] = ("all", "totals")
# How many "rates" releases since the last release with answers the next release is held to in
# full (their equations together); older ones hold it through their floors only
# (docs/analytics-method.md, Known limits).
RATES_HELD_IN_FULL = 24


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
    # The answers' mode and language ("": the invited, counted without them; models.RateTally).
    mode: str = ""
    language: str = ""
    # A follow-up arm's row (FOLLOWUP): its citizens and those who answered, counted in the
    # other rows as well; "": a tally row.
    followup: str = ""


def followup_levels(rate_counts: Iterable[RateCount]) -> dict[tuple[str, str], tuple[int, int]]:
    """(municipality, follow-up level) -> (invited, answered), NO_FOLLOWUP being the municipality's
    citizens in no arm (where it has any); empty when nobody was assigned."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    arms: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rate_counts:
        target = arms[(r.kommunekode, r.followup)] if r.followup else totals[r.kommunekode]
        target[0] += r.invited
        target[1] += r.answered
    if not arms:
        return {}
    out = {key: (n[0], n[1]) for key, n in arms.items()}
    for k, (invited, answered) in totals.items():
        in_arms = [v for (kk, _), v in out.items() if kk == k]
        rest = (max(invited - sum(v[0] for v in in_arms), 0), max(answered - sum(v[1] for v in in_arms), 0))
        if rest[0]:
            out[(k, NO_FOLLOWUP)] = rest
    return out


# -- the publication ---------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def natural_key(text: str) -> tuple:
    """q2 before q10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _level_order(level: str) -> tuple:
    return (level != ALL_LEVELS, natural_key(level))


def _kommune_order(kommunekode: str) -> tuple:
    return (kommunekode != NATIONAL, natural_key(kommunekode))


@dataclass(eq=False)
class IndicatorTable:
    """A round's indicator rows, suppressed, held as columns (numpy) and made tuples where read.

    A publication crosses from the builder process to the service, while a reader asks for a
    few of its thousands of rows: as columns it pickles in milliseconds, and :meth:`rows` makes
    only the rows read.

    Row ``i`` is the cell (question ``questions[question[i]]``, dimension
    ``DIMENSIONS[dimension[i]]``, municipality ``kommuner[kommune[i]]`` (0 is national), level
    ``levels[slot[i]]``), with its suppression status (``status``: a code of
    suppression.STATUS_CODES, published only as suppressed or not), ``caution``, its
    respondents, ``few`` (fewer valid answers to the question than the threshold: estimates
    withheld), ``weighting`` (index into WEIGHTINGS) and its figures: row ``cell[i]`` of
    ``numbers`` (answers, valid, "Ved ikke") and of ``values`` (the indicators in FIGURE_NAMES
    order, NaN where the base is empty). A suppressed row's figures are never published (None).
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
    respondents: np.ndarray
    few: np.ndarray
    weighting: np.ndarray
    # Per cell (as ``values``): the calibrated figures in CALIBRATED_COLUMNS order (NaN where
    # none; domain/calibration.py), published where the row's weighted figures are (a published
    # cell that is a union of whole strata). None: the round has no calibrated figures.
    calibrated: np.ndarray | None = None

    @classmethod
    def empty(cls, round_id: str, questionnaire_id: str | None) -> IndicatorTable:
        none = np.zeros(0, dtype=np.int32)
        return cls(round_id, questionnaire_id, [], [NATIONAL], [ALL_LEVELS], none, none, none, none, none,
                   np.zeros(0, dtype=bool), none, np.zeros((0, 3), dtype=np.int64), np.zeros((0, len(FIGURE_NAMES) - 3)),
                   np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int8))

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
        hidden = self.status[positions] != 0
        few = self.few[positions] & ~hidden
        weighting = self.weighting[positions]
        # One object array of the rows, filled a column at a time, then made tuples: numpy does
        # the boxing, and no Python loop runs per value.
        out = np.empty((n, len(INDICATOR_COLUMNS)), dtype=object)
        out[:, 0] = self.round_id
        out[:, 1] = self.questionnaire_id
        out[:, 2] = _labels(self.questions)[self.question[positions]]
        out[:, 3] = _labels(DIMENSIONS)[self.dimension[positions]]
        out[:, 4] = _labels(self.kommuner)[self.kommune[positions]]
        out[:, 5] = _labels(self.levels)[self.slot[positions]]
        respondents = self.respondents[positions].astype(object)
        respondents[hidden] = None
        out[:, 6] = respondents
        numbers = self.numbers[cell].astype(object)
        numbers[hidden] = None
        out[:, 7:10] = numbers
        out[:, 10] = hidden.astype(object)
        out[:, 11] = (self.caution[positions] & ~hidden).astype(object)
        out[:, 12] = few.astype(object)
        labels = _labels(WEIGHTINGS)[weighting]
        labels[hidden] = None
        out[:, 13] = labels
        values = self.values[cell]
        boxed = values.astype(object)
        withheld = np.isnan(values) | (hidden | few)[:, None]
        withheld |= (weighting == WEIGHTINGS.index("unweighted"))[:, None] & _WEIGHTED_COLUMN[None, :]
        boxed[withheld] = None
        out[:, 14:14 + values.shape[1]] = boxed
        out[:, 14 + values.shape[1]:] = None
        if self.calibrated is not None:
            calibrated = self.calibrated[cell]
            boxed = calibrated.astype(object)
            boxed[np.isnan(calibrated) | (hidden | few | (weighting != WEIGHTINGS.index("strata")))[:, None]] = None
            out[:, 14 + values.shape[1]:] = boxed
        return list(map(tuple, out.tolist()))


def _labels(labels) -> np.ndarray:
    out = np.empty(len(labels), dtype=object)
    out[:] = list(labels)
    return out


def _release_json(release: LastRelease) -> dict:
    return {
        "count": dict(sorted(release.count.items())),
        "hidden": sorted(release.hidden),
        "parts": {q: {k: list(v) for k, v in sorted(cells.items())} for q, cells in sorted(release.parts.items())},
    }


def _release_from_json(raw: Mapping) -> LastRelease:
    return LastRelease(
        {k: int(v) for k, v in raw["count"].items()},
        frozenset(raw["hidden"]),
        {q: {k: tuple(int(x) for x in v) for k, v in cells.items()} for q, cells in raw.get("parts", {}).items()},
    )


@dataclass(frozen=True)
class Baseline:
    """What a round's releases so far told their readers about the respondent tables: the
    history the next release is decided against (:class:`~.suppression.History`), as JSON
    between releases (the service stores it with each release).

    ``published``, ``published_parts`` and ``last`` are those of the releases that published
    answers (scopes "totals" and "all"): the growth rule holds the next such release against
    them. ``floor`` is what every release so far proved, "rates" releases included (each
    cell's lowest provable count: counts only grow). ``rates`` are the "rates" releases since
    ``last``, oldest first, in full (the latest :data:`RATES_HELD_IN_FULL`): the next release is
    held to their equations together (a reader holds them all), never by the growth rule.
    """

    published: dict[str, int] = field(default_factory=dict)
    floor: dict[str, int] = field(default_factory=dict)
    last: LastRelease | None = None  # the last release that published answers, in full (never published)
    published_parts: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)  # question -> cell -> parts
    rates: tuple[LastRelease, ...] = ()  # the "rates" releases since ``last``, oldest first
    shown: dict[str, int] = field(default_factory=dict)  # cells a "rates" release published since, at that value

    def to_json(self) -> dict:
        data = {"published": dict(sorted(self.published.items())), "floor": dict(sorted(self.floor.items()))}
        if self.published_parts:
            data["published_parts"] = {q: {k: list(v) for k, v in sorted(c.items())} for q, c in sorted(self.published_parts.items())}
        if self.last is not None:
            data["last"] = _release_json(self.last)
        if self.rates:
            data["rates"] = [_release_json(r) for r in self.rates]
        if self.shown:
            data["shown"] = dict(sorted(self.shown.items()))
        return data

    @classmethod
    def from_json(cls, data: Mapping | None) -> Baseline:
        data = data or {}
        last = _release_from_json(raw) if (raw := data.get("last")) else None
        rates = tuple(_release_from_json(raw) for raw in data.get("rates") or ())
        if not rates and (raw := data.get("previous")):  # a baseline stored with one "rates" release
            rates = (_release_from_json(raw),)
        return cls(
            {k: int(v) for k, v in (data.get("published") or {}).items()},
            {k: int(v) for k, v in (data.get("floor") or {}).items()},
            last,
            {q: {k: tuple(int(x) for x in v) for k, v in c.items()} for q, c in (data.get("published_parts") or {}).items()},
            rates,
            {k: int(v) for k, v in (data.get("shown") or {}).items()},
        )

    def history(self) -> History:
        """What a release that publishes answers is decided against: the last release with
        answers in full (the growth rule's), the "rates" releases since in full (counts only
        grow through them) and every release's floors."""
        return History(self.published, self.floor, self.last, self.published_parts, self.shown, self.rates)

    def rates_history(self) -> History:
        """What a "rates" release is decided against: every earlier release's floors, and the
        last release with answers and the "rates" releases since in full (counts only grow),
        no published values to grow from."""
        chain = ((self.last,) if self.last is not None else ()) + self.rates
        return History({}, self.floor, None, {}, {**self.published, **self.shown}, chain)


@dataclass
class RoundPublication:
    """Everything published for a round, already suppressed: rows are ready for any reader.

    The indicator rows are held as columns (:class:`IndicatorTable`, what crosses from the
    builder process) and made dicts where read, each row once, shared by every selection that
    contains it. ``baseline``: what the next release of the round is decided against.
    """

    round_id: str
    questionnaire_id: str | None
    min_count: int
    caution_below: int
    indicator_columns: IndicatorTable | None = None
    rate_rows: list[dict] = field(default_factory=list)
    baseline: Baseline = field(default_factory=Baseline)
    # How the figures were estimated beyond the design weights (published metadata): the
    # calibration's margins, bounds and report, and the lonely-stratum rule.
    method: dict = field(default_factory=dict)
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


def _label(value: Hashable, outer: str) -> str:
    return outer if value is TOTAL else str(value)


# -- the respondent tables: one suppression for every table of a round -------------------------


@dataclass(frozen=True)
class RespondentPattern:
    """The suppression of a round's respondent tables (municipality x each dimension of
    RESPONDENT_DIMENSIONS, with municipal and national totals), which every published table
    follows: a cell is published in every question's tables and the response-rate tables
    alike, or in none."""

    dimensions: tuple[str, ...]  # the tables' dimensions, in table order
    decided: Decided
    invited: dict[str, int]  # cell_key -> invited, where the rate tallies know it
    scope: str = "all"  # SCOPES

    def entry(self, dimension: str, kommunekode: str | None, level: str | None) -> int:
        """The identity number of a cell (None: the total over that coordinate); -1 for a cell
        the respondent tables do not have (never published)."""
        coords = []
        if kommunekode is not None:
            coords.append(("kommunekode", kommunekode))
        if level is not None:
            coords.append((dimension, level))
        return self._numbers.get(cell_key(RESPONDENT_MEASURE, coords), -1)

    @cached_property
    def _numbers(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.decided.keys_by_number)}

    def hidden(self, number: int) -> bool:
        return number < 0 or int(self.decided.status[number]) != 0

    def count(self, number: int) -> int:
        return 0 if number < 0 else int(self.decided.count[number])

    def baseline(self, previous: Baseline | None) -> Baseline:
        """The history after this release: published cells at their counts, hidden cells at
        the value last published (if ever) and at the audit's lower bound. A "rates" release
        only raises the floors and becomes the previous release: what the growth rule holds
        the next release that publishes answers against stays the last such release."""
        previous = previous or Baseline()
        published = dict(previous.published)
        floor = dict(previous.floor)
        lower = self.decided.lower
        keys = self.decided.keys_by_number
        if self.scope == "rates":
            for i, key in enumerate(keys):
                proved = int(self.decided.count[i]) if int(self.decided.status[i]) == 0 else (
                    None if lower is None else int(lower[i]))
                if proved is not None:
                    floor[key] = max(floor.get(key, 0), proved)
            shown = {**previous.shown}
            for i, key in enumerate(keys):
                if int(self.decided.status[i]) == 0:
                    shown[key] = int(self.decided.count[i])
            full = LastRelease(
                {key: int(c) for key, c in zip(keys, self.decided.count.tolist())},
                frozenset(key for i, key in enumerate(keys) if int(self.decided.status[i]) != 0),
            )
            rates = (*previous.rates, full)[-RATES_HELD_IN_FULL:]
            return Baseline(published, floor, previous.last, previous.published_parts, rates, shown)
        for i, key in enumerate(keys):
            if int(self.decided.status[i]) == 0:
                published[key] = floor[key] = int(self.decided.count[i])
            elif lower is not None:
                floor[key] = max(floor.get(key, 0), int(lower[i]))
        parts = {
            q: {key: tuple(int(x) for x in counts[:, i]) for i, key in enumerate(keys) if counts[0, i] >= 0}
            for q, counts in (self.decided.parts or {}).items()
        }
        published_parts = {q: dict(cells) for q, cells in previous.published_parts.items()}
        for q, cells in parts.items():
            kept = published_parts.setdefault(q, {})
            for i, key in enumerate(keys):
                if int(self.decided.status[i]) == 0 and key in cells:
                    kept[key] = cells[key]
        last = LastRelease(
            {key: int(c) for key, c in zip(keys, self.decided.count.tolist())},
            frozenset(key for i, key in enumerate(keys) if int(self.decided.status[i]) != 0),
            parts,
        )
        # A cell published now is held at this value; one a "rates" release published since the
        # last release with answers and hidden now keeps that value as the last it showed.
        now = {key for i, key in enumerate(keys) if int(self.decided.status[i]) == 0}
        shown = {k: v for k, v in previous.shown.items() if k not in now}
        return Baseline(published, floor, last, published_parts, shown=shown)


def respondent_pattern(
    strata: Mapping[str, StratumInfo],
    respondents: Mapping[tuple[str, str, str], int],
    rate_counts: Iterable[RateCount],
    *,
    min_count: int,
    baseline: Baseline | None = None,
    scope: str = "all",
    answers: Iterable[GroupedCounts] = (),
    audit_time_limit: float | None = None,
) -> RespondentPattern:
    """Decide the round's suppression once, on respondents.

    ``respondents``: (stratum, dimension, level) -> people, for the breakdowns (gender, age
    band, duration band); the target-group table is the strata's own respondents and the arm
    table the rate tallies'. Every table partitions the same respondents, so they are linked by
    their municipal and national totals. The published invited counts bound each target-group
    and arm cell from above (nobody answers who was not invited), which the audit gives the
    reader too; ``baseline``: the round's earlier releases; ``scope``: :data:`SCOPES`.
    ``answers``: the grouped answer counts; a published cell shows each question's answers per
    code, so the audit treats every question as a breakdown of the respondents (a reader who
    knows how a line's hidden cells answered, code by code, can narrow them where the
    respondents alone would not).
    """
    kommune_of = {h: s.kommunekode for h, s in strata.items()}
    cells: dict[str, dict[tuple[str, str], int]] = {d: defaultdict(int) for d in RESPONDENT_DIMENSIONS}
    for h, info in strata.items():
        cells["maalgruppe"][(info.kommunekode, info.maalgruppe)] += info.respondents
    for (h, dim, lvl), n in respondents.items():
        if dim in cells and h in kommune_of:
            cells[dim][(kommune_of[h], lvl)] += n
    invited: dict[str, int] = defaultdict(int)
    rate_counts = list(rate_counts)
    for (k, lvl), (n_invited, n_answered) in followup_levels(rate_counts).items():
        cells[FOLLOWUP][(k, lvl)] += n_answered
        for coords in ((("kommunekode", k), (FOLLOWUP, lvl)), ((FOLLOWUP, lvl),)):
            invited[cell_key(RESPONDENT_MEASURE, coords)] += n_invited
    for r in rate_counts:
        if r.followup:
            continue
        cells["arm"][(r.kommunekode, r.arm)] += r.answered
        for dim in ANSWER_DIMENSIONS:
            if how := getattr(r, dim):
                cells[dim][(r.kommunekode, how)] += r.answered
        k, a, arm = ("kommunekode", r.kommunekode), ("maalgruppe", r.maalgruppe), ("arm", r.arm)
        for coords in ((k, a), (k, arm), (k,), (a,), (arm,), ()):
            invited[cell_key(RESPONDENT_MEASURE, coords)] += r.invited
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    # A "rates" release publishes the response-rate tables only: the respondents by target
    # group and by arm, nothing of what anyone answered.
    wanted = RATE_DIMENSIONS if scope == "rates" else RESPONDENT_DIMENSIONS
    dims = tuple(d for d in RESPONDENT_DIMENSIONS if cells[d] and d in wanted)
    kommuner = sorted({k for d in dims for k, _ in cells[d]}, key=natural_key)
    tables = []
    for d in dims:
        lvls = sorted({lvl for _, lvl in cells[d]}, key=natural_key)
        table = {(k, lvl): cells[d].get((k, lvl), 0) for k in kommuner for lvl in lvls}
        tables.append(CountTable(("kommunekode", d), table, (("kommunekode",), (d,), ()), RESPONDENT_MEASURE))
        if invited and d in RATE_DIMENSIONS:
            # Every target-group and arm cell has its invited published, none (0) included: a
            # reader knows that a stratum nobody was invited from has no respondents. A mode or
            # language cell is bounded by its municipality's invited (and the nation's).
            for k in kommuner:
                for lvl in lvls:
                    bound = invited.get(cell_key(RESPONDENT_MEASURE, (("kommunekode", k),)), 0) if d in ANSWER_DIMENSIONS else 0
                    invited.setdefault(cell_key(RESPONDENT_MEASURE, (("kommunekode", k), (d, lvl))), bound)
            if d in ANSWER_DIMENSIONS:
                for lvl in lvls:
                    invited[cell_key(RESPONDENT_MEASURE, ((d, lvl),))] = invited.get(cell_key(RESPONDENT_MEASURE, ()), 0)
    if not tables:
        tables.append(CountTable(("kommunekode", "maalgruppe"), {}, (("kommunekode",), ("maalgruppe",), ()), RESPONDENT_MEASURE))
    withheld = set()
    if scope == "totals":
        for t in tables:
            d = t.dims[1]
            for k in kommuner:
                keys = [cell_key(RESPONDENT_MEASURE, (("kommunekode", k), (d, lvl))) for kk, lvl in t.cells if kk == k]
                # A municipality invited from one target group (or arm) only has that cell equal to
                # its total: it is the total, published with it.
                if d in RATE_DIMENSIONS and invited and sum(invited.get(key, 0) > 0 for key in keys) <= 1:
                    continue
                withheld.update(keys)
    per_question: dict[str, dict[str, dict[tuple[str, str], list[int]]]] = defaultdict(lambda: defaultdict(dict))
    for h, dim, lvl, question, vector in answers:
        if h not in kommune_of or question == RESPONDENTS:
            continue
        key, table = ((kommune_of[h], strata[h].maalgruppe), "maalgruppe") if dim == ALL_LEVELS else ((kommune_of[h], lvl), dim)
        if table not in dims or dim == "arm":
            continue
        have = per_question[question][table].get(key)
        if have is None:
            per_question[question][table][key] = list(vector)
        else:
            for c, v in enumerate(vector):
                have[c] += v
    breakdowns = {q: [by_table.get(d) if d not in ("arm", FOLLOWUP) + ANSWER_DIMENSIONS else None for d in dims]
                  for q, by_table in per_question.items()}
    baseline = baseline or Baseline()
    if scope == "rates":
        # Who answered, not what: no breakdown by answers, no growth rule; every earlier
        # release's floors and the previous release in full hold (counts only grow).
        decided = decide(
            tables, min_count=min_count, history=baseline.rates_history(), upper_bounds=invited, growth=False,
            audit_time_limit=audit_time_limit,
        )
    else:
        decided = decide(
            tables, min_count=min_count, history=baseline.history(), upper_bounds=invited, withheld=withheld,
            breakdowns=breakdowns, audit_time_limit=audit_time_limit,
        )
    return RespondentPattern(dims, decided, dict(invited), scope)


def build_publication(
    round_id: str,
    questionnaire_id: str | None,
    strata: Mapping[str, StratumInfo],
    answer_counts: Iterable[AnswerCount | GroupedCounts],
    rate_counts: Iterable[RateCount],
    *,
    min_count: int = SUPPRESSION_THRESHOLD,
    caution_below: int = CAUTION_BELOW,
    baseline: Baseline | None = None,
    scope: str = "all",
    calibrated: Mapping[tuple[str, str, str], tuple[float, ...]] | None = None,
    method: Mapping | None = None,
    lonely: str = "adjust",
) -> RoundPublication:
    """A release of a round: every table suppressed by one decision on respondents
    (:func:`respondent_pattern`), against the round's earlier releases (``baseline``), with the
    cells of its ``scope`` (:data:`SCOPES`; a "rates" release has no indicator rows).

    ``calibrated``: (question, kommunekode or NATIONAL, target group or ALL_LEVELS) -> the
    figures in CALIBRATED_COLUMNS order (domain/calibration.py), put beside the cells' weighted
    figures and published exactly where those are (never for a suppressed cell). ``method``: the
    published metadata of how the figures were made. ``lonely``: the rule for strata with one
    respondent in the weighted figures' variance (calibration.LONELY_RULES)."""
    rate_counts = list(rate_counts)
    if scope == "rates":
        pattern = respondent_pattern(strata, {}, rate_counts, min_count=min_count, baseline=baseline, scope=scope)
        return RoundPublication(
            round_id, questionnaire_id, min_count, caution_below,
            rate_rows=build_rate_rows(round_id, rate_counts, pattern, caution_below=caution_below),
            baseline=pattern.baseline(baseline),
        )
    grouped, respondents = _split_respondents(answer_counts)
    pattern = respondent_pattern(
        strata, respondents, rate_counts, min_count=min_count, baseline=baseline, scope=scope, answers=grouped,
    )
    table = build_indicator_table(
        round_id, questionnaire_id, strata, grouped, pattern, respondents, min_count=min_count, caution_below=caution_below,
        lonely=lonely,
    )
    if calibrated is not None:
        table.calibrated = _calibrated_cells(table, calibrated)
    return RoundPublication(
        round_id, questionnaire_id, min_count, caution_below,
        indicator_columns=table,
        rate_rows=build_rate_rows(round_id, rate_counts, pattern, caution_below=caution_below),
        baseline=pattern.baseline(baseline),
        method=dict(method or {}),
    )


def _calibrated_cells(table: IndicatorTable, calibrated: Mapping[tuple[str, str, str], tuple[float, ...]]) -> np.ndarray:
    """The calibrated figures per cell of ``table`` (rows of the target-group tables, whose cells
    the other dimensions' total rows share), NaN where there are none."""
    out = np.full((len(table.numbers), len(CALIBRATED_COLUMNS)), np.nan)
    rows = np.flatnonzero(table.dimension == DIMENSIONS.index("maalgruppe"))
    for i in rows.tolist():
        key = (table.questions[table.question[i]], table.kommuner[table.kommune[i]], table.levels[table.slot[i]])
        figures = calibrated.get(key)
        if figures is not None:
            out[table.cell[i]] = figures
    return out


def _split_respondents(
    answer_counts: Iterable[AnswerCount | GroupedCounts],
) -> tuple[list[GroupedCounts], dict[tuple[str, str, str], int]]:
    """The answer counts as grouped rows, and the respondent rows (question RESPONDENTS) apart:
    (stratum, dimension, level) -> people."""
    grouped: list[GroupedCounts] = []
    respondents: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in answer_counts:
        if isinstance(row, AnswerCount):
            if row.question == RESPONDENTS:
                respondents[(row.stratum, row.dimension, row.level)] += row.n
                continue
            if row.code not in _CODE_INDEX or row.n <= 0:
                continue
            vector = [0] * len(CODES)
            vector[_CODE_INDEX[row.code]] = row.n
            row = (row.stratum, row.dimension, row.level, row.question, vector)
        elif row[3] == RESPONDENTS:
            respondents[(row[0], row[1], row[2])] += row[4][0]
            continue
        grouped.append(row)
    return grouped, respondents


def build_indicator_table(
    round_id: str,
    questionnaire_id: str | None,
    strata: Mapping[str, StratumInfo],
    grouped: list[GroupedCounts],
    pattern: RespondentPattern,
    respondents: Mapping[tuple[str, str, str], int],
    *,
    min_count: int = SUPPRESSION_THRESHOLD,
    caution_below: int = CAUTION_BELOW,
    lonely: str = "adjust",
) -> IndicatorTable:
    """The indicator tables of a round in table order (question, dimension, the national cells
    then each municipality's, the total then each level), suppressed as ``pattern`` decided.

    Every question's cell (municipality or national x level) is published exactly when the
    respondent cell is: a question's counts, per answer code, are a part of its respondents,
    so one decision for all of them leaves nothing to difference between questions or against
    the response rates. A published cell whose question has fewer than ``min_count`` valid
    answers keeps its counts (its respondents are enough to publish) but not its estimates
    (``few_answers``: a mean of a handful of answers is not a result).

    Weighted figures are published where they tell no more than the counts do:
    * a cell that is a union of whole strata (a stratum, a municipality's total, the national
      total per target group, the national total) is weighted stratum by stratum, with its
      suppressed strata as one weighting class (their sum is known from the published counts,
      each one is not: weighting each by its own N_h / n_h would give every hidden stratum's
      answers back, as a sum of known weights times whole numbers has one solution);
    * a breakdown cell (gender, age band, duration band) holds part of several strata, and its
      weighted and unweighted figures together would tell how each stratum's answers split
      over the breakdown (the same sum-of-weights argument), small groups included: it
      publishes the unweighted figures only.

    The counts are held as one array ``(question, stratum, slot, answer code)``, a slot being
    "all" or one level of one dimension, and every cell of every table (municipality or
    national x slot) is estimated at once with numpy (:func:`_ratio_estimates`): a cell takes
    every stratum of its municipality (or of the country), in sorted order, strata without
    answers in the cell adding exact zeros, so its figures equal :func:`cell_estimates` on its
    counts (tested) and depend only on the tallies.
    """
    design = design_strata(strata)
    kommuner = sorted({s.kommunekode for s in strata.values()}, key=natural_key)

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
    seen_levels |= {(d, lvl) for (_, d, lvl) in respondents if d in DIMENSIONS}
    seen_levels |= {("maalgruppe", s.maalgruppe) for s in strata.values()}
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

    # The respondent pattern per (dimension, municipality or national, slot), and each row's
    # respondents.
    kommune_labels = [NATIONAL, *kommuner]
    level_labels = [ALL_LEVELS] + [lvl for dim in DIMENSIONS for lvl in levels[dim]]
    layout_rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for t, dim in enumerate(DIMENSIONS):
        if not levels[dim]:
            continue  # a dimension with no answers at all has no table
        kommune_col, slot_col, hidden_col, count_col = [], [], [], []
        for ki, k in enumerate(kommune_labels):
            for lvl in (ALL_LEVELS, *levels[dim]):
                number = pattern.entry(dim, None if k == NATIONAL else k, None if lvl == ALL_LEVELS else lvl)
                kommune_col.append(ki)
                slot_col.append(0 if lvl == ALL_LEVELS else slot_of[(dim, lvl)])
                hidden_col.append(pattern.hidden(number))
                count_col.append(pattern.count(number))
        layout_rows[t] = (
            np.array(kommune_col, dtype=np.intp), np.array(slot_col, dtype=np.intp),
            np.array(hidden_col, dtype=bool), np.array(count_col, dtype=np.int64),
        )

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
    kommune_of_h = np.array([kommune_index[strata[h].kommunekode] for h in names], dtype=int)
    # First row of each municipality within a block (every municipality has a stratum).
    kommune_starts = np.flatnonzero(np.diff(np.concatenate([[-1], kommune_of_h[by_kommune]])))
    block_offsets = np.arange(n_blocks) * n_h
    starts = np.concatenate([block_offsets, n_blocks * n_h + (block_offsets[:, None] + kommune_starts[None, :]).ravel()])
    order = np.array(by_kommune, dtype=int)
    numbers, values = figure_arrays(
        stacked,
        np.concatenate([np.tile(weight, n_blocks), np.tile(weight[order], n_blocks)]),
        np.concatenate([np.tile(fpc, n_blocks), np.tile(fpc[order], n_blocks)]),
        np.concatenate([np.tile(n_units, n_blocks), np.tile(n_units[order], n_blocks)]),
        starts,
        lonely,
    )

    def cell_of(q: int, kommune: int, slot: int) -> int:
        """Where the figures of question q, municipality (0 national, else 1 + index), slot are."""
        block = q * n_s + slot
        return block if kommune == 0 else n_blocks + block * n_k + kommune - 1

    # Union cells with suppressed strata: weighted again with those strata as one class.
    hidden_strata = {
        h for h in names
        if pattern.hidden(pattern.entry("maalgruppe", strata[h].kommunekode, strata[h].maalgruppe))
    }
    pooled: set[tuple[int, int]] = set()  # (municipality as in cell_of, slot)
    if hidden_strata:
        unions: list[tuple[int, int, list[str]]] = [(0, 0, names)]
        for lvl in levels["maalgruppe"]:
            unions.append((0, slot_of[("maalgruppe", lvl)], [h for h in names if strata[h].maalgruppe == lvl]))
        for ki, k in enumerate(kommuner):
            unions.append((ki + 1, 0, [h for h in names if strata[h].kommunekode == k]))
        cells_to_pool = []
        for kommune, slot, members in unions:
            inside = [h for h in members if h in hidden_strata]
            if not inside:
                continue  # nothing to pool (a cell with all its strata hidden pools them all)
            pool_info = StratumInfo(
                "", "", sum(strata[h].respondents for h in inside),
                None if any(strata[h].population is None for h in inside) else sum(strata[h].population for h in inside),
            )
            pool_design = {h: design[h] for h in members if h not in inside} | {_POOL: design_strata({_POOL: pool_info})[_POOL]}
            for qi in range(n_q):
                by_stratum: dict[str, dict[str, int]] = {}
                for h in members:
                    vector = counts[qi, position[h], slot]
                    target = _POOL if h in inside else h
                    acc = by_stratum.setdefault(target, dict.fromkeys(CODES, 0))
                    for c, code in enumerate(CODES):
                        acc[code] += int(vector[c])
                cells_to_pool.append((cell_of(qi, kommune, slot), by_stratum, pool_design))
            pooled.add((kommune, slot))
        for cell, by_stratum, pool_design in cells_to_pool:
            figures = estimate_cells([by_stratum], pool_design, lonely)[0]
            values[cell] = [np.nan if figures[name] is None else figures[name] for name in FIGURE_NAMES[3:]]

    breakdown_slots = np.zeros(n_s, dtype=bool)
    for dim in ("gender", "age_band", "duration_band"):
        for lvl in levels[dim]:
            breakdown_slots[slot_of[(dim, lvl)]] = True
    pooled_mask = np.zeros((n_k + 1, n_s), dtype=bool)
    for kommune, slot in pooled:
        pooled_mask[kommune, slot] = True

    blocks = []
    for qi in range(n_q):
        for t in range(len(DIMENSIONS)):
            if t not in layout_rows:
                continue
            kommune_col, slot_col, hidden_col, count_col = layout_rows[t]
            cell = np.where(kommune_col == 0, qi * n_s + slot_col, n_blocks + (qi * n_s + slot_col) * n_k + kommune_col - 1)
            blocks.append((qi, t, kommune_col, slot_col, hidden_col, count_col, cell))
    question = np.concatenate([np.full(len(b[2]), b[0], dtype=np.int32) for b in blocks])
    dimension = np.concatenate([np.full(len(b[2]), b[1], dtype=np.int8) for b in blocks])
    kommune = np.concatenate([b[2] for b in blocks])
    slot = np.concatenate([b[3] for b in blocks])
    hidden = np.concatenate([b[4] for b in blocks])
    people = np.concatenate([b[5] for b in blocks])
    cell = np.concatenate([b[6] for b in blocks])
    weighting = np.where(
        breakdown_slots[slot], WEIGHTINGS.index("unweighted"),
        np.where(pooled_mask[kommune, slot], WEIGHTINGS.index("strata_pooled"), WEIGHTINGS.index("strata")),
    ).astype(np.int8)
    return IndicatorTable(
        round_id,
        questionnaire_id,
        questions,
        kommune_labels,
        level_labels,
        question,
        dimension,
        kommune,
        slot,
        hidden.astype(np.int8),
        people < caution_below,
        cell,
        numbers,
        values,
        people,
        numbers[cell, 1] < min_count,
        weighting,
    )


_POOL = "~suppressed strata"  # the weighting class of a cell's suppressed strata


def build_rate_rows(round_id: str, rate_counts: Iterable[RateCount], pattern: RespondentPattern, *, caution_below: int = CAUTION_BELOW) -> list[dict]:
    """Response-rate tables (respondents per municipality x target group, x arm, x answer mode,
    x language and x follow-up arm, with margins), suppressed as the indicator tables are (``pattern``), sorted. The
    invited are the sample: published for every cell."""
    invited: dict[tuple[str, str, str], int] = defaultdict(int)
    answered_how: dict[str, set[str]] = {dim: set() for dim in ANSWER_DIMENSIONS}
    rate_counts = list(rate_counts)
    for (k, lvl), (n_invited, _) in followup_levels(rate_counts).items():
        for kk, ll in ((k, lvl), (k, ALL_LEVELS), (NATIONAL, lvl), (NATIONAL, ALL_LEVELS)):
            invited[(FOLLOWUP, kk, ll)] += n_invited
    for r in rate_counts:
        if r.followup:
            continue
        for dim, lvl in (("maalgruppe", r.maalgruppe), ("arm", r.arm)):
            for k, l in ((r.kommunekode, lvl), (r.kommunekode, ALL_LEVELS), (NATIONAL, lvl), (NATIONAL, ALL_LEVELS)):
                invited[(dim, k, l)] += r.invited
        for dim in ANSWER_DIMENSIONS:
            if how := getattr(r, dim):
                answered_how[dim].add(how)
    # A mode or language cell's invited are its municipality's (ANSWER_DIMENSIONS), in every
    # municipality for every mode or language anyone answered in, as in the respondent tables.
    kommuner = {k for (dim, k, _) in invited if dim == "maalgruppe" and k != NATIONAL}
    for dim, levels in answered_how.items():
        for k in (*kommuner, NATIONAL):
            for lvl in (*levels, ALL_LEVELS):
                invited[(dim, k, lvl)] = invited[("maalgruppe", k, ALL_LEVELS)]
    rows: list[dict] = []
    for dim, k, lvl in invited:
        if dim not in pattern.dimensions:
            continue
        number = pattern.entry(dim, None if k == NATIONAL else k, None if lvl == ALL_LEVELS else lvl)
        hidden, count = pattern.hidden(number), pattern.count(number)
        n_invited = invited[(dim, k, lvl)]
        rows.append({
            "round_id": round_id,
            "dimension": dim,
            "kommunekode": k,
            "level": lvl,
            "invited": n_invited,
            "answers": None if hidden else count,
            "response_rate": None if hidden or not n_invited else count / n_invited,
            "suppressed": hidden,
            "caution": not hidden and count < caution_below,
        })
    rows.sort(key=lambda r: (RATE_DIMENSIONS.index(r["dimension"]), _kommune_order(r["kommunekode"]), _level_order(r["level"])))
    return rows


# IndicatorTable.rows lays a row out in INDICATOR_COLUMNS order: the figures' counts, the
# suppression status, then the indicators.
assert INDICATOR_COLUMNS[7:] == (
    FIGURE_NAMES[:3] + ("suppressed", "caution", "few_answers", "weighting") + FIGURE_NAMES[3:] + CALIBRATED_COLUMNS
)
# Which of a row's indicator columns are weighted figures (withheld where a row is unweighted).
_WEIGHTED_COLUMN = np.array([suffix in WEIGHTED_SUFFIXES for _ in INDICATORS for suffix in ESTIMATE_SUFFIXES])
