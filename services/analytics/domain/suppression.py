"""Disclosure control for published count tables.

The rule from the GDPR concept: a result based on fewer than 5 answers is not
shown. Hiding the small cells alone is not enough when totals are published
too: a municipality's total minus its published target-group cells gives the
hidden cell back. This module decides which cells to hide and can check a
round's tables the way an attacker would.

Tables
------
A :class:`CountTable` is a full cross-classification (e.g. municipality x
target group) of a *measure* (e.g. "answers to question 13"), with the
published margins named by the dimensions they keep: for a 2-way table
``margins=(("municipality",), ("target_group",), ())`` publishes the
municipality totals (row totals), the national totals per target group
(column totals) and the national total. Keys of margin cells hold
:data:`TOTAL` in the summed-over dimensions, e.g. ``("Aarhus", TOTAL)``.

A cell's *identity* is its measure plus its non-total coordinates, so the
same quantity in two tables is one quantity: ``("Aarhus", TOTAL)`` of a
municipality x target group table is the same number as ``("Aarhus",
TOTAL)`` of a municipality x gender table, and the national total is shared
by every table of the measure. Decisions are made per identity, so linked
tables are protected together. Every table of a measure must partition the
same population (make "unknown" an explicit category if needed); tables are
completed with zero cells over the union of the category levels seen.

Suppression
-----------
1. Primary: (a) every cell (margins included) with ``count < min_count`` is
   suppressed; zero cells count as small ("fewer than 5 answers"), except a
   cell a published limit holds at 0 (a known zero). (b) With a history of
   earlier releases (:class:`History`): every cell whose count moved by 1 to
   ``min_count - 1`` since the value last published. Cells a release leaves
   out whatever their counts (``withheld``) are hidden too.
2. Secondary, repeated until nothing changes:

   a. line rule: in every *line* (a published total with the cells it is
      the sum of at the next published level: a row with its row total, a
      column with its column total, the row totals with the national total,
      ...) there must not be exactly one suppressed entry, and when the line's
      total is published the suppressed entries must together hold at least
      ``min_count`` (otherwise their small sum would be disclosed, e.g. two
      zero cells). A violated line gets its smallest published entry
      suppressed, interior cells before totals;
   b. exact check: the line rule does not cover every pattern (e.g. a
      suppressed cell that is the only link between two groups of
      suppressed cells is still determined), so the linear equations are
      solved; for each cell they fix, the smallest published entry of a line
      through that cell is suppressed and we go back to (a);
   c. interval audit (:func:`audit`): integer programs search, for every
      hidden cell, the values a reader holding all published numbers cannot
      rule out (counts at least 0 or what earlier releases proved, at most a
      published limit such as the invited), with everything else a published
      cell shows of the same people (``breakdowns``: each question's answers
      per code), the previous release in full (``history.last``: its
      equations, and every count only growing since) and the releases since
      that published counts only (``history.chain``: their equations, counts
      only growing from one to the next). A primary cell must be
      able to take the value last published (0 for a cell never published)
      and ``min_count`` more; no other hidden cell may be fixed at a value not
      published before; and no cell may be provably grown by 1 to
      ``min_count - 1`` since the previous release. A failing cell gets a
      published partner in one of its lines suppressed (one that can take up
      the difference; a published cell provably grown by a few is hidden
      itself) and we go back to (a).

   Every round suppresses at least one more entry, so this terminates; with
   everything suppressed nothing can be recovered.
3. Published cells with ``count < caution_below`` (default 20) are flagged
   "read with caution" (few answers: wide intervals).

Attacker
--------
:func:`find_recoverable_cells` collects, over all tables of a round, the
equations ``X = sum of the interior cells of table T that lie inside X`` for
every cell X whose dimensions are a subset of T's. With the published values
moved to the right-hand side, a suppressed cell ``u`` is determined exactly
when its unit vector lies in the row space of the coefficient matrix
restricted to suppressed cells. In the reduced row echelon form (exact
rational arithmetic with :class:`fractions.Fraction`) that means: ``u`` is a
pivot column and its row has no other non-zero coefficient; the row's
right-hand side is then the recovered value. The tests' independent attacker
(``tests/analytics/attack``) adds integrality, bounds and every other
published figure.

Releases before the previous one enter the audit as lower bounds only (the
``floor`` of :class:`History`), see docs/analytics-method.md.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np

__all__ = [
    "TOTAL",
    "CellDecision",
    "CellStatus",
    "CountTable",
    "Decided",
    "PublishedTable",
    "SuppressedTable",
    "find_recoverable_cells",
    "History",
    "LastRelease",
    "audit",
    "Earlier",
    "Intervals",
    "Split",
    "cell_key",
    "decide",
    "suppress",
    "suppress_table",
]


class _Total:
    """The marker for a summed-over dimension in a margin cell's key."""

    _instance: _Total | None = None

    def __new__(cls) -> _Total:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TOTAL"

    def __reduce__(self) -> str:
        return "TOTAL"


TOTAL = _Total()

# KL's rule (seed 004, GDPR): a cell with fewer respondents than this is never shown; a published
# cell with fewer than CAUTION_BELOW is flagged "read with caution". The service's settings
# (services/analytics/config.py) default to these and pass the configured values everywhere.
SUPPRESSION_THRESHOLD = 5
CAUTION_BELOW = 20

Key = tuple[Hashable, ...]
# (measure, frozenset of (dimension, value)) - the same number in any table.
Identity = tuple[str, frozenset[tuple[str, Hashable]]]


class CellStatus(enum.Enum):
    PUBLISHED = "published"
    PRIMARY = "primary"  # fewer than min_count answers
    SECONDARY = "secondary"  # hidden so that a primary cell cannot be derived


@dataclass(frozen=True, slots=True)
class CellDecision:
    count: int
    status: CellStatus
    caution: bool = False  # published, but on fewer than caution_below answers

    @property
    def suppressed(self) -> bool:
        return self.status is not CellStatus.PUBLISHED

    @property
    def published_count(self) -> int | None:
        return None if self.suppressed else self.count


@dataclass(frozen=True)
class CountTable:
    """Interior cell counts of a cross-classification and its published margins.

    ``cells`` maps a key (one value per dimension) to a count; combinations
    not given are zero. ``margins`` lists the published aggregates by the
    dimensions they keep (``()`` is the grand total).
    """

    dims: tuple[str, ...]
    cells: Mapping[Key, int]
    margins: tuple[tuple[str, ...], ...] = ()
    measure: str = "answers"

    def __post_init__(self) -> None:
        if len(set(self.dims)) != len(self.dims) or not self.dims:
            raise ValueError("dimensions must be distinct and non-empty")
        for key, count in self.cells.items():
            if len(key) != len(self.dims):
                raise ValueError(f"key {key!r} does not have {len(self.dims)} values")
            if TOTAL in key:
                raise ValueError("interior cells cannot hold TOTAL")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ValueError(f"count of {key!r} must be a non-negative int")
        seen = set()
        for m in self.margins:
            if not set(m) <= set(self.dims) or len(set(m)) != len(m):
                raise ValueError(f"margin {m!r} is not a set of the table's dimensions")
            if set(m) == set(self.dims):
                raise ValueError("a margin keeping every dimension is the table itself")
            if frozenset(m) in seen:
                raise ValueError(f"margin {m!r} is listed twice")
            seen.add(frozenset(m))

    def levels(self) -> dict[str, list[Hashable]]:
        """The categories of each dimension, in order of first appearance."""
        return {d: list(dict.fromkeys(key[i] for key in self.cells)) for i, d in enumerate(self.dims)}


@dataclass(frozen=True)
class PublishedTable:
    """What is published: every entry (margins included), hidden ones as None."""

    dims: tuple[str, ...]
    entries: Mapping[Key, int | None]
    measure: str = "answers"


@dataclass(frozen=True)
class SuppressedTable:
    table: CountTable
    decisions: Mapping[Key, CellDecision]  # interior and margin entries

    def published(self) -> PublishedTable:
        return PublishedTable(
            self.table.dims,
            {k: d.published_count for k, d in self.decisions.items()},
            self.table.measure,
        )


# -- structure -------------------------------------------------------------------


def _identity(measure: str, dims: Sequence[str], key: Key) -> Identity:
    return (measure, frozenset((d, v) for d, v in zip(dims, key) if v is not TOTAL))


@dataclass
class _Shape:
    """Everything :func:`suppress` needs that depends on the tables' shape only (dimensions,
    margins, category levels), not on their counts. A live round's tables keep their shape from
    one build to the next and every question's tables have the same one, so it is built once
    (:func:`_shape`, cached) and a build only adds up counts and decides.

    Every distinct identity (the same number in any table) gets a number; entries, lines and
    equations refer to those numbers.
    """

    dims: list[tuple[str, ...]]  # per table
    measures: list[str]  # per table (the shape's own names, see :func:`suppress`)
    keys: list[list[Key]]  # per table: its entries, interior first (product order), then margins
    n_interior: list[int]  # per table: how many of ``keys`` are interior cells
    into: list[list[np.ndarray]]  # per table, per margin level: the entry each interior cell adds to
    entry_ids: list[np.ndarray]  # per table: the identity number of each entry
    idents: list[Identity]  # identity number -> identity
    rank: list[tuple[int, int]]  # tie-break: interior first, then order seen
    lines: list[tuple[int, list[int]]]  # a published total and the entries it is the sum of
    lines_through: list[list[int]]  # identity number -> the lines it is in
    _equations: list[tuple[int, list[int]]] | None = None

    def equations(self) -> list[tuple[int, list[int]]]:
        # Only needed once some cell is hidden (most large rounds hide nothing).
        if self._equations is None:
            number = {ident: i for i, ident in enumerate(self.idents)}
            relations = _equations(
                list(zip(self.dims, self.measures, self.keys)),
                [{k: self.idents[i] for k, i in zip(keys, ids.tolist())} for keys, ids in zip(self.keys, self.entry_ids)],
            )
            self._equations = [(number[agg], [number[p] for p in parts]) for agg, parts in relations]
        return self._equations


@lru_cache(maxsize=64)
def _shape(tables: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...], tuple[tuple[Hashable, ...], ...]], ...]) -> _Shape:
    """The shape of linked tables given as (measure, dims, margins, levels of each dim)."""
    keys: list[list[Key]] = []
    n_interior: list[int] = []
    into: list[list[np.ndarray]] = []
    entry_ids: list[np.ndarray] = []
    number: dict[Identity, int] = {}
    idents: list[Identity] = []
    rank: list[tuple[int, int]] = []
    lines: list[tuple[int, list[int]]] = []

    def ident_number(identity: Identity, key: Key) -> int:
        i = number.get(identity)
        if i is None:
            i = number[identity] = len(idents)
            idents.append(identity)
            rank.append((sum(v is TOTAL for v in key), i))
        return i

    for measure, dims, margins, levels in tables:
        interior = list(itertools.product(*levels))
        published_levels = [frozenset(dims)] + [frozenset(m) for m in margins]
        position: dict[Key, int] = {k: i for i, k in enumerate(interior)}
        by_level: dict[frozenset[str], list[Key]] = {frozenset(dims): interior}
        table_into = []
        for lvl in published_levels[1:]:
            # A margin's entries in the order its cells first appear in the interior.
            entries: dict[Key, None] = {}
            targets = []
            for key in interior:
                total_key = tuple(v if d in lvl else TOTAL for d, v in zip(dims, key))
                entries.setdefault(total_key, None)
                if total_key not in position:
                    position[total_key] = len(position)
                targets.append(position[total_key])
            by_level[lvl] = list(entries)
            table_into.append(np.array(targets, dtype=np.intp))
        table_keys = list(position)
        ids = np.array([ident_number(_identity(measure, dims, k), k) for k in table_keys], dtype=np.intp)
        keys.append(table_keys)
        n_interior.append(len(interior))
        into.append(table_into)
        entry_ids.append(ids)
        # Lines: an aggregate with its parts at each next-finer published level.
        for lvl in published_levels:
            finer = [b for b in published_levels if lvl < b]
            nearest = [b for b in finer if not any(lvl < c < b for c in finer)]
            kept = [i for i, d in enumerate(dims) if d in lvl]
            for b in nearest:
                # The parts of a total are the finer entries that agree on the total's kept
                # dimensions: grouped once by those values (in the finer level's order).
                parts_of: dict[Key, list[int]] = defaultdict(list)
                for k in by_level[b]:
                    parts_of[tuple(k[i] for i in kept)].append(int(ids[position[k]]))
                for total_key in by_level[lvl]:
                    lines.append((int(ids[position[total_key]]), list(parts_of.get(tuple(total_key[i] for i in kept), ()))))
    lines_through: list[list[int]] = [[] for _ in idents]
    for li, (total, parts) in enumerate(lines):
        for i in (total, *parts):
            lines_through[i].append(li)
    return _Shape(
        [dims for _, dims, _, _ in tables], [measure for measure, _, _, _ in tables],
        keys, n_interior, into, entry_ids, idents, rank, lines, lines_through,
    )


def _equations(
    tables: Sequence[tuple[tuple[str, ...], str, Iterable[Key]]],
    ids: Sequence[Mapping[Key, Identity]] | None = None,
) -> list[tuple[Identity, list[Identity]]]:
    """Every "aggregate = sum of a table's interior cells inside it" relation.

    ``tables`` gives each table's dimensions, measure and entry keys. An
    aggregate is any entry (of any table of the same measure) whose
    dimensions are a strict subset of the table's. ``ids`` optionally gives
    each table's key -> identity, already computed (suppress has them).
    """
    tables = [(dims, measure, list(keys)) for dims, measure, keys in tables]
    if ids is None:
        ids = [{k: _identity(measure, dims, k) for k in keys} for dims, measure, keys in tables]
    ids_by_measure: dict[str, set[Identity]] = defaultdict(set)
    for (dims, measure, keys), table_ids in zip(tables, ids):
        ids_by_measure[measure].update(table_ids[k] for k in keys)
    equations: dict[tuple[Identity, frozenset[Identity]], list[Identity]] = {}
    for (dims, measure, keys), table_ids in zip(tables, ids):
        interior = [
            (table_ids[k], dict(zip(dims, k)))
            for k in keys
            if TOTAL not in k
        ]
        dimset = set(dims)
        # Interior cells grouped by their values on each subset of dimensions an aggregate
        # keeps (built on first use, in the table's order).
        groups: dict[tuple[str, ...], dict[tuple, list[Identity]]] = {}
        for agg in ids_by_measure[measure]:
            coords = dict(agg[1])
            if not set(coords) < dimset:
                continue
            sub = tuple(sorted(coords))
            grouped = groups.get(sub)
            if grouped is None:
                grouped = groups[sub] = defaultdict(list)
                for ident, kc in interior:
                    grouped[tuple(kc[d] for d in sub)].append(ident)
            parts = list(grouped.get(tuple(coords[d] for d in sub), ()))
            equations.setdefault((agg, frozenset(parts)), parts)
    return [(agg, parts) for (agg, _), parts in equations.items()]


def _equation_rows(
    equations: Sequence[tuple[Identity, list[Identity]]], known: Mapping[Identity, int], order: Mapping[Identity, int]
) -> Iterable[tuple[dict[int, int], int]]:
    """Each relation ``aggregate - sum(parts) = 0`` with the known terms moved to the right-hand
    side: (the unknowns' coefficients by their column in ``order``, right-hand side), in whole
    numbers. Relations without an unknown are left out."""
    for agg, parts in equations:
        coeffs: dict[int, int] = defaultdict(int)
        rhs = 0
        for ident, sign in [(agg, 1)] + [(p, -1) for p in parts]:
            if ident in order:
                coeffs[order[ident]] += sign
            else:
                rhs -= sign * known[ident]
        coeffs = {c: v for c, v in coeffs.items() if v}
        if coeffs:
            yield coeffs, rhs


def _determined(
    equations: Sequence[tuple[Identity, list[Identity]]],
    known: Mapping[Identity, int],
    unknown: Iterable[Identity],
) -> dict[Identity, Fraction]:
    """Unknowns fixed by the equations, with their values (exact arithmetic)."""
    unknown = set(unknown)
    if not unknown:
        return {}
    order = {u: i for i, u in enumerate(sorted(unknown, key=repr))}
    rows = [({c: Fraction(v) for c, v in coeffs.items()}, Fraction(rhs)) for coeffs, rhs in _equation_rows(equations, known, order)]

    # Incremental reduced row echelon form over the rationals. ``pivots``
    # maps a pivot column to its row; every stored row has 0 in every other
    # pivot column, so the result is the RREF whatever the row order.
    pivots: dict[int, tuple[dict[int, Fraction], Fraction]] = {}
    for coeffs, rhs in rows:
        coeffs = dict(coeffs)
        for col in [c for c in coeffs if c in pivots]:
            factor = coeffs.get(col)
            if not factor:
                continue
            prow, prhs = pivots[col]
            for c, v in prow.items():
                nv = coeffs.get(c, Fraction(0)) - factor * v
                if nv:
                    coeffs[c] = nv
                else:
                    coeffs.pop(c, None)
            rhs -= factor * prhs
        if not coeffs:
            continue  # dependent equation (consistency is not our concern)
        col = min(coeffs)
        lead = coeffs[col]
        coeffs = {c: v / lead for c, v in coeffs.items()}
        rhs /= lead
        for pcol, (prow, prhs) in list(pivots.items()):
            factor = prow.get(col)
            if not factor:
                continue
            new = dict(prow)
            for c, v in coeffs.items():
                nv = new.get(c, Fraction(0)) - factor * v
                if nv:
                    new[c] = nv
                else:
                    new.pop(c, None)
            pivots[pcol] = (new, prhs - factor * rhs)
        pivots[col] = (coeffs, rhs)

    by_index = {i: u for u, i in order.items()}
    return {
        by_index[col]: rhs
        for col, (prow, rhs) in pivots.items()
        if len(prow) == 1
    }


def _determined_integer(
    equations: Sequence[tuple[Identity, list[Identity]]],
    known: Mapping[Identity, int],
    unknown: Iterable[Identity],
) -> set[Identity]:
    """The unknowns :func:`_determined` finds, by fraction-free elimination over the integers.

    Every stored row is a non-zero integer multiple of the row :func:`_determined` stores (the
    same pivots, reduced against each other the same way, each row divided by the gcd of its
    entries), so the rows with a single non-zero coefficient, the determined cells, are the
    same; Python ints instead of Fractions make it several times faster, and suppression runs
    it once per secondary cell it adds. :func:`find_recoverable_cells` (the audit the tests
    run against every publication) keeps the rational version, so the two check each other.
    """
    unknown = set(unknown)
    if not unknown:
        return set()
    order = {u: i for i, u in enumerate(sorted(unknown, key=repr))}
    pivots: dict[int, tuple[dict[int, int], int]] = {}

    def reduced(coeffs: dict[int, int], rhs: int) -> tuple[dict[int, int], int]:
        g = math.gcd(rhs, *coeffs.values())
        if g > 1:
            return {c: v // g for c, v in coeffs.items()}, rhs // g
        return coeffs, rhs

    for coeffs, rhs in _equation_rows(equations, known, order):
        for col in [c for c in coeffs if c in pivots]:
            factor = coeffs.get(col)
            if not factor:
                continue
            prow, prhs = pivots[col]
            lead = prow[col]
            coeffs, rhs = _combine(coeffs, lead, prow, factor), lead * rhs - factor * prhs
        if not coeffs:
            continue  # dependent equation
        coeffs, rhs = reduced(coeffs, rhs)
        col = min(coeffs)
        lead = coeffs[col]
        for pcol, (prow, prhs) in list(pivots.items()):
            factor = prow.get(col)
            if not factor:
                continue
            pivots[pcol] = reduced(_combine(prow, lead, coeffs, factor), lead * prhs - factor * rhs)
        pivots[col] = (coeffs, rhs)

    by_index = {i: u for u, i in order.items()}
    return {by_index[col] for col, (prow, _) in pivots.items() if len(prow) == 1}


def _combine(row: dict[int, int], scale: int, other: dict[int, int], factor: int) -> dict[int, int]:
    """scale x row - factor x other, in whole numbers, without zero coefficients (one step of
    fraction-free elimination)."""
    new = {c: scale * v for c, v in row.items()}
    for c, v in other.items():
        nv = new.get(c, 0) - factor * v
        if nv:
            new[c] = nv
        else:
            new.pop(c, None)
    return new


# -- the attacker ----------------------------------------------------------------


def find_recoverable_cells(
    published_tables: Sequence[PublishedTable],
) -> dict[tuple[int, Key], int | Fraction]:
    """Hidden cells that differencing the published tables gives back exactly.

    Returns ``{(table index, key): value}`` for every hidden entry that is
    uniquely determined by the published sums (linked tables together).
    Published tables must list every entry, hidden ones as None.
    """
    known: dict[Identity, int] = {}
    where: dict[Identity, list[tuple[int, Key]]] = defaultdict(list)
    for t, table in enumerate(published_tables):
        for key, value in table.entries.items():
            ident = _identity(table.measure, table.dims, key)
            if value is None:
                where[ident].append((t, key))
            elif known.setdefault(ident, value) != value:
                raise ValueError(f"tables disagree on {key!r} of {table.measure!r}")
    # A cell hidden in one table but printed in another is simply known.
    unknown = [ident for ident in where if ident not in known]
    equations = _equations(
        [(t.dims, t.measure, list(t.entries)) for t in published_tables]
    )
    found = _determined(equations, known, unknown)
    out: dict[tuple[int, Key], int | Fraction] = {}
    for ident, locations in where.items():
        if ident in known:
            value: int | Fraction | None = known[ident]
        elif ident in found:
            value = found[ident]
        else:
            continue
        if isinstance(value, Fraction) and value.denominator == 1:
            value = int(value)
        for loc in locations:
            out[loc] = value
    return out


# -- suppression -------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """:func:`decide`'s result as arrays: each table's entries (interior cells in product order,
    then margins) by key, the number of the identity each entry is, and per identity number its
    count and status (:data:`STATUS_CODES`). What :func:`suppress` turns into one
    :class:`CellDecision` per entry; a caller that lays the decisions out in arrays of its own
    (the publication: thousands of entries per build) reads them here instead, skipping those
    objects (a third of suppressing a live round's tables, measured)."""

    keys: list[list[Key]]  # per table (the cached shape's own lists: read, never change)
    entry_ids: list[np.ndarray]  # per table, per entry: its identity number
    count: np.ndarray  # per identity number
    status: np.ndarray  # per identity number, index into STATUS_CODES
    # Per identity number: the interval a reader holding everything published (and, with a
    # history, every earlier release) can prove for it; a published cell's is its count. The
    # audit's result (:func:`audit`), None where no audit ran.
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None  # inf where unbounded
    keys_by_number: list[str] | None = None  # per identity number: :func:`cell_key`
    parts: dict[str, np.ndarray] | None = None  # per breakdown: (parts, identities), -1 where not covered


# A status's code in Decided.status.
STATUS_CODES: tuple[CellStatus, ...] = (CellStatus.PUBLISHED, CellStatus.PRIMARY, CellStatus.SECONDARY)


def suppress(
    tables: Sequence[CountTable],
    *,
    min_count: int = SUPPRESSION_THRESHOLD,
    caution_below: int = CAUTION_BELOW,
    breakdowns: Mapping[str, Sequence[Mapping[Key, Sequence[int]] | None]] | None = None,
) -> list[SuppressedTable]:
    """Primary and secondary suppression over a round's (linked) tables (``breakdowns``: as
    :func:`decide`)."""
    decided = decide(tables, min_count=min_count, breakdowns=breakdowns)
    count, status = decided.count.tolist(), [STATUS_CODES[c] for c in decided.status.tolist()]
    published = CellStatus.PUBLISHED
    out: list[SuppressedTable] = []
    for t, table in enumerate(tables):
        decisions = {}
        for key, i in zip(decided.keys[t], decided.entry_ids[t].tolist()):
            st, c = status[i], count[i]
            decisions[key] = CellDecision(c, st, caution=st is published and c < caution_below)
        out.append(SuppressedTable(table, decisions))
    return out


def cell_key(measure: str, coords: Iterable[tuple[str, Hashable]]) -> str:
    """A cell's identity as text (``measure:dim=value|dim=value``, dimensions sorted; the grand
    total has none): how a release's history names the cells it published."""
    return measure + ":" + "|".join(f"{d}={v}" for d, v in sorted((d, str(v)) for d, v in coords))


@dataclass(frozen=True)
class History:
    """What the earlier releases of the same tables told a reader, by :func:`cell_key`.

    ``published``: each cell's value in the last release that published it (and
    ``published_parts`` its parts in each breakdown then). ``floor``: the
    lowest value a reader can prove for a cell from everything released so far: its published
    value, or for a hidden cell the audit's lower bound in the last release (counts only grow:
    answers are added, and an erasure lowering one is treated as if it had not, see
    :func:`audit`).
    """

    published: Mapping[str, int] = field(default_factory=dict)
    floor: Mapping[str, int] = field(default_factory=dict)
    last: LastRelease | None = None
    # breakdown -> cell -> its parts in the last release that published the cell
    published_parts: Mapping[str, Mapping[str, Sequence[int]]] = field(default_factory=dict)
    # Each cell's value in the last release of any kind that published it, where that is not
    # ``published`` (releases that publish counts without answers): a hidden cell pinned at it
    # tells nothing new.
    shown: Mapping[str, int] = field(default_factory=dict)
    # Releases after ``last`` that published counts without answers, oldest first, in full: a
    # reader holds their equations together (counts only grow from one to the next), so the
    # audit does too. Their cells enter as counts only (no breakdown was published).
    chain: Sequence[LastRelease] = ()


@dataclass(frozen=True)
class LastRelease:
    """The previous release in full (kept by the service, never published): every cell's
    count then, which cells it hid, and each breakdown's parts per cell. The audit holds the
    next release against it the way a reader holding both would (:class:`Earlier`)."""

    count: Mapping[str, int]
    hidden: frozenset[str]
    parts: Mapping[str, Mapping[str, Sequence[int]]] = field(default_factory=dict)  # breakdown -> cell -> parts


def decide(
    tables: Sequence[CountTable],
    *,
    min_count: int = SUPPRESSION_THRESHOLD,
    history: History | None = None,
    upper_bounds: Mapping[str, int] | None = None,
    audit_intervals: bool = True,
    withheld: Iterable[str] = (),
    breakdowns: Mapping[str, Sequence[Mapping[Key, Sequence[int]] | None]] | None = None,
    audit_time_limit: float | None = None,
    growth: bool = True,
) -> Decided:
    """The decisions of :func:`suppress` (the module docstring's steps 1 to 3), as arrays.

    ``history``: the earlier releases of these tables (their changes are protected like
    counts, step 1b). ``upper_bounds``: published limits a reader knows for a cell (the number
    invited is an upper bound of its respondents), by :func:`cell_key`. ``withheld``: cells left
    out of this release whatever their counts (hidden, and protected like any hidden cell).
    ``audit_intervals``: run the interval audit (step 2c); without it the decisions are the line
    rule's and the exact check's only. ``breakdowns``: what every published cell also shows of
    the measure, by name, e.g. one per question: per table (in ``tables``' order; None for a
    table the breakdown does not cover) its interior cells' counts per answer code. The audit
    includes them (:class:`Split`, the rest of each cell, no answer, as one more part). With
    ``history.last`` the audit also holds this release against the previous one: no cell may
    be provably grown by 1 to ``min_count - 1`` since then, unless ``growth`` is False: then the
    previous release only holds the reader's solutions (every count at least what it was
    then), as for tables that tell who answered but nothing of what. ``history.chain``: the
    releases after ``history.last`` that published counts only, held the same way (their
    equations, every count only growing through them), never by the growth rule.
    """
    if min_count < 1:
        raise ValueError("min_count must be at least 1")
    # Complete every table over the union of levels seen for its measure, so
    # linked tables partition the same categories.
    levels: dict[tuple[str, str], list[Hashable]] = defaultdict(list)
    for t in tables:
        for d, vals in t.levels().items():
            bucket = levels[(t.measure, d)]
            bucket.extend(v for v in vals if v not in bucket)
    # The measures renamed in order of appearance: every question's tables (one measure each,
    # the same categories) then share one cached shape.
    canonical: dict[str, str] = {}
    for t in tables:
        canonical.setdefault(t.measure, f"m{len(canonical)}")
    original = {c: m for m, c in canonical.items()}
    shape = _shape(tuple(
        (canonical[t.measure], t.dims, t.margins, tuple(tuple(levels[(t.measure, d)]) for d in t.dims)) for t in tables
    ))

    def entries_of(t: int, interior: np.ndarray) -> np.ndarray:
        # A table's entries from its interior cells (rows: cells; columns: parts, if any).
        n_interior = shape.n_interior[t]
        entries = np.zeros((len(shape.keys[t]),) + interior.shape[1:], dtype=np.int64)
        entries[:n_interior] = interior
        for into in shape.into[t]:
            np.add.at(entries, into, interior)
        return entries

    # Every entry's count: the interior cells as given, each margin level the sum of those.
    by_number = np.full(len(shape.idents), -1, dtype=np.int64)
    for t, table in enumerate(tables):
        keys, n_interior, cells = shape.keys[t], shape.n_interior[t], table.cells
        interior = np.fromiter((cells.get(k, 0) for k in keys[:n_interior]), dtype=np.int64, count=n_interior)
        entries = entries_of(t, interior)
        ids = shape.entry_ids[t]
        before = by_number[ids]
        clash = np.flatnonzero((before >= 0) & (before != entries))
        if len(clash):
            raise ValueError(f"tables disagree on {keys[int(clash[0])]!r} of {table.measure!r}")
        by_number[ids] = entries
    count: list[int] = by_number.tolist()
    everything = range(len(count))
    names = [cell_key(original[measure], coords) for measure, coords in shape.idents]
    history = history or History()
    split_names: list[str] = []
    splits: list[Split] = []
    for name, breakdown in sorted((breakdowns or {}).items()):
        width = max((len(v) for cells in breakdown if cells for v in cells.values()), default=0)
        parts = np.full((len(count), width + 1), -1, dtype=np.int64)
        for t, cells in enumerate(breakdown):
            if cells is None:
                continue
            keys = shape.keys[t][: shape.n_interior[t]]
            interior = np.zeros((len(keys), width), dtype=np.int64)
            for r, k in enumerate(keys):
                if (vector := cells.get(k)) is not None:
                    interior[r, : len(vector)] = vector
            entries = entries_of(t, interior)
            ids = shape.entry_ids[t]
            rest = by_number[ids] - entries.sum(axis=1)
            if (rest < 0).any():
                raise ValueError(f"breakdown {name!r} counts more than table {t}")
            parts[ids, :width] = entries
            parts[ids, width] = rest
        split_names.append(name)
        counts_t = np.ascontiguousarray(parts.T)
        floor_parts = np.zeros_like(counts_t)
        for i, key in enumerate(names):
            known_parts = (history.published_parts.get(name) or {}).get(key)
            if known_parts is not None and len(known_parts) == counts_t.shape[0] and counts_t[0, i] >= 0:
                floor_parts[:, i] = np.minimum(np.asarray(known_parts, dtype=np.int64), counts_t[:, i])
        splits.append(Split(counts_t, floor_parts))
    rank, lines = shape.rank, shape.lines
    previous = [history.published.get(k) for k in names]
    seen_before = [history.shown.get(k, p) for k, p in zip(names, previous)]
    earlier = _earlier(history.last, names, by_number, split_names, splits) if history.last is not None else None
    chain = [_layer(release, names) for release in history.chain]
    if history.last is None:
        # A counts-only release that published nothing, before any release the audit holds,
        # tells a reader nothing: every solution of the rest extends to it (all its cells 0:
        # its equations have no published term, and counts only grow from 0), so it is left
        # out, and the cells it hid stay out of the programs.
        while chain and not (chain[0].count >= 0)[~chain[0].hidden].any():
            chain.pop(0)
    changes = []
    if earlier is not None and growth:
        grown = by_number - earlier.count
        changes = np.flatnonzero((grown >= 1) & (grown < min_count)).tolist()
    floor = [min(max(history.floor.get(k, 0), 0), c) for k, c in zip(names, count)]
    bound = [(upper_bounds or {}).get(k) for k in names]
    published = CellStatus.PUBLISHED
    # 1a. small cells; 1b. cells a reader saw before whose count moved by less than min_count
    # (comparing the two releases would give the answers of the few who joined or left).
    # A cell a published limit holds at 0 (nobody invited) is a known zero, published as such.
    status = [
        CellStatus.PRIMARY if (c < min_count and b != 0) or (p is not None and 0 < abs(c - p) < min_count) else published
        for c, p, b in zip(count, previous, bound)
    ]
    # What a hidden cell's interval must cover (step 2c): from the value a reader last saw (0
    # for a cell never published) up to min_count more, unless a published limit is lower.
    reference = [p if p is not None else 0 for p in previous]
    protected = [st is not published for st in status]
    withheld = set(withheld)
    for i, name in enumerate(names):
        if name in withheld and status[i] is published:
            status[i] = CellStatus.SECONDARY

    def cheapest(candidates: Iterable[int], need: int = 0) -> int | None:
        # Smallest count first (least information lost), but at least ``need`` where one is
        # (a partner that can take up the difference); interior cells before totals, so
        # headline totals stay visible where possible.
        pool = [c for c in candidates if status[c] is published]
        if not pool:
            return None
        enough = [c for c in pool if count[c] >= need]
        if enough:
            return min(enough, key=lambda c: (rank[c][0] > 0, count[c], rank[c]))
        return max(pool, key=lambda c: (rank[c][0] == 0, count[c], -rank[c][1]))

    def apply_line_rule() -> None:
        changed = True
        while changed:
            changed = False
            for total, parts in lines:
                gone = [e for e in (total, *parts) if status[e] is not published]
                if not gone:
                    continue
                violated = len(gone) == 1 or (
                    status[total] is published and sum(count[e] for e in gone) < min_count
                )
                if violated:
                    pick = cheapest(parts)
                    if pick is None:
                        pick = cheapest([total])
                    if pick is not None:
                        status[pick] = CellStatus.SECONDARY
                        changed = True

    def near(target: int) -> set[int]:
        return {e for li in shape.lines_through[target] for e in (lines[li][0], *lines[li][1])}

    lower = upper = None
    audit_cache: dict = {}
    while True:
        apply_line_rule()
        unknown = [i for i in everything if status[i] is not published]
        if not unknown:
            lower = upper = np.array(count, dtype=float)
            break
        known = {i: count[i] for i in everything if status[i] is published}
        determined = _determined_integer(shape.equations(), known, unknown)
        if determined:
            target = min(determined, key=lambda i: rank[i])
            pick = cheapest(near(target))
            if pick is None:
                pick = cheapest(everything)
            if pick is None:  # pragma: no cover - everything hidden is never determined
                break
            status[pick] = CellStatus.SECONDARY
            continue
        if not audit_intervals:
            break
        targets = []
        for i in unknown:
            if protected[i]:
                limit = reference[i] + min_count if bound[i] is None else min(reference[i] + min_count, bound[i])
                targets.append((reference[i], limit))
            else:
                targets.append((None, None))
        intervals = audit(
            shape.equations(), by_number, unknown, floor=[floor[i] for i in unknown], upper=[bound[i] for i in unknown],
            splits=splits, earlier=earlier, chain=chain, changes=[i for i in changes if status[i] is not published or earlier.hidden[i]],
            targets=targets, time_limit=audit_time_limit, cache=audit_cache,
        )
        lo, hi = intervals.lower, intervals.upper
        lower = np.array(count, dtype=float)
        upper = np.array(count, dtype=float)
        lower[unknown], upper[unknown] = lo, hi
        added = False
        taken: set[int] = set()
        for j, i in enumerate(unknown):
            need = None
            if protected[i]:
                limit = targets[j][1]
                if lo[j] > reference[i]:
                    need = count[i] - reference[i]  # a partner that can take the cell down to what was known
                elif hi[j] < limit:
                    need = limit - count[i]  # a partner that can give the cell up to the limit
            elif lo[j] >= hi[j] and (seen_before[i] is None or lo[j] != seen_before[i]):
                need = 1  # recovered exactly, and not merely as the value a reader saw before
            if need is None:
                continue
            candidates = near(i) - taken
            pick = cheapest(candidates, need)
            if pick is None:
                pick = cheapest(set(everything) - taken, need)
            if pick is not None:
                status[pick] = CellStatus.SECONDARY
                taken.add(pick)
                added = True
        for i, least in intervals.least_change.items():
            if least < 1:
                continue  # a reader cannot tell the cell from one that did not change
            # Provably grown by a few: hide it, or with it hidden already, a partner that can
            # take up a change (so "nothing came in" stays possible).
            pick = i if status[i] is published else cheapest(near(i) - taken, 1)
            if pick is None:
                pick = cheapest(set(everything) - taken, 1)
            if pick is not None:
                status[pick] = CellStatus.SECONDARY
                taken.add(pick)
                added = True
        if not added:
            break

    code = {st: i for i, st in enumerate(STATUS_CODES)}
    return Decided(
        shape.keys, shape.entry_ids, by_number, np.array([code[st] for st in status], dtype=np.int8),
        lower, upper, names, {name: split.counts for name, split in zip(split_names, splits)},
    )


def _earlier(last: LastRelease, names: Sequence[str], count: np.ndarray, split_names: Sequence[str], splits: Sequence[Split]) -> Earlier:
    """The previous release laid out on this release's identities and breakdowns: a cell it
    did not have counted 0, a breakdown it did not have all "no answer"."""
    e_count = np.array([last.count.get(k, 0) for k in names], dtype=np.int64)
    e_hidden = np.array([k in last.hidden for k in names], dtype=bool)
    e_splits = []
    for name, split in zip(split_names, splits):
        width = split.counts.shape[0]
        parts = np.full((width, len(names)), -1, dtype=np.int64)
        kept = last.parts.get(name, {})
        for i, key in enumerate(names):
            if split.counts[0, i] < 0:
                continue
            vector = kept.get(key)
            if vector is not None and len(vector) == width:
                parts[:, i] = vector
            else:
                parts[:, i] = 0
                parts[width - 1, i] = e_count[i]
        e_splits.append(Split(parts))
    return Earlier(e_count, e_hidden, e_splits)


def _layer(release: LastRelease, names: Sequence[str]) -> Earlier:
    """A release that published counts only, laid out on this release's identities: a cell it
    did not have is -1 (no variable, no equation: its table was not published then), and no
    breakdown (nothing of what anyone answered was published; the parts a reader could assume
    then are free, which adds nothing the cells' own growth does not)."""
    e_count = np.array([release.count.get(k, -1) for k in names], dtype=np.int64)
    e_hidden = np.array([k in release.hidden for k in names], dtype=bool)
    return Earlier(e_count, e_hidden & (e_count >= 0))


@dataclass(frozen=True)
class Split:
    """How the protected measure splits into parts in one published breakdown, e.g. a
    question's answers per code: ``counts[c, i]`` is the part ``c`` of identity number ``i``
    (the parts of an identity add up to its count; a residual part such as "no answer" is one
    of them), -1 where the breakdown has no such identity (a table it does not cover). A reader
    of a published cell knows all its parts; of a hidden cell none, only that they add up."""

    counts: np.ndarray  # (parts, identities), int64
    # (parts, identities): what a reader knows each part to be at least (the parts a release
    # published for the cell; counts only grow), None: 0
    floor: np.ndarray | None = None


def _components(n: int, rows: Iterable[Iterable[int]]) -> list[list[int]]:
    """Groups of unknowns that share an equation, directly or through others (union-find)."""
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for cols in rows:
        cols = list(cols)
        first = root(cols[0])
        for c in cols[1:]:
            other = root(c)
            if other != first:
                parent[other] = first
    groups: dict[int, list[int]] = defaultdict(list)
    for j in range(n):
        groups[root(j)].append(j)
    return list(groups.values())


@dataclass(frozen=True)
class Earlier:
    """The release before this one, as the audit needs it (identities by number): each cell's
    value then (0 for a cell the release did not have), whether it was hidden, and its parts
    in each breakdown (aligned with this release's :class:`Split` list)."""

    count: np.ndarray  # int64
    hidden: np.ndarray  # bool
    splits: Sequence[Split] = ()


@dataclass
class Intervals:
    """The audit's result for the hidden cells (in ``unknown``'s order) and for the cells whose
    change since the earlier release it was asked about: the least change a reader can prove."""

    lower: np.ndarray
    upper: np.ndarray
    least_change: dict[int, int] = field(default_factory=dict)


class _Program:
    """One group of linked cells as an integer program: blocks of one variable per cell (a
    release's cells, or a breakdown part of them), each block with the tables' relations over
    its values (every identity's, the group's and the relations' known terms; a published cell
    fixed at its value, a hidden one free), and growth between releases (``releases``: how many,
    the blocks split evenly between them; ``growth``: pairs (later, earlier) of release
    indices, each cell and part at least its earlier value). A value below 0 is a cell the
    release (or breakdown) does not have: no equation and no growth through it.
    ``parts_of``: the blocks are parts of the cells (block c of release r is
    ``blocks[r * parts + c]``), summing to cells given at :meth:`solve_given`."""

    def __init__(self, group, relations, blocks, cap, low, releases: int, growth: Sequence[tuple[int, int]] = (), parts_of: bool = False) -> None:
        from scipy.sparse import coo_array

        size = len(group)
        local = {ident: g for g, ident in enumerate(group)}
        self.size, self.width = size, size * len(blocks)
        rows, cols, vals, lb, ub = [], [], [], [], []

        def add(entries, lo, hi):
            r = len(lb)
            for col, v in entries:
                rows.append(r)
                cols.append(col)
                vals.append(v)
            lb.append(lo)
            ub.append(hi)

        index = np.asarray(group, dtype=np.intp)
        for b, (values, _hidden) in enumerate(blocks):
            for coeffs, fixed in relations:
                if any(values[i] < 0 for i in itertools.chain(coeffs, fixed)):
                    continue  # a relation of a table this breakdown does not cover
                rhs = -sum(v * int(values[i]) for i, v in fixed.items())
                add([(b * size + local[i], v) for i, v in coeffs.items()], rhs, rhs)
        blocks = [(values[index], hidden[index]) for values, hidden in blocks]
        per = len(blocks) // releases
        for later, before in growth:  # counts only grow, block by block
            for b in range(per):
                now_values, now_hidden = blocks[later * per + b]
                then_values, then_hidden = blocks[before * per + b]
                for g in range(size):
                    if (now_hidden[g] or then_hidden[g]) and then_values[g] >= 0 and now_values[g] >= then_values[g]:
                        add([((later * per + b) * size + g, 1.0), ((before * per + b) * size + g, -1.0)], 0, np.inf)
        self.sum_rows = []  # (row, release, cell): the parts of a hidden cell add up to it
        if parts_of:
            for r in range(releases):
                hidden = blocks[r * per][1]
                covered = blocks[r * per][0] >= 0
                for g in np.flatnonzero(hidden & covered).tolist():
                    self.sum_rows.append((len(lb), r, g))
                    add([((r * per + c) * size + g, 1.0) for c in range(per)], 0, 0)
        self.matrix = coo_array((vals, (rows, cols)), shape=(len(lb), self.width)).tocsr()
        self.lb, self.ub = np.array(lb, dtype=float), np.array(ub, dtype=float)
        self.relax = True  # the relaxation first, until one of its vertices is fractional
        self.lower = np.empty(self.width)
        self.upper = np.empty(self.width)
        for b, (values, hidden) in enumerate(blocks):
            sl = slice(b * size, (b + 1) * size)
            v = values.astype(float)
            self.lower[sl] = np.where(hidden, low[b], np.maximum(v, 0))
            self.upper[sl] = np.where(hidden, np.where(v < 0, 0.0, cap), np.maximum(v, 0))

    def solve_given(self, cells: np.ndarray, options=None) -> bool:
        lb, ub = self.lb.copy(), self.ub.copy()
        for row, r, g in self.sum_rows:
            lb[row] = ub[row] = cells[r * self.size + g]
        x, self.relax = _whole_solution(np.zeros(self.width), self.matrix, lb, ub, self.lower, self.upper, options, self.relax)
        return x is not None


class _Joint:
    """The cells' program with some breakdowns' parts included (their parts add up to the cell
    variables): a tighter relaxation of the whole, grown one breakdown at a time where the
    cells it finds have no parts in a breakdown left out."""

    def __init__(self, master: _Program, subs: Sequence[_Program]) -> None:
        self.master, self.subs, self.included = master, subs, []
        self.relax = True  # the relaxation first, until one of its vertices is fractional
        self._build()

    def include(self, s_i: int) -> None:
        self.included.append(s_i)
        self._build()

    def _build(self) -> None:
        from scipy.sparse import block_diag, coo_array, vstack

        programs = [self.master] + [self.subs[i] for i in self.included]
        matrix = block_diag([p.matrix for p in programs], format="csr") if len(programs) > 1 else self.master.matrix
        lb = np.concatenate([p.lb for p in programs])
        ub = np.concatenate([p.ub for p in programs])
        # Each included breakdown's "parts add up to the cell" rows take the cell variable in.
        rows, cols = [], []
        row_offset, col_offset = self.master.lb.size, self.master.width
        for p in programs[1:]:
            for row, r, g in p.sum_rows:
                rows.append(row_offset + row)
                cols.append(r * self.master.size + g)
            row_offset += p.lb.size
            col_offset += p.width
        if rows:
            link = coo_array((-np.ones(len(rows)), (rows, cols)), shape=matrix.shape).tocsr()
            matrix = (matrix + link).tocsr()
        self.matrix, self.lb, self.ub = matrix, lb, ub
        self.lower = np.concatenate([p.lower for p in programs])
        self.upper = np.concatenate([p.upper for p in programs])
        self.width = self.lower.size

    def solve(self, hold: dict[int, tuple[float, float]], change=None, options=None, objective=None):
        from scipy.sparse import coo_array, vstack

        lower, upper = self.lower.copy(), self.upper.copy()
        for g, (lo, hi) in hold.items():
            lower[g], upper[g] = max(lower[g], lo), min(upper[g], hi)
            if lower[g] > upper[g]:
                return None
        matrix, lb, ub = self.matrix, self.lb, self.ub
        g, at_most = change if change is not None else (None, None)
        if at_most is not None:
            row = coo_array(([1.0, -1.0], ([0, 0], [g, self.master.size + g])), shape=(1, self.width))
            matrix, lb, ub = vstack([matrix, row], format="csr"), np.append(lb, -np.inf), np.append(ub, at_most)
        objective = np.zeros(self.width) if objective is None else objective
        x, self.relax = _whole_solution(objective, matrix, lb, ub, lower, upper, options, self.relax)
        return None if x is None else x[: self.master.width]


def _whole_solution(objective, matrix, lb, ub, lower, upper, options=None, relax: bool = True) -> tuple[np.ndarray | None, bool]:
    """A whole-number solution of ``lb <= matrix @ x <= ub``, ``lower <= x <= upper``, or None
    when there is none (or none was found within the time limit in ``options``); and whether
    to try the relaxation first next time for the same program (not after a fractional vertex:
    a large program whose vertices are fractional would pay for the relaxation every time).

    The linear relaxation first (HiGHS's simplex, a vertex): without a solution there, there
    is none in whole numbers; a vertex in whole numbers that satisfies every row and bound
    (checked here, in exact arithmetic after rounding) is a solution. The tables' equations are
    mostly network-like (a cell adds to its line totals once), so the vertex is usually whole
    and the branch and bound (scipy's ``milp``, run only otherwise) is rarely needed. Either way
    the answer is the integer program's: the relaxation only shortcuts it."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    width = lower.size
    constraints = [LinearConstraint(matrix, lb, ub)] if lb.size else []
    bounds = Bounds(lower, upper)
    options = options or {}
    if relax:
        relaxed = milp(objective, integrality=np.zeros(width), bounds=bounds, constraints=constraints, options=options)
        if relaxed.status == 2:  # the relaxation has no solution
            return None, True
        if relaxed.x is not None:
            x = np.round(relaxed.x)
            if np.all(np.abs(x - relaxed.x) <= 1e-6) and np.all(x >= lower) and np.all(x <= upper):
                rows = matrix @ x if lb.size else np.zeros(0)
                if np.all(rows >= lb) and np.all(rows <= ub):
                    return x, True
            relax = False
    res = milp(objective, integrality=np.ones(width), bounds=bounds, constraints=constraints, options=options)
    return (None if res.x is None else res.x), relax


def audit(
    equations: Sequence[tuple[int, list[int]]],
    count: Sequence[int],
    unknown: Sequence[int],
    *,
    floor: Sequence[int] | None = None,
    upper: Sequence[int | None] | None = None,
    splits: Sequence[Split] = (),
    earlier: Earlier | None = None,
    chain: Sequence[Earlier] = (),
    changes: Iterable[int] = (),
    targets: Sequence[tuple[float | None, float | None]] | None = None,
    time_limit: float | None = None,
    cache: dict | None = None,
) -> Intervals:
    """What a reader holding every published number can prove about each hidden cell: the
    values it can take in the whole-number solutions of the tables' equations, every count at
    least its ``floor`` (0, or what earlier releases proved) and at most its published ``upper``
    limit. Identities are numbers; ``count`` holds every identity's value: the published ones
    are what the reader knows, the rest is the truth, one solution to start from.

    The audit searches for solutions, one group of linked cells at a time, until each hidden
    cell has shown what its ``targets`` ask: ``(low, high)``, a solution with the cell at most
    ``low`` and one with it at least ``high`` (either may be None); ``(None, None)`` (and no
    targets): some solution with another value than its count (not pinned). Each search is a
    HiGHS feasibility program (scipy ``milp``) with the cell held to the target; every solution
    found counts for every cell of the group, so most cells need none of their own. The
    program holds the cells and, by constraint generation, the breakdowns that matter: cells
    are found first, then every breakdown is checked for parts of those cells on its own (given
    the cells, breakdowns are independent); one that has none joins the program (:class:`_Joint`)
    and the search repeats, so a round whose answers constrain little stays a small program.
    :class:`Intervals` gives per hidden cell the least and greatest value seen: a target it
    did not reach cannot be reached (or was not found within ``time_limit`` seconds per
    search, which counts the same: the audit never claims protection it has not shown).

    ``splits``: published breakdowns of the measure (:class:`Split`). Each adds, per hidden
    cell, one unknown per part, the tables' equations for every part (over the identities the
    breakdown has) and "the parts add up to the cell".

    ``earlier``: the previous release, which the reader holds too. Its hidden cells (and their
    parts) are unknowns with the same equations over its published values, and every cell and
    part can only have grown since (answers are added; where a count fell, an erasure, nothing
    is assumed). ``changes``: cells (numbers) for which a solution where the cell has not grown
    since the earlier release is searched: a reader must not be able to prove a cell gained
    1..T-1 respondents (it would read the few who joined); ``least_change`` is the least growth
    seen. ``cache``: the answers of earlier audits of the same decision, per group (kept by the
    caller between the audits of one decision; a group is searched again only when it changed).

    ``chain``: releases after ``earlier`` that published counts only (oldest first), held the
    same way: their hidden cells are unknowns with their equations, and every count only grows
    from ``earlier`` through each of them to this release (their cells only: no part of a
    breakdown was published then)."""

    count = np.asarray(count, dtype=np.int64)
    n = len(unknown)
    floor_arr = np.zeros(n) if floor is None else np.asarray(floor, dtype=float)
    upper_arr = np.full(n, np.inf) if upper is None else np.array([np.inf if u is None else u for u in upper], dtype=float)
    upper_arr = np.maximum(upper_arr, floor_arr)
    result = Intervals(floor_arr.copy(), upper_arr.copy())
    hidden_now = np.zeros(len(count), dtype=bool)
    hidden_now[list(unknown)] = True
    hidden_then = earlier.hidden if earlier is not None else np.zeros(len(count), dtype=bool)
    involved = hidden_now | hidden_then  # unknown in at least one release
    for layer in chain:
        involved = involved | layer.hidden
    position = {u: j for j, u in enumerate(unknown)}
    # Each relation: the involved identities with their coefficients, and the others (known in
    # both releases) with theirs.
    relations = []
    for agg, parts in equations:
        coeffs: dict[int, int] = defaultdict(int)
        fixed: dict[int, int] = defaultdict(int)
        for ident, sign in [(agg, 1)] + [(q, -1) for q in parts]:
            (coeffs if involved[ident] else fixed)[ident] += sign
        coeffs = {c: v for c, v in coeffs.items() if v}
        if coeffs:
            relations.append((coeffs, {c: v for c, v in fixed.items() if v}))
    # In a fixed order (the equations come from sets): the same tables give the same programs,
    # so the same solutions, in every process.
    relations.sort(key=lambda r: (sorted(r[0].items()), sorted(r[1].items())))
    wanted_changes = set(changes)
    if not relations:
        return result
    members = sorted(set(itertools.chain.from_iterable(r[0] for r in relations)))
    index = {ident: m for m, ident in enumerate(members)}
    options = {"time_limit": time_limit} if time_limit else {}
    releases = [(count, hidden_now, list(splits))]
    if earlier is not None:
        releases.append((earlier.count, hidden_then, list(earlier.splits)))
    # The chain's releases carry no breakdown (nothing of what anyone answered was published).
    releases += [(layer.count, layer.hidden, []) for layer in chain]
    # Counts only grow: earlier -> chain (oldest first) -> now. Release 0 is now, 1 the earlier
    # one, then the chain's; the parts grow straight from the earlier release to now.
    first_chain = len(releases) - len(chain)
    order = ([1] if earlier is not None else []) + list(range(first_chain, len(releases))) + [0]
    growth = list(zip(order[1:], order[:-1]))
    for group_local in _components(len(members), ([index[c] for c in r[0]] for r in relations)):
        group = [members[m] for m in group_local]
        if not any(i in position or i in wanted_changes for i in group):
            continue  # cells hidden in earlier releases only: nothing of this release to audit
        local = {ident: g for g, ident in enumerate(group)}
        rel = [r for r in relations if next(iter(r[0])) in local]
        cap = np.array([upper_arr[position[i]] if i in position else np.inf for i in group])
        low = np.array([floor_arr[position[i]] if i in position else 0.0 for i in group])
        # A group whose program is the same as in an earlier audit of the same decision (its
        # cells, which of them are hidden now, their targets, floors and limits; everything
        # else is fixed for the decision) has the same answer: only groups a new partner
        # changed are searched again.
        key = (
            tuple(group), hidden_now[group].tobytes(), low.tobytes(), cap.tobytes(),
            tuple(targets[position[i]] if targets is not None and i in position else None for i in group),
            tuple(i in wanted_changes for i in group),
        )
        known = cache.get(key) if cache is not None else None
        if known is not None:
            seen_lo, seen_hi, change_lo = (None if a is None else a.copy() for a in known)
        else:
            # The cells of each release (the master program), then each breakdown's parts given the
            # cells (one program per breakdown: given the cells, breakdowns are independent).
            cells = [(values, hidden) for values, hidden, _ in releases]
            master = _Program(group, rel, cells, cap, [low] + [np.zeros(len(group))] * (len(cells) - 1), len(cells), growth)
            subs = []
            # The parts: this release and the earlier one only (the chain published none; the
            # cells' growth through it is the master program's).
            with_parts = releases[: 2 if earlier is not None else 1]
            for s_i in range(len(splits)):
                blocks = []
                for values, hidden, release_splits in with_parts:
                    counts = release_splits[s_i].counts
                    blocks += [(counts[c], hidden) for c in range(counts.shape[0])]
                floor = splits[s_i].floor
                lows = [floor[c, group].astype(float) if floor is not None else np.zeros(len(group)) for c in range(splits[s_i].counts.shape[0])]
                lows += [np.zeros(len(group))] * (len(blocks) - len(lows))
                subs.append(_Program(group, rel, blocks, cap, lows, len(with_parts), [(0, 1)] if earlier is not None else [], parts_of=True))
            truth = np.concatenate([np.maximum(values[group], 0) for values, _ in cells]).astype(float)
            size = len(group)
            seen_lo = truth[:size].copy()
            seen_hi = truth[:size].copy()
            change_lo = truth[:size] - truth[size: 2 * size] if earlier is not None else None

            def record(x: np.ndarray) -> None:
                nonlocal change_lo
                cur = np.round(x[:size])
                np.minimum(seen_lo, cur, out=seen_lo)
                np.maximum(seen_hi, cur, out=seen_hi)
                if change_lo is not None:
                    np.minimum(change_lo, cur - np.round(x[size: 2 * size]), out=change_lo)

            joint = _Joint(master, subs)

            def reachable(g: int, lo_: float = -np.inf, hi_: float = np.inf, change_at_most: float | None = None) -> bool:
                """Whether a solution has cell g within [lo_, hi_] (grown by at most change_at_most):
                cells from the joint program, then every breakdown left out of it checked for
                parts of those cells; one without takes its parts into the joint program (for the
                rest of the group) and the search repeats. The joint program is a relaxation of the
                whole, so when it has no solution there is none."""
                while True:
                    x = joint.solve({g: (lo_, hi_)}, (g, change_at_most), options)
                    if x is None:
                        return False
                    cells_x = np.round(x)
                    missing = next((i for i in range(len(subs)) if i not in joint.included and not subs[i].solve_given(cells_x, options)), None)
                    if missing is None:
                        record(cells_x)
                        return True
                    joint.include(missing)

            for g, ident in enumerate(group):
                if ident in position:
                    j = position[ident]
                    target_lo, target_hi = targets[j] if targets is not None else (None, None)
                    if target_lo is None and target_hi is None:  # not pinned: any other value will do
                        c = float(count[ident])
                        if seen_lo[g] >= c and seen_hi[g] <= c:
                            reachable(g, hi_=c - 1) or reachable(g, lo_=c + 1)
                    else:
                        if target_lo is not None and seen_lo[g] > target_lo:
                            reachable(g, hi_=target_lo)
                        if target_hi is not None and seen_hi[g] < target_hi:
                            reachable(g, lo_=target_hi)
                if ident in wanted_changes and change_lo is not None and change_lo[g] > 0:
                    reachable(g, change_at_most=0)
            if cache is not None:
                cache[key] = (seen_lo.copy(), seen_hi.copy(), None if change_lo is None else change_lo.copy())
        for g, ident in enumerate(group):
            if ident in position:
                j = position[ident]
                result.lower[j] = max(seen_lo[g], floor_arr[j])
                result.upper[j] = seen_hi[g]
            if ident in wanted_changes and change_lo is not None:
                result.least_change[ident] = int(change_lo[g])
    return result


def suppress_table(
    table: CountTable, *, min_count: int = SUPPRESSION_THRESHOLD, caution_below: int = CAUTION_BELOW
) -> SuppressedTable:
    """:func:`suppress` for a single table."""
    return suppress([table], min_count=min_count, caution_below=caution_below)[0]
