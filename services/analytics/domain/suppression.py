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
   c. interval audit (:func:`audit`): integer programs give every hidden cell
      the interval a reader holding all published numbers can prove (counts at
      least 0 or what earlier releases proved, at most a published limit such
      as the invited). A primary cell's interval must reach from the value last
      published (0 for a cell never published) to ``min_count`` more; no other
      hidden cell may be fixed at a value not published before. A failing
      cell gets a published partner in one of its lines suppressed (one that
      can take up the difference) and we go back to (a).

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

Limitation: the audit works on the protected measure (respondents) only.
Figures published per answer code add equations it does not see (see
docs/analytics-method.md, known limits).
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
    "audit",
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


# A status's code in Decided.status.
STATUS_CODES: tuple[CellStatus, ...] = (CellStatus.PUBLISHED, CellStatus.PRIMARY, CellStatus.SECONDARY)


def suppress(
    tables: Sequence[CountTable],
    *,
    min_count: int = 5,
    caution_below: int = 20,
) -> list[SuppressedTable]:
    """Primary and secondary suppression over a round's (linked) tables."""
    decided = decide(tables, min_count=min_count)
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

    ``published``: each cell's value in the last release that published it. ``floor``: the
    lowest value a reader can prove for a cell from everything released so far: its published
    value, or for a hidden cell the audit's lower bound in the last release (counts only grow:
    answers are added, and an erasure lowering one is treated as if it had not, see
    :func:`audit`).
    """

    published: Mapping[str, int] = field(default_factory=dict)
    floor: Mapping[str, int] = field(default_factory=dict)


def decide(
    tables: Sequence[CountTable],
    *,
    min_count: int = 5,
    history: History | None = None,
    upper_bounds: Mapping[str, int] | None = None,
    audit_intervals: bool = True,
    withheld: Iterable[str] = (),
) -> Decided:
    """The decisions of :func:`suppress` (the module docstring's steps 1 to 3), as arrays.

    ``history``: the earlier releases of these tables (their changes are protected like
    counts, step 1b). ``upper_bounds``: published limits a reader knows for a cell (the number
    invited is an upper bound of its respondents), by :func:`cell_key`. ``withheld``: cells left
    out of this release whatever their counts (hidden, and protected like any hidden cell).
    ``audit_intervals``: run the interval audit (step 2c); without it the decisions are the line
    rule's and the exact check's only.
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

    # Every entry's count: the interior cells as given, each margin level the sum of those.
    by_number = np.full(len(shape.idents), -1, dtype=np.int64)
    for t, table in enumerate(tables):
        keys, n_interior, cells = shape.keys[t], shape.n_interior[t], table.cells
        interior = np.fromiter((cells.get(k, 0) for k in keys[:n_interior]), dtype=np.int64, count=n_interior)
        entries = np.zeros(len(keys), dtype=np.int64)
        entries[:n_interior] = interior
        for into in shape.into[t]:
            np.add.at(entries, into, interior)
        ids = shape.entry_ids[t]
        before = by_number[ids]
        clash = np.flatnonzero((before >= 0) & (before != entries))
        if len(clash):
            raise ValueError(f"tables disagree on {keys[int(clash[0])]!r} of {table.measure!r}")
        by_number[ids] = entries
    count: list[int] = by_number.tolist()
    everything = range(len(count))
    rank, lines = shape.rank, shape.lines
    names = [cell_key(original[measure], coords) for measure, coords in shape.idents]
    history = history or History()
    previous = [history.published.get(k) for k in names]
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
        lo, hi = audit(shape.equations(), known, unknown, floor=[floor[i] for i in unknown], upper=[bound[i] for i in unknown])
        lower = np.array(count, dtype=float)
        upper = np.array(count, dtype=float)
        lower[unknown], upper[unknown] = lo, hi
        added = False
        taken: set[int] = set()
        for j, i in enumerate(unknown):
            need = None
            if protected[i]:
                limit = reference[i] + min_count if bound[i] is None else min(reference[i] + min_count, bound[i])
                if lo[j] > reference[i]:
                    need = count[i] - reference[i]  # a partner that can take the cell down to what was known
                elif hi[j] < limit:
                    need = limit - count[i]  # a partner that can give the cell up to the limit
            elif lo[j] >= hi[j] and (previous[i] is None or lo[j] != previous[i]):
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
        if not added:
            break

    code = {st: i for i, st in enumerate(STATUS_CODES)}
    return Decided(
        shape.keys, shape.entry_ids, by_number, np.array([code[st] for st in status], dtype=np.int8),
        lower, upper, names,
    )


def audit(
    equations: Sequence[tuple[Hashable, list[Hashable]]],
    known: Mapping[Hashable, int],
    unknown: Sequence[Hashable],
    *,
    floor: Sequence[int] | None = None,
    upper: Sequence[int | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The interval [lower, upper] each hidden cell has for a reader who holds every published
    number: the smallest and largest value it takes in any whole-number solution of the
    tables' equations, every count at least its ``floor`` (0, or what earlier releases proved)
    and at most its published ``upper`` limit. Integer programs solved with HiGHS (scipy
    ``milp``), two per cell; cells the equations do not touch keep [floor, limit]."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    n = len(unknown)
    order = {u: j for j, u in enumerate(unknown)}
    floor_arr = np.zeros(n) if floor is None else np.asarray(floor, dtype=float)
    upper_arr = np.full(n, np.inf) if upper is None else np.array([np.inf if u is None else u for u in upper], dtype=float)
    upper_arr = np.maximum(upper_arr, floor_arr)
    rows, cols, vals, rhs = [], [], [], []
    for r, (coeffs, b) in enumerate(_equation_rows(equations, known, order)):
        for c, v in coeffs.items():
            rows.append(r)
            cols.append(c)
            vals.append(v)
        rhs.append(b)
    lo = floor_arr.copy()
    hi = upper_arr.copy()
    if not rhs:
        return lo, hi
    matrix = coo_array((vals, (rows, cols)), shape=(len(rhs), n)).tocsr()
    constraints = LinearConstraint(matrix, rhs, rhs)
    bounds = Bounds(floor_arr, upper_arr)
    integrality = np.ones(n)
    touched = np.zeros(n, dtype=bool)
    touched[np.unique(np.asarray(cols, dtype=np.intp))] = True
    for j in np.flatnonzero(touched).tolist():
        objective = np.zeros(n)
        for sign in (1.0, -1.0):
            objective[j] = sign
            result = milp(objective, integrality=integrality, bounds=bounds, constraints=constraints)
            if result.status == 0:
                value = round(sign * result.fun)
                if sign > 0:
                    lo[j] = value
                else:
                    hi[j] = value
            elif result.status in (3, 4) and sign < 0:  # unbounded above (4: "unbounded or infeasible")
                hi[j] = np.inf
            # infeasible (an erasure broke "counts only grow"): keep the a-priori interval
    return lo, hi


def suppress_table(
    table: CountTable, *, min_count: int = 5, caution_below: int = 20
) -> SuppressedTable:
    """:func:`suppress` for a single table."""
    return suppress([table], min_count=min_count, caution_below=caution_below)[0]
