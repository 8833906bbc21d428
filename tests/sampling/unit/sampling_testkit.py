"""Statistical checks and frame builders for the sampling unit tests.

The checks are deterministic (fixed master seeds), so "passes" and "fails" are facts
about the code, not luck; their false-alarm rate for a correct sampler is bounded by the
family-wise α (Bonferroni over all units/strata), and they are shown to catch biased
samplers in test_sampling_draw_statistics.py.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

from services.sampling.domain import Allocation, SampledUnit, StratumKey, adjust, allocate

Frame = list[tuple[str, StratumKey]]
Sampler = Callable[[Frame, Allocation, int], list[SampledUnit]]

ALPHA = 1e-3  # family-wise false-alarm bound of each statistical check


def chi2_sf(x: float, df: int) -> float:
    """P(χ²_df > x), exact closed forms for integer df (no scipy needed)."""
    if x <= 0:
        return 1.0
    if df % 2 == 0:
        # Poisson identity: e^{-x/2} Σ_{j<df/2} (x/2)^j / j!
        term, total = 1.0, 1.0
        for j in range(1, df // 2):
            term *= (x / 2) / j
            total += term
        return math.exp(-x / 2) * total
    root = math.sqrt(x)
    total = 2 * (1 - NormalDist().cdf(root))
    term = root * math.exp(-x / 2) * math.sqrt(2 / math.pi)
    for j in range(1, (df - 1) // 2 + 1):
        total += term
        term *= x / (2 * j + 1)
    return total


def seeds(master_seed: int, draws: int) -> list[int]:
    rng = random.Random(master_seed)
    return [rng.getrandbits(63) for _ in range(draws)]


def allocation_with_sizes(frame: Frame, sizes: dict[StratumKey, int]) -> Allocation:
    """An allocation for `frame` with exactly the given n_h (via the operator override,
    so the public API builds it)."""
    counts = Counter(key for _, key in frame)
    return adjust(allocate(counts), sizes)


@dataclass(frozen=True)
class InclusionReport:
    draws: int
    counts: Counter[str]  # times each unit was drawn
    subsets: dict[StratumKey, Counter[frozenset[str]]]  # samples seen per stratum
    stated_pi: dict[str, float]  # π the sampler claimed for each unit
    problems: list[str]  # failed checks, human-readable

    @property
    def passed(self) -> bool:
        return not self.problems


def check_inclusion(
    sampler: Sampler,
    frame: Frame,
    allocation: Allocation,
    draws: int,
    master_seed: int,
    alpha: float = ALPHA,
) -> InclusionReport:
    """Draw `draws` samples with seeds from `master_seed` and test that the sampler does
    what it claims (checks 2 and 3 each at family-wise level `alpha`, so a correct
    sampler fails with probability ≤ 2·alpha for a random master seed):

    1. every draw has exactly n_h units per stratum and claims π = n_h / N_h;
    2. per unit: the count c_i ~ Binomial(draws, π_i) — two-sided z-test, Bonferroni
       over units (π ∈ {0, 1} must be met exactly);
    3. per stratum: Σ (c_i − Rπ)² / (Rπ(1−π)) · (N−1)/N ~ χ²_{N−1}, the joint test of
       all units of a stratum (the factor corrects for SRSWOR's negative covariance
       of the counts, which sum to R·n_h by construction), Bonferroni over strata.
    Under the null hypothesis, draws with different seeds are independent, so the
    binomial model is exact; only the normal approximation is asymptotic (R·π·(1−π) is
    above 250 for the test frame).
    """
    by_stratum: dict[StratumKey, list[str]] = {}
    for uid, key in frame:
        by_stratum.setdefault(key, []).append(uid)
    pi = {
        uid: allocation.strata[key].inclusion_probability
        for key, ids in by_stratum.items()
        for uid in ids
    }
    counts: Counter[str] = Counter()
    subsets: dict[StratumKey, Counter[frozenset[str]]] = {k: Counter() for k in by_stratum}
    problems: list[str] = []
    stated: dict[str, float] = {}
    for seed in seeds(master_seed, draws):
        sample = sampler(frame, allocation, seed)
        drawn: dict[StratumKey, set[str]] = {k: set() for k in by_stratum}
        for unit in sample:
            drawn[unit.stratum].add(unit.unit_id)
            stated[unit.unit_id] = unit.inclusion_probability
        for key, chosen in drawn.items():
            if len(chosen) != allocation.strata[key].sample:
                problems.append(
                    f"{key}: drew {len(chosen)}, allocated {allocation.strata[key].sample}"
                )
            subsets[key][frozenset(chosen)] += 1
        counts.update(u.unit_id for u in sample)
    for uid, p in stated.items():
        if not math.isclose(p, pi[uid], rel_tol=1e-12):
            problems.append(f"{uid}: sampler states π={p}, allocation says {pi[uid]}")

    random_units = [uid for uid, p in pi.items() if 0 < p < 1]
    z_crit = NormalDist().inv_cdf(1 - alpha / (2 * max(1, len(random_units))))
    for uid, p in pi.items():
        expected = draws * p
        if p in (0.0, 1.0):
            if counts[uid] != expected:
                problems.append(f"{uid}: π={p} but drawn {counts[uid]} of {draws}")
            continue
        z = (counts[uid] - expected) / math.sqrt(draws * p * (1 - p))
        if abs(z) > z_crit:
            problems.append(
                f"{uid}: drawn {counts[uid]}, expected {expected:.1f} "
                f"(z={z:.2f}, limit {z_crit:.2f})"
            )

    testable = {k: ids for k, ids in by_stratum.items() if 0 < pi[ids[0]] < 1}
    for key, ids in testable.items():
        p, n_units = pi[ids[0]], len(ids)
        stat = sum((counts[u] - draws * p) ** 2 for u in ids) / (draws * p * (1 - p))
        stat *= (n_units - 1) / n_units
        p_value = chi2_sf(stat, n_units - 1)
        if p_value < alpha / len(testable):
            problems.append(f"{key}: χ²={stat:.1f} on {n_units - 1} df, p={p_value:.2e}")
    return InclusionReport(draws, counts, subsets, stated, problems)


def subset_uniformity_p_value(
    report: InclusionReport, key: StratumKey, stratum_ids: Sequence[str], n: int
) -> float:
    """Chi-square goodness of fit of the samples seen in one stratum against 'all
    C(N, n) subsets equally likely' — the definition of simple random sampling, which
    per-unit π alone does not prove (systematic sampling has the right π too)."""
    cells = [frozenset(c) for c in combinations(sorted(stratum_ids), n)]
    seen = report.subsets[key]
    if set(seen) - set(cells):
        raise AssertionError(f"{key}: a sample that is not an n-subset of the stratum")
    expected = report.draws / len(cells)
    stat = sum((seen.get(c, 0) - expected) ** 2 for c in cells) / expected
    return chi2_sf(stat, len(cells) - 1)


def stat_frame() -> tuple[Frame, dict[StratumKey, int]]:
    """A small frame with varied π (0, 1/6, 1/4, 1/3, 2/3, 1) and low-entropy,
    sequential ids, the hardest case for a hash-based random key."""
    layout: Sequence[tuple[StratumKey, int, int]] = (
        (("101", "dagpenge"), 12, 3),
        (("101", "aktivitetsparate"), 9, 6),
        (("101", "jobafklaring"), 4, 4),
        (("147", "sygedagpenge"), 30, 5),
        (("147", "job_og_uddannelsesparate"), 6, 2),
        (("147", "dagpenge"), 7, 0),
    )
    frame: Frame = []
    sizes: dict[StratumKey, int] = {}
    serial = 0
    for key, population, n in layout:
        for _ in range(population):
            serial += 1
            frame.append((f"P{serial:06d}", key))
        sizes[key] = n
    return frame, sizes


class PostgresSampler:
    """The service's draw (``draw_sql.select_sample``, the SQL the service runs) as a Sampler:
    each call loads the frame into a temporary table of a real PostgreSQL (only when it changed)
    and draws there. Runs its own event loop in a thread, so the sync statistical checks can
    call it thousands of times over one connection."""

    FRAME_SQL = "SELECT pseudonym, kommunekode, maalgruppe FROM pg_temp.frame"

    def __init__(self, admin_url: str) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._frame: Frame | None = None
        self._conn = self._run(self._connect(admin_url))

    def _run(self, coro):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _connect(self, admin_url: str):
        import asyncpg

        from shared.testing.fixtures import create_test_database

        url = await create_test_database(admin_url)
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute("CREATE TEMP TABLE frame (pseudonym text, kommunekode text, maalgruppe text)")
        return conn

    async def _draw(self, frame: Frame, allocation: Allocation, seed: int) -> list[SampledUnit]:
        from services.sampling.draw_sql import select_sample

        if frame != self._frame:
            await self._conn.execute("TRUNCATE pg_temp.frame")
            await self._conn.copy_records_to_table("frame", records=[(uid, k, g) for uid, (k, g) in frame])
            self._frame = list(frame)
        return await select_sample(self._conn, self.FRAME_SQL, [], allocation, seed)

    def __call__(self, frame: Frame, allocation: Allocation, seed: int) -> list[SampledUnit]:
        return self._run(self._draw(frame, allocation, seed))

    def fetch(self, sql: str, *args) -> list:
        return self._run(self._conn.fetch(sql, *args))

    def close(self) -> None:
        self._run(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
