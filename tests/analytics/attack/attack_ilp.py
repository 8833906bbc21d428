"""The attacker: an integer linear program over everything one reader was published.

Written from the published API and the public method only (docs/analytics-method.md); it never
imports analytics' suppression or publication code, so it was not designed around the defence.

Unknowns, per *block* (block 0 is the round at the first release; block j what was added between
release j-1 and release j; the round at release r is the sum of blocks 0..r, so counts can only
grow), all integers >= 0:

* ``n[k,g]``          respondents of stratum (municipality k, target group g)
* ``X[k,g,d,l]``      respondents of stratum (k,g) at level l of band d (gender, age, duration);
                      for every d, sum over l = n[k,g] (the bands of one stratum link here)
* ``A[k,a]``          respondents of municipality k in dispatch arm a; sum over a = sum over g
* ``S[q,k,g,c]``      respondents of stratum (k,g) with code c on question q
                      (c = 1..5, "dk" = ved ikke, "none" = no scale answer); sum over c = n[k,g]
* ``Y[q,k,g,d,l,c]``  the same by band level; sum over c = X[k,g,d,l], sum over l = S[q,k,g,c]

The band unknowns are split by stratum (k, g) only where a breakdown row carries weighted
figures (the weights N_h / n_h act by stratum); where breakdowns are unweighted they are kept per
municipality ("*"), a smaller program. Two bands are never crossed by a published table. The
program is a relaxation of the full cross-classification (every person-level table is one of
its solutions, not every solution is a person-level table): a count it pins is pinned; a count
it leaves open might still be narrowed by a stronger attacker.

Equations, from every published figure (each read for the release it came from):

* respondents: ``n_respondents`` of indicator rows, ``answers`` of response-rate rows and of the
  summary, ``response_rate x invited`` where only the rate shows;
* per question: ``n_answers``, ``n_valid``, ``n_dont_know``; the unweighted shares, top-two share
  and mean as exact ratios (count - p x base = 0, which decodes shares x n exactly);
* weighted shares, top-two share and mean: sum_h w_h (count_h - p x base_h) = 0 with
  w_h = N_h / n_h (N_h public from sample.drawn). Where n_h is not yet known the attacker splits
  cases: every value n_h can take is tried with its weight, and the values that make the
  published estimates impossible are dropped (up to four unknown weighting classes per row, combinations adding up to the known total);
* labels: suppression "primary" (< T) / "secondary" (>= T), ``few_answers`` (< T valid answers);
* public knowledge: invited per stratum and arm bound the respondents; a form whose questions all
  need an answer (``form_requires_answers``) has no "none" code.

Bounds of a cell are the minimum and maximum of its count over the integer solutions
(``scipy.optimize.milp``, HiGHS). The truth is always one solution; :meth:`Attack.check_truth`
asserts it, which checks the attacker's model (weights, share bases) against the service.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import csr_matrix, vstack

NATIONAL = "national"
TOTAL = "total"
SCALE = (1, 2, 3, 4, 5)
DK = "dk"
NONE = "none"
CODES = SCALE + (DK, NONE)
ANSWERED = SCALE + (DK,)
BAND_DIMS = ("gender", "age_band", "duration_band")
DIMS = ("maalgruppe",) + BAND_DIMS
WEIGHT_TOL = 1e-5  # rows scaled so the smallest weight is 1; a wrong integer count moves a row by >> this
RATIO_TOL = 1e-6  # a wrong whole-number count misses a ratio by >= 1/base, far more than this


@dataclass
class Knowledge:
    """What any reader knows besides the tables: the municipalities and target groups of the
    round, N_h (sample.drawn), the answer bands of the form, the questions, whether the form
    requires an answer to every question, and the method's threshold."""

    kommuner: list[str]
    groups: list[str]
    levels: dict[str, tuple[str, ...]]  # band dimension -> levels
    arms: tuple[str, ...]
    questions: tuple[str, ...]
    population: dict[tuple[str, str], int]
    form_requires_answers: bool = True
    threshold: int = 5


@dataclass
class CellResult:
    kind: str  # "respondents" | "n_valid" | "delta"
    key: tuple
    truth: int
    lo: int
    hi: int
    threshold: int = 5
    solved: bool = False  # False: [lo, hi] is the range over solutions found (the true one is wider)
    published_before: int | None = None  # the value an earlier release the reader holds published

    @property
    def old_news(self) -> bool:
        """Pinned at the value an earlier release already published: nothing new is learnt."""
        return self.published_before is not None and self.lo == self.hi == self.published_before

    @property
    def exact(self) -> bool:
        return self.lo == self.hi

    @property
    def narrowed(self) -> bool:
        """Narrower than the protection level: exact, or a count below T whose interval does
        not hold both 0 and T (the reader learns whether it is 0, 1-4 or 5+)."""
        if self.kind == "delta":
            return 1 <= self.lo and self.hi < self.threshold
        if self.old_news:
            return False
        if self.exact:
            return True
        if self.kind == "n_valid":  # per-question counts: only exact recovery is scored
            return False
        return self.truth < self.threshold and not (self.lo == 0 and self.hi >= self.threshold)


def _float(value):
    return None if value is None else float(value)


class Attack:
    def __init__(self, know: Knowledge, releases: list, *, time_limit: float = 20.0, verbose: bool = False):
        self.verbose = verbose
        self.k = know
        self.releases = releases  # list of harvest.Published, oldest first
        self.blocks = len(releases)
        self.time_limit = time_limit
        self.names: list[tuple] = []
        self.index: dict[tuple, int] = {}
        self.ub: list[float] = []
        self.rows: list[tuple[dict, float, float, str]] = []
        self.solves = 0
        self._cached = None
        self.pool: list[np.ndarray] = []  # integer solutions found (each consistent with everything published)
        self.solve_seconds = 0.0
        self.notes: list[str] = []
        self.zero_published = False
        self.band_strata = any(
            row.get(name) is not None
            for pub in releases
            for (q, dim, km, lv), row in pub.indicators.items()
            if dim in BAND_DIMS and lv != TOTAL
            for name in ("mean", "share_1", "dont_know_share", "top2_share")
        )
        for b in range(self.blocks):
            self._variables(b)
        # Strata whose n_h bounds are known, per release: (r, k, g) -> (lo, hi)
        self.n_bounds: dict[tuple, tuple[int, int]] = {}
        self.weighted_unresolved = 0
        self.max_unknown = 4  # unknown weighting classes per row tried case by case
        self.case_splits: list[tuple] = []
        self.weighted_pending: list[tuple] = []
        for r, pub in enumerate(releases):
            self._equations(r, pub)

    # -- unknowns --------------------------------------------------------------------------------

    def _var(self, name: tuple, ub: float = np.inf) -> int:
        self.index[name] = len(self.names)
        self.names.append(name)
        self.ub.append(ub)
        return self.index[name]

    def _band_groups(self) -> list[str]:
        """The target groups the band unknowns are split by: every stratum where a breakdown
        row carries weighted figures (their weights act by stratum), else one "*" per
        municipality (a smaller program that loses nothing when breakdowns are unweighted)."""
        return list(self.k.groups) if self.band_strata else ["*"]

    def _variables(self, b: int) -> None:
        k = self.k
        zero_none = lambda c: 0 if (c == NONE and k.form_requires_answers) else np.inf  # noqa: E731
        for km in k.kommuner:
            for g in k.groups:
                self._var(("n", b, km, g))
                for q in k.questions:
                    for c in CODES:
                        self._var(("S", b, q, km, g, c), zero_none(c))
            for g in self._band_groups():
                for d in BAND_DIMS:
                    for lv in k.levels[d]:
                        self._var(("X", b, km, g, d, lv))
                        for q in k.questions:
                            for c in CODES:
                                self._var(("Y", b, q, km, g, d, lv, c), zero_none(c))
            for a in k.arms:
                self._var(("A", b, km, a))
        # Linking within the block.
        for km in k.kommuner:
            total = {self.index[("n", b, km, g)]: 1.0 for g in k.groups}
            for g in k.groups:
                for q in k.questions:
                    self._eq({self.index[("n", b, km, g)]: -1.0, **{self.index[("S", b, q, km, g, c)]: 1.0 for c in CODES}}, 0, "link n=sum S")
            for g in self._band_groups():
                n = {self.index[("n", b, km, g)]: -1.0} if g != "*" else {i: -1.0 for i in total}
                codes = (lambda q, c: {self.index[("S", b, q, km, g, c)]: -1.0}) if g != "*" else (
                    lambda q, c: {self.index[("S", b, q, km, h, c)]: -1.0 for h in k.groups})
                for d in BAND_DIMS:
                    self._eq({**n, **{self.index[("X", b, km, g, d, lv)]: 1.0 for lv in k.levels[d]}}, 0, "link n=sum X")
                    for q in k.questions:
                        for lv in k.levels[d]:
                            self._eq({self.index[("X", b, km, g, d, lv)]: -1.0, **{self.index[("Y", b, q, km, g, d, lv, c)]: 1.0 for c in CODES}}, 0, "link X=sum Y")
                        for c in CODES:
                            self._eq({**codes(q, c), **{self.index[("Y", b, q, km, g, d, lv, c)]: 1.0 for lv in k.levels[d]}}, 0, "link S=sum Y")
            self._eq({**{self.index[("A", b, km, a)]: 1.0 for a in k.arms}, **{i: -1.0 for i in total}}, 0, "link arms")

    # -- expressions -----------------------------------------------------------------------------

    def _cell(self, kommune: str, dimension: str, level: str):
        ks = self.k.kommuner if kommune == NATIONAL else [kommune]
        band = (dimension, level) if dimension in BAND_DIMS and level != TOTAL else None
        gs = [level] if dimension == "maalgruppe" and level != TOTAL else self._band_groups() if band else self.k.groups
        return ks, gs, band

    def stratum_resp(self, r: int, km: str, g: str, band, first: int = 0) -> dict:
        if band is None:
            return {self.index[("n", b, km, g)]: 1.0 for b in range(first, r + 1)}
        if band[1] not in self.k.levels[band[0]]:
            return {}
        return {self.index[("X", b, km, g, band[0], band[1])]: 1.0 for b in range(first, r + 1)}

    def stratum_codes(self, r: int, q: str, km: str, g: str, band, codes, coef=None, first: int = 0) -> dict:
        out = {}
        for b in range(first, r + 1):
            for c in codes:
                w = 1.0 if coef is None else coef(c)
                if band is None:
                    out[self.index[("S", b, q, km, g, c)]] = w
                elif band[1] in self.k.levels[band[0]]:
                    out[self.index[("Y", b, q, km, g, band[0], band[1], c)]] = w
        return out

    def resp(self, r: int, kommune: str, dimension: str, level: str, first: int = 0) -> dict:
        """Respondents of a cell at release r (``first`` = r: only those added since release r-1)."""
        if dimension == "arm":
            ks = self.k.kommuner if kommune == NATIONAL else [kommune]
            if level == TOTAL:
                return _sum(self.stratum_resp(r, km, g, None, first) for km in ks for g in self.k.groups)
            if level not in self.k.arms:
                return {}
            return {self.index[("A", b, km, level)]: 1.0 for km in ks for b in range(first, r + 1)}
        ks, gs, band = self._cell(kommune, dimension, level)
        return _sum(self.stratum_resp(r, km, g, band, first) for km in ks for g in gs)

    def codes(self, r: int, q: str, kommune: str, dimension: str, level: str, codes, coef=None, first: int = 0) -> dict:
        ks, gs, band = self._cell(kommune, dimension, level)
        return _sum(self.stratum_codes(r, q, km, g, band, codes, coef, first) for km in ks for g in gs)

    # -- constraints -----------------------------------------------------------------------------

    def _eq(self, expr: dict, value: float, why: str, tol: float = 0.0) -> None:
        self.rows.append((expr, value - tol, value + tol, why))

    def _range(self, expr: dict, lo: float, hi: float, why: str) -> None:
        self.rows.append((expr, lo, hi, why))

    def _ratio(self, num: dict, den: dict, p: float, why: str) -> None:
        """num - p x den = 0: a share (or mean) decoded exactly against its integer base."""
        expr = dict(num)
        for i, v in den.items():
            expr[i] = expr.get(i, 0.0) - p * v
        self._eq(expr, 0.0, why, RATIO_TOL)

    def _label(self, expr: dict, row: dict, why: str) -> None:
        t = self.k.threshold
        label = row.get("suppression")
        if label == "primary":
            self._range(expr, 0, t - 1, f"{why}: primary")
        elif label == "secondary":
            self._range(expr, t, np.inf, f"{why}: secondary")

    def _equations(self, r: int, pub) -> None:
        k = self.k
        t = k.threshold
        for (q, dim, km, lv), row in pub.indicators.items():
            if q not in k.questions or dim not in DIMS:
                continue
            where = f"r{r} {q}/{dim}/{km}/{lv}"
            resp = self.resp(r, km, dim, lv)
            answered = self.codes(r, q, km, dim, lv, ANSWERED)
            valid = self.codes(r, q, km, dim, lv, SCALE)
            dk = self.codes(r, q, km, dim, lv, (DK,))
            for column, expr in (("n_respondents", resp), ("n_answers", answered), ("n_valid", valid), ("n_dont_know", dk)):
                if row.get(column) is not None:
                    self._eq(expr, row[column], f"{where} {column}")
                    if row[column] == 0 and not row.get("suppressed"):
                        self.zero_published = True
            if row.get("suppressed"):
                self._label(valid, row, where)
            # few_answers speaks of a published row only (a suppressed row says False).
            if row.get("suppressed"):
                pass
            elif row.get("few_answers") is True:
                self._range(valid, 0, t - 1, f"{where} few_answers")
            elif row.get("few_answers") is False:
                self._range(valid, t, np.inf, f"{where} not few_answers")
            # Unweighted figures: exact ratios.
            for c in SCALE:
                if (p := _float(row.get(f"share_{c}_unweighted"))) is not None:
                    self._ratio(self.codes(r, q, km, dim, lv, (c,)), answered, p, f"{where} share_{c}_unweighted")
            if (p := _float(row.get("dont_know_share_unweighted"))) is not None:
                self._ratio(dk, answered, p, f"{where} dont_know_share_unweighted")
            if (p := _float(row.get("top2_share_unweighted"))) is not None:
                self._ratio(self.codes(r, q, km, dim, lv, (4, 5)), valid, p, f"{where} top2_unweighted")
            if (p := _float(row.get("mean_unweighted"))) is not None:
                self._ratio(self.codes(r, q, km, dim, lv, SCALE, coef=float), valid, p, f"{where} mean_unweighted")
            # Weighted figures: need the strata's n_h (later, see resolve_weights).
            if row.get("weighting", "strata") in ("strata", "strata_pooled") and any(
                row.get(name) is not None for name in ("mean", "share_1", "dont_know_share")
            ):
                self.weighted_pending.append((r, q, dim, km, lv, row))
        for (dim, km, lv), row in pub.rates.items():
            if dim == "summary":
                dim = "maalgruppe"
            elif dim not in ("maalgruppe", "arm"):
                continue
            where = f"r{r} rates/{dim}/{km}/{lv}"
            expr = self.resp(r, km, dim, lv)
            if row.get("answers") is not None:
                self._eq(expr, row["answers"], f"{where} answers")
                if row["answers"] == 0:
                    self.zero_published = True
            elif (p := _float(row.get("response_rate"))) is not None and row.get("invited"):
                self._eq(expr, round(p * row["invited"]), f"{where} rate x invited")
            if row.get("invited") is not None:
                self._range(expr, 0, row["invited"], f"{where} invited")
            if row.get("suppressed"):
                self._label(expr, row, where)

    # -- weighted equations ----------------------------------------------------------------------

    def _weighted_rows(self, r, q, dim, km, lv, row, classes: list[tuple[tuple, int]]) -> list[tuple[dict, float, float, str]]:
        """sum_c w_c sum_{h in c} (num_h - p base_h) = 0 for every weighted figure of the row;
        ``classes``: (strata of a weighting class, its respondents n_c), w_c = N_c / n_c (a
        class with n_c = 0 adds nothing)."""
        _, _, band = self._cell(km, dim, lv)
        weights = [(strata, sum(self.k.population[h] for h in strata) / n) for strata, n in classes if n > 0]
        if not weights:
            return []
        low = min(w for _, w in weights)
        figures = [(f"share_{c}", (c,), ANSWERED, None) for c in SCALE]
        figures += [("dont_know_share", (DK,), ANSWERED, None), ("top2_share", (4, 5), SCALE, None), ("mean", SCALE, SCALE, float)]
        out = []
        for name, num_codes, den_codes, coef in figures:
            p = _float(row.get(name))
            if p is None:
                continue
            expr: dict[int, float] = {}
            for strata, w in weights:
                w = w / low
                for h in strata:
                    for i, v in self.stratum_codes(r, q, h[0], h[1], band, num_codes, coef).items():
                        expr[i] = expr.get(i, 0.0) + w * v
                    for i, v in self.stratum_codes(r, q, h[0], h[1], band, den_codes).items():
                        expr[i] = expr.get(i, 0.0) - w * p * v
            out.append((expr, -WEIGHT_TOL, WEIGHT_TOL, f"r{r} {q}/{dim}/{km}/{lv} {name} weighted"))
        return out

    def _classes(self, r: int, dim: str, km: str, lv: str, row: dict) -> list[tuple] | None:
        """The weighting classes of a weighted row, as published: "strata" (the default) one per
        stratum; "strata_pooled" one per published stratum and one of the cell's suppressed
        strata together. None where the reader cannot tell which strata are suppressed."""
        ks, gs, _ = self._cell(km, dim, lv)
        strata = [(a, g) for a in ks for g in gs]
        if row.get("weighting", "strata") == "strata":
            return [(h,) for h in strata]
        pub = self.releases[r]
        hidden, shown = [], []
        for h in strata:
            status = [v.get("suppressed") for (q, d, k2, l2), v in pub.indicators.items() if d == "maalgruppe" and k2 == h[0] and l2 == h[1]]
            status += [v.get("suppressed") for (d, k2, l2), v in pub.rates.items() if d == "maalgruppe" and k2 == h[0] and l2 == h[1]]
            if not status:
                return None
            (hidden if any(status) else shown).append(h)
        return [(h,) for h in shown] + ([tuple(hidden)] if hidden else [])

    def class_resp(self, r: int, strata: tuple) -> dict:
        return _sum(self.stratum_resp(r, h[0], h[1], None) for h in strata)

    def pinned(self, expr: dict) -> int | None:
        """The expression's value where the published figures fix it, else None: two known
        solutions differing disprove it at once; else the linear relaxation pins it (the
        integer program then does too), else the integer program decides."""
        lo, hi = self.seen(expr)
        if lo != hi:
            return None
        relaxed = [self.bound(expr, sign, relaxed=True) for sign in (1.0, -1.0)]
        if relaxed[0] == relaxed[1]:
            return relaxed[0]
        lo, hi = self.bounds(expr)
        return lo if lo == hi else None

    def resolve_weights(self, rounds: int = 3, max_cases: int = 400) -> None:
        # max_cases: value combinations tried per group of rows (each one integer program).
        """Add the weighted equations: directly where the respondents of every weighting class of
        the row are known, else by trying every value of the (at most four) unknown ones and
        keeping those that agree with what is published."""
        items = []
        for item in self.weighted_pending:
            r, q, dim, km, lv, row = item
            classes = self._classes(r, dim, km, lv, row)
            if classes is None:
                self.notes.append(f"weighting classes unknown to this reader: {q}/{dim}/{km}/{lv}")
                continue
            items.append((item, classes))
        self.weighted_pending = []
        known: dict[tuple, int | None] = {}
        self.explore([self.class_resp(r, c) for (r, *_), classes in items for c in classes])
        for _ in range(rounds):
            progress = False
            for (r, *_), classes in items:
                for c in classes:
                    if known.get((r, c)) is None:
                        known[(r, c)] = self.pinned(self.class_resp(r, c))
            still, groups = [], {}
            for item, classes in items:
                r, q, dim, km, lv, row = item
                unknown = tuple(c for c in classes if known[(r, c)] is None)
                if not unknown:
                    self.rows.extend(self._weighted_rows(r, q, dim, km, lv, row, [(c, known[(r, c)]) for c in classes]))
                    progress = True
                    continue
                still.append((item, classes))
                if len(unknown) <= self.max_unknown:
                    groups.setdefault((r, unknown), []).append((item, classes))
            items = still
            for (r, unknown), members in groups.items():
                for c in unknown:
                    if (r, c) not in self.n_bounds:
                        self.n_bounds[(r, c)] = self.bounds(self.class_resp(r, c))
                ranges = [range(self.n_bounds[(r, c)][0], self.n_bounds[(r, c)][1] + 1) for c in unknown]
                # The unknown classes of a row add up to its cell's respondents less the known ones.
                (item0, classes0) = members[0]
                total = self.pinned(_sum(self.class_resp(r, c) for c in unknown))
                if math.prod(len(x) for x in ranges) > 20000:
                    continue
                combos = [x for x in itertools.product(*ranges) if total is None or sum(x) == total]
                if len(combos) > max_cases:
                    continue
                feasible = []
                for combo in combos:
                    extra = [(self.class_resp(r, c), v, v, "case") for c, v in zip(unknown, combo)]
                    for (r_, q, dim, km, lv, row), classes in members:
                        value = {c: known[(r, c)] for c in classes if known[(r, c)] is not None} | dict(zip(unknown, combo))
                        extra += self._weighted_rows(r, q, dim, km, lv, row, [(c, value[c]) for c in classes])
                    if self.feasible(extra):
                        feasible.append(combo)
                if not feasible:
                    self.notes.append(f"no case consistent for {unknown} at release {r}")
                    continue
                self.case_splits.append((r, unknown, len(combos), len(feasible)))
                for j, c in enumerate(unknown):
                    lo, hi = min(x[j] for x in feasible), max(x[j] for x in feasible)
                    if (lo, hi) != self.n_bounds[(r, c)]:
                        self.n_bounds[(r, c)] = (lo, hi)
                        self._range(self.class_resp(r, c), lo, hi, f"r{r} {c} weighted cases")
                        if lo == hi:
                            known[(r, c)] = lo
                        progress = True
            if not progress:
                break
        self.weighted_unresolved = len(items)

    # -- solving ---------------------------------------------------------------------------------

    def _matrix(self, extra=()):
        if self._cached is None or self._cached[0] != len(self.rows):
            data, ri, ci, lo, hi = [], [], [], [], []
            for n, (expr, a, b, _) in enumerate(self.rows):
                for i, v in expr.items():
                    ri.append(n)
                    ci.append(i)
                    data.append(v)
                lo.append(a)
                hi.append(b)
            A = csr_matrix((data, (ri, ci)), shape=(len(self.rows), len(self.names)))
            self._cached = (len(self.rows), A, np.array(lo, dtype=float), np.array(hi, dtype=float))
        _, A, lo, hi = self._cached
        if not extra:
            return A, lo, hi
        data, ri, ci = [], [], []
        for n, (expr, a, b, _) in enumerate(extra):
            for i, v in expr.items():
                ri.append(n)
                ci.append(i)
                data.append(v)
        B = csr_matrix((data, (ri, ci)), shape=(len(extra), len(self.names)))
        return vstack([A, B]).tocsr(), np.concatenate([lo, [e[1] for e in extra]]), np.concatenate([hi, [e[2] for e in extra]])

    def _solve(self, c: np.ndarray, extra=(), relaxed: bool = False, presolve: bool = True):
        A, lo, hi = self._matrix(extra)
        started = time.perf_counter()
        res = milp(
            c,
            integrality=np.zeros(len(self.names)) if relaxed else np.ones(len(self.names)),
            bounds=(np.zeros(len(self.names)), np.array(self.ub)),
            constraints=LinearConstraint(A, lo, hi),
            options={"time_limit": self.time_limit, "presolve": presolve},
        )
        self.solves += 1
        self.solve_seconds += time.perf_counter() - started
        if self.verbose:
            print(f"solve {self.solves} status {res.status} {time.perf_counter() - started:.2f}s extra={len(extra)}", flush=True)
        if res.x is not None and not extra and not relaxed:
            self.pool.append(np.round(res.x))
        return res

    def feasible(self, extra=()) -> bool:
        if self._solve(np.zeros(len(self.names)), extra, relaxed=True).status == 2:
            return False  # not even the linear relaxation
        res = self._solve(np.zeros(len(self.names)), extra)
        if res.status == 1:  # time limit: count it as feasible (the attacker learns nothing)
            self.notes.append("feasibility check hit the time limit")
            return True
        return res.status == 0

    def _vector(self, expr: dict) -> np.ndarray:
        c = np.zeros(len(self.names))
        for i, v in expr.items():
            c[i] = v
        return c

    def bound(self, expr: dict, sign: float, extra=(), relaxed: bool = False) -> int:
        """min (sign 1) or max (sign -1) of an integer expression over the attacker's integer
        solutions; a solve stopped by the time limit gives its proven bound (the attacker
        claims no more than it can prove)."""
        res = self._solve(sign * self._vector(expr), extra, relaxed)
        if res.status == 2 and not extra:  # a program with a known solution: HiGHS's tolerances, retry
            res = self._solve(sign * self._vector(expr), extra, relaxed, presolve=False)
        elif res.status == 0 and not extra and not relaxed and self.pool:
            # HiGHS's presolve (scipy 1.17) has returned an optimum that a known whole-number
            # solution beats; the attacker claims nothing it cannot prove: solve again without.
            known = self.seen(expr)
            if (sign > 0 and res.fun > known[0] + 1e-6) or (sign < 0 and -res.fun < known[1] - 1e-6):
                self.notes.append("presolve's optimum beaten by a known solution: solved again without presolve")
                res = self._solve(sign * self._vector(expr), extra, relaxed, presolve=False)
        if res.status == 0:
            value = sign * res.fun
        elif res.status == 1 and getattr(res, "mip_dual_bound", None) is not None:
            value = sign * res.mip_dual_bound
            self.notes.append("bound from a time-limited solve")
        elif res.status == 2:
            raise AssertionError("HiGHS calls the attacker's program infeasible although the truth solves it (numerics)")
        else:
            self.notes.append(f"solver status {res.status}: {res.message}")
            return 0 if sign > 0 else 10**9
        return math.ceil(value - 1e-6) if sign > 0 else math.floor(value + 1e-6)

    def bounds(self, expr: dict, extra=()) -> tuple[int, int]:
        return self.bound(expr, 1.0, extra), self.bound(expr, -1.0, extra)

    def seen(self, expr: dict) -> tuple[int, int]:
        """The range of the expression over the integer solutions found so far that satisfy
        every equation now known (each one a proof that the value is possible): an inner bound
        of the attacker's interval."""
        A, lo, hi = self._matrix()
        P = np.stack(self.pool)
        AP = A @ P.T
        ok = np.all((AP >= lo[:, None] - 1e-5) & (AP <= hi[:, None] + 1e-5), axis=0)
        ok &= np.all(P <= np.array(self.ub)[None, :] + 1e-9, axis=1)
        self.pool = [p for p, good in zip(self.pool, ok) if good]
        assert self.pool, "no known solution: add the truth to the pool first"
        values = np.stack(self.pool) @ self._vector(expr)
        return int(round(values.min())), int(round(values.max()))

    def judge(self, kind: str, key: tuple, expr: dict, truth: int, *, change: bool = False) -> "CellResult":
        """The attacker's interval for one hidden count, as far as the verdict needs it: solved
        exactly (HiGHS) wherever the solutions found so far do not already show the count
        protected. ``change``: the count is a change between releases, protected unless it is
        known to lie in 1..T-1."""
        t = self.k.threshold
        lo, hi = self.seen(expr)
        solved = False
        if change:
            if lo >= 1 and hi < t:  # no solution seen with 0 or >= T new respondents here
                lo, hi, solved = self.bound(expr, 1.0), self.bound(expr, -1.0), True
        elif truth < t:
            if lo > 0:
                lo, solved = self.bound(expr, 1.0), True
            if hi < t:
                hi, solved = self.bound(expr, -1.0), True
        elif lo == hi:
            lo, solved = self.bound(expr, 1.0), True
            if lo == truth:
                hi = self.bound(expr, -1.0)
        return CellResult(kind, key, truth, lo, hi, t, solved)

    def judge_exact(self, kind: str, key: tuple, expr: dict, truth: int) -> "CellResult":
        """Only whether the count is recovered exactly (per-question counts of hidden rows)."""
        lo, hi = self.seen(expr)
        solved = False
        if lo == hi:
            lo, solved = self.bound(expr, 1.0), True
            if lo == truth:
                hi = self.bound(expr, -1.0)
        return CellResult(kind, key, truth, lo, hi, self.k.threshold, solved)

    def explore(self, exprs: list[dict], directions: int = 2, seed: int = 0) -> None:
        """Integer solutions far apart (each hidden count pushed down, then up, then random
        mixes), so most cells are shown protected by solutions already found."""
        if not exprs:
            return
        total = _sum(exprs)
        self.bound(total, 1.0)
        self.bound(total, -1.0)
        rng = np.random.default_rng(seed)
        for _ in range(directions):
            signs = rng.choice((-1.0, 1.0), size=len(exprs))
            self.bound(_sum({i: s * v for i, v in e.items()} for s, e in zip(signs, exprs)), 1.0)

    # -- the truth (for checking the model and scoring only; never used to attack) --------------

    def truth_vector(self, blocks: list[list]) -> np.ndarray:
        """Respondents per block (objects with kommunekode, maalgruppe, gender, age_band,
        duration_band, arm, answers) as a solution vector."""
        x = np.zeros(len(self.names))
        for b, people in enumerate(blocks):
            for p in people:
                km, g = p.kommunekode, p.maalgruppe
                x[self.index[("n", b, km, g)]] += 1
                x[self.index[("A", b, km, p.arm)]] += 1
                bg = g if self.band_strata else "*"
                for d in BAND_DIMS:
                    x[self.index[("X", b, km, bg, d, getattr(p, d))]] += 1
                for q in self.k.questions:
                    c = p.answers.get(q, NONE)
                    x[self.index[("S", b, q, km, g, c)]] += 1
                    for d in BAND_DIMS:
                        x[self.index[("Y", b, q, km, bg, d, getattr(p, d), c)]] += 1
        return x

    def check_truth(self, blocks: list[list]) -> list[str]:
        """The rows the truth violates (empty: the attacker's model is a true statement about
        the published data)."""
        x = self.truth_vector(blocks)
        bad = []
        for expr, lo, hi, why in self.rows:
            v = sum(x[i] * c for i, c in expr.items())
            if v < lo - 1e-6 or v > hi + 1e-6:
                bad.append(f"{why}: {v} not in [{lo}, {hi}]")
        return bad


def _sum(parts) -> dict:
    out: dict[int, float] = {}
    for part in parts:
        for i, v in part.items():
            out[i] = out.get(i, 0.0) + v
    return out


def true_count(people, kommune: str, dimension: str, level: str, question: str | None = None, codes=None) -> int:
    def inside(p) -> bool:
        if kommune != NATIONAL and p.kommunekode != kommune:
            return False
        if level == TOTAL:
            return True
        return getattr(p, dimension) == level

    if question is None:
        return sum(1 for p in people if inside(p))
    return sum(1 for p in people if inside(p) and p.answers.get(question, NONE) in codes)


def hidden_cells(view) -> list[tuple]:
    """(dimension, kommunekode, level) of every cell some published row of the view hides."""
    hidden: set[tuple] = set()
    for (q, dim, km, lv), row in view.indicators.items():
        if row.get("suppressed"):
            hidden.add((dim, km, lv))
    for (dim, km, lv), row in view.rates.items():
        if row.get("suppressed") and dim not in UNMODELLED_RATE_DIMENSIONS:
            hidden.add(("maalgruppe" if dim == "summary" else dim, km, lv))
    return sorted(hidden)


# The response rates by answer mode and language: the generated rounds answer on the web in
# Danish only, so those tables repeat each municipality's total (web, da) and zeros; the attacker
# neither reads nor scores them (the differencing reader of tests/analytics/integration/
# test_analytics_api.py reads them on a round answered in several modes and languages). The
# response rates by adaptive follow-up arm: the generated rounds run no follow-up rule, so that
# table is not published for them at all (tests/analytics/unit/test_analytics_rates_by_followup.py
# checks its suppression on rounds that run one).
UNMODELLED_RATE_DIMENSIONS = ("mode", "language", "followup")


def _published_before(earlier: list, kind: str, key: tuple):
    for pub in reversed(earlier):
        if kind == "respondents":
            dim, km, lv = key

            def same(d, k, l) -> bool:
                # A municipality's (or the nation's) total is one number in every table.
                return (d, k, l) == key or (lv == TOTAL and (k, l) == (km, lv))

            for (q, d, k, l), row in pub.indicators.items():
                if same(d, k, l) and not row.get("suppressed") and row.get("n_respondents") is not None:
                    return row["n_respondents"]
            for (d, k, l), row in pub.rates.items():
                if (same(d, k, l) or (d == "summary" and dim == "maalgruppe" and (k, l) == (km, lv))) and row.get("answers") is not None:
                    return row["answers"]
        elif (row := pub.indicators.get(key)) and not row.get("suppressed") and row.get("n_valid") is not None:
            return row["n_valid"]
    return None


def score(attack: Attack, people: list, view, *, release: int = 0, per_question: bool = True, earlier: list = ()) -> list[CellResult]:
    """The attacker's interval of every count the view hides: respondents of each
    (municipality or national) x level cell of which any published row is suppressed, and the
    valid answers of each suppressed question row whose true count is 1..T-1."""
    t = attack.k.threshold
    targets = []
    for dim, km, lv in hidden_cells(view):
        targets.append(("respondents", (dim, km, lv), attack.resp(release, km, dim, lv), true_count(people, km, dim, lv)))
    if per_question:
        for (q, dim, km, lv), row in sorted(view.indicators.items()):
            if row.get("suppressed") and q in attack.k.questions:
                truth = true_count(people, km, dim, lv, q, SCALE)
                if 1 <= truth < t:
                    targets.append(("n_valid", (q, dim, km, lv), attack.codes(release, q, km, dim, lv, SCALE), truth))
    attack.explore([e for _, _, e, _ in targets])
    out = []
    for kind, key, expr, truth in targets:
        cell = attack.judge(kind, key, expr, truth) if kind == "respondents" else attack.judge_exact(kind, key, expr, truth)
        cell.published_before = _published_before(list(earlier), kind, key)
        out.append(cell)
    return out


def score_change(attack: Attack, old: list, new: list, view, kommuner: list[str], arms) -> list[CellResult]:
    """What the attacker knows of the respondents added between two releases (blocks 0 and 1 of
    ``attack``): per (municipality or national) x level cell of every dimension, and per
    question and answer code at each total, the interval of the number added."""
    added = [p for p in new if p.pseudonym not in {o.pseudonym for o in old}]
    visible = {km for (_, _, km, _) in view.indicators} | {km for (_, km, _) in view.rates}
    areas = [NATIONAL] + [km for km in kommuner if km in visible]
    targets = []
    for km in areas:
        for dim in DIMS + ("arm",):
            levels = (TOTAL,) + (tuple(attack.k.groups) if dim == "maalgruppe" else tuple(arms) if dim == "arm" else attack.k.levels[dim])
            for lv in levels:
                truth = true_count(added, km, dim, lv)
                targets.append(("delta", ("respondents", dim, km, lv), attack.resp(1, km, dim, lv, first=1), truth))
        for q in attack.k.questions:
            for c in ANSWERED:
                truth = true_count(added, km, "maalgruppe", TOTAL, q, (c,))
                targets.append(("delta", (q, c, km), attack.codes(1, q, km, "maalgruppe", TOTAL, (c,), first=1), truth))
    attack.explore([e for _, _, e, _ in targets])
    return [attack.judge(kind, key, expr, truth, change=True) for kind, key, expr, truth in targets]


def summary(results: list[CellResult]) -> dict:
    delta = [c for c in results if c.kind == "delta"]
    if delta:
        return {
            "change_cells": len(delta),
            "known_to_gain_1_to_4": sum(c.narrowed for c in delta),
            "examples": [(c.key, c.lo, c.hi) for c in delta if c.narrowed][:8],
        }
    resp = [c for c in results if c.kind == "respondents"]
    valid = [c for c in results if c.kind == "n_valid"]
    return {
        "hidden_cells": len(resp),
        "exact": sum(c.exact and not c.old_news for c in resp),
        "pinned_at_earlier_published_value": sum(c.old_news for c in results),
        "narrowed": sum(c.narrowed for c in resp),
        "below_T": sum(c.truth < c.threshold for c in resp),
        "below_T_exact": sum(c.exact and not c.old_news for c in resp if c.truth < c.threshold),
        "question_rows_1_4": len(valid),
        "question_rows_exact": sum(c.exact and not c.old_news for c in valid),
        "examples": [(c.key, c.truth, c.lo, c.hi) for c in results if c.narrowed][:6],
    }
