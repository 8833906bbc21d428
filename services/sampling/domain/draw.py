"""The draw: stratified simple random sampling without replacement, reproducible from a
recorded seed, plus the population margins needed for weighting afterwards.

How the draw works (order sampling with permanent random numbers): every unit gets a
64-bit key = hash of (seed, unit_id); within each stratum the n_h units with the smallest
keys are taken (ties, about once in 1e8 national draws, by the id). If the keys behave like
independent uniform draws, every subset of size n_h is equally likely, i.e. simple random
sampling without replacement, with π = n_h / N_h. Because a key depends only on (seed,
unit_id), the sample does not depend on the order of the frame or on the other strata, and a
recorded seed reproduces it.

The service draws inside PostgreSQL (``services.sampling.draw_sql``: a seeded random
permutation per stratum with row_number()); `draw_sample` here is the plain-Python reference
of the same draw, unit for unit and in the same order, for audits ("why was this citizen
drawn?" is `unit_key`) and for tests. The key is PostgreSQL's ``hashtextextended(unit_id,
seed)`` (Bob Jenkins' lookup3 over the id's UTF-8 bytes, 64-bit, seeded; the hash PostgreSQL
also partitions tables by), ported below and checked bit for bit against the server by the
tests (a server whose hash differed, e.g. on big-endian hardware, would fail them). It is a
statistical hash, not a cryptographic one: the seed is recorded, not secret. Draws recorded
before this key was adopted (a MurmurHash-based one) are not reproduced by it.

Consequence to remember: the same seed in two rounds selects largely the same people.
Use `new_seed()` for every round and record it.
"""

from __future__ import annotations

import gc
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

import numpy as np

from .allocation import Allocation
from .strata import FrameUnit, Kommunekode, Maalgruppe, StratumKey

SEED_BITS = 63  # fits a signed BIGINT column where the seed is recorded


class SampleError(ValueError):
    """The frame does not match the allocation, or the seed or an id is unusable."""


class SampledUnit(NamedTuple):
    """One drawn unit. A NamedTuple rather than a dataclass on purpose: a draw creates
    ~130,000 of them and tuple construction is several times cheaper than a frozen
    dataclass's __init__, which would otherwise dominate the draw's time."""

    unit_id: str
    kommunekode: Kommunekode
    maalgruppe: Maalgruppe
    inclusion_probability: float  # π = n_h / N_h
    design_weight: float  # 1 / π = N_h / n_h: how many citizens this unit stands for

    @property
    def stratum(self) -> StratumKey:
        return (self.kommunekode, self.maalgruppe)


def new_seed() -> int:
    """A fresh seed for a round; record it with the round so the draw can be redone."""
    return secrets.randbits(SEED_BITS)


def unit_key(seed: int, unit_id: str) -> int:
    """The random sort key of one unit, exactly PostgreSQL's ``hashtextextended(unit_id, seed)``
    (a signed 64-bit integer; ``draw_sql.KEY_SQL``): plain-Python reference, so that an auditor
    can recompute why a citizen was drawn. Units are ranked by (key, unit_id)."""
    check_seed(seed)
    data = unit_id.encode("utf-8")
    v = [(0x9E3779B9 + len(data) + 3923095) & _M32] * 3  # a, b, c
    if seed:
        v[0] = (v[0] + (seed >> 32)) & _M32
        v[1] = (v[1] + seed) & _M32
        _mix(v)
    full = len(data) // 12
    for i in range(full):
        for j in range(3):
            v[j] = (v[j] + int.from_bytes(data[12 * i + 4 * j : 12 * i + 4 * j + 4], "little")) & _M32
        _mix(v)
    tail = data[12 * full :]
    # The last 0-11 bytes: little-endian into a and b; into c shifted by one byte (its
    # lowest byte is "reserved for the length").
    v[0] = (v[0] + int.from_bytes(tail[0:4], "little")) & _M32
    v[1] = (v[1] + int.from_bytes(tail[4:8], "little")) & _M32
    v[2] = (v[2] + (int.from_bytes(tail[8:11], "little") << 8)) & _M32
    _final(v)
    key = (v[1] << 32) | v[2]
    return key - (1 << 64) if key >= 1 << 63 else key


def draw_sample(
    frame: Iterable[tuple[str, StratumKey]], allocation: Allocation, seed: int
) -> list[SampledUnit]:
    """Draw the sample: n_h units by simple random sampling without replacement in each
    stratum of the allocation.

    `frame` holds (unit_id, (kommunekode, maalgruppe)) for every eligible unit, in any
    order; its counts per stratum must equal the allocation's N_h (otherwise the stated
    π would be wrong). The result is grouped by stratum (sorted); within a stratum units
    come in their random order, so any prefix is itself a simple random sample — handy
    for randomly assigning dispatch strategies.
    """
    check_seed(seed)
    pairs = frame if isinstance(frame, (list, tuple)) else list(frame)
    strata = list(allocation.strata.values())
    index = {s.key: i for i, s in enumerate(strata)}
    ids: list[str] = list(map(itemgetter(0), pairs))
    try:
        codes = np.fromiter(
            map(index.__getitem__, map(itemgetter(1), pairs)), dtype=np.int64, count=len(pairs)
        )
    except KeyError as exc:
        raise SampleError(
            f"frame has a unit in stratum {exc.args[0]!r} with no allocation"
        ) from None

    population = np.array([s.population for s in strata], dtype=np.int64)
    sample = np.array([s.sample for s in strata], dtype=np.int64)
    if np.any(sample < 0) or np.any(sample > population):
        raise SampleError("allocation has a stratum with n_h outside 0..N_h")
    counts = np.bincount(codes, minlength=len(strata))
    if not np.array_equal(counts, population):
        bad = [
            f"{strata[i].key}: frame {counts[i]}, allocation N_h {population[i]}"
            for i in np.flatnonzero(counts != population)[:5]
        ]
        raise SampleError("frame does not match the allocation: " + "; ".join(bad))
    if not ids:
        return []

    keys = _unit_keys(ids, seed)
    order = _stratified_order(ids, codes, keys)
    # Rank of each unit within its stratum; take ranks 0..n_h-1.
    starts = np.cumsum(counts) - counts
    ordered_codes = codes[order]
    rank = np.arange(len(order)) - starts[ordered_codes]
    picked = order[rank < sample[ordered_codes]].tolist()

    result: list[SampledUnit] = []
    offset = 0
    # Building ~130,000 tuples would trigger the cyclic GC dozens of times, each pass
    # walking the whole frame (a third of the draw's time); tuples of strings and
    # floats cannot form cycles, so pausing it is safe.
    with _gc_paused():
        for s in strata:
            if not s.sample:
                continue
            # Same float objects for the whole stratum (allocation.design_weight defines them).
            pi, weight = s.inclusion_probability, s.design_weight
            chosen = map(ids.__getitem__, picked[offset : offset + s.sample])
            # tuple.__new__ through map: builds the NamedTuples without a Python-level call.
            result.extend(
                map(
                    tuple.__new__,
                    repeat(SampledUnit),
                    zip(
                        chosen,
                        repeat(s.kommunekode),
                        repeat(s.maalgruppe),
                        repeat(pi),
                        repeat(weight),
                    ),
                )
            )
            offset += s.sample
    return result


@dataclass(frozen=True)
class Margins:
    """Population counts for post-stratification/raking, all within municipality."""

    strata: Mapping[StratumKey, int]  # N_h: the maalgruppe margin
    municipalities: Mapping[Kommunekode, int]
    # variable → (kommunekode, band) → count; every variable's bands sum to the
    # municipality total (units lacking a band count under MISSING_BAND).
    variables: Mapping[str, Mapping[tuple[Kommunekode, str], int]]

    def for_municipality(self, kommunekode: Kommunekode) -> dict[str, dict[str, int]]:
        """All margins of one municipality, maalgruppe included, as {variable: {band: N}}."""
        out = {"maalgruppe": {g: n for (k, g), n in self.strata.items() if k == kommunekode}}
        for name, counts in self.variables.items():
            out[name] = {band: n for (k, band), n in counts.items() if k == kommunekode}
        return out


MISSING_BAND = "ukendt"  # "unknown": keeps each margin summing to the population


def margins(
    frame_with_bands: Iterable[FrameUnit], variables: Sequence[str] | None = None
) -> Margins:
    """Count the eligible population (after exclusions, i.e. the same units as the draw's
    frame) per stratum and per band of each background variable within municipality.

    `variables` defaults to every band name seen in the frame, e.g. koen, aldersgruppe,
    varighed.
    """
    units = list(frame_with_bands)
    names = (
        list(variables)
        if variables is not None
        else sorted({name for u in units for name in u.bands})
    )
    strata: Counter[StratumKey] = Counter()
    per_variable: dict[str, Counter[tuple[Kommunekode, str]]] = {n: Counter() for n in names}
    for u in units:
        strata[(u.kommunekode, u.maalgruppe)] += 1
        for name in names:
            per_variable[name][(u.kommunekode, u.bands.get(name, MISSING_BAND))] += 1
    municipalities: Counter[Kommunekode] = Counter()
    for (kode, _), n in strata.items():
        municipalities[kode] += n
    return Margins(
        strata=dict(sorted(strata.items())),
        municipalities=dict(sorted(municipalities.items())),
        variables={n: dict(sorted(c.items())) for n, c in per_variable.items()},
    )


# --- internals -------------------------------------------------------------------------


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << SEED_BITS:
        raise SampleError(f"seed must be an int in [0, 2**{SEED_BITS}), got {seed!r}")


_M32 = 0xFFFFFFFF


# lookup3's mix() and final(), one definition for a single key (Python ints, ``unit_key``) and for
# many (uint32 arrays, ``_unit_keys``: the same operators, wrapping at 32 bits). Both are rounds
# over (a, b, c) turned by one place each round, k the round's rotation:
#   mix:   x -= z; x ^= rot(z, k); z += y   with (x, y, z) = (a, b, c), (b, c, a), (c, a, b), (a, b, c), ...
#   final: z ^= y; z -= rot(y, k)           with (y, z) = (b, c), (c, a), (a, b), (b, c), ...
_MIX_ROTATIONS = (4, 6, 8, 16, 19, 4)
_FINAL_ROTATIONS = (14, 11, 25, 16, 4, 14, 24)


def _rot(x, k: int):
    return ((x << k) & _M32) | (x >> (32 - k))


def _mix(v: list) -> None:
    """mix() on ``v`` = [a, b, c], in place (the arrays too)."""
    for i, k in enumerate(_MIX_ROTATIONS):
        x, y, z = i % 3, (i + 1) % 3, (i + 2) % 3
        v[x] -= v[z]
        v[x] &= _M32
        v[x] ^= _rot(v[z], k)
        v[z] += v[y]
        v[z] &= _M32


def _final(v: list) -> None:
    """final() on ``v`` = [a, b, c], in place (the arrays too)."""
    for i, k in enumerate(_FINAL_ROTATIONS):
        y, z = (i + 1) % 3, (i + 2) % 3
        v[z] ^= v[y]
        v[z] -= _rot(v[y], k)
        v[z] &= _M32


def _unit_keys(ids: list[str], seed: int) -> np.ndarray:
    """unit_key for all ids (int64 array), vectorised over the ids of each byte length."""
    encoded = [uid.encode("utf-8") for uid in ids]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    if len(encoded) and lengths.min() == 0:
        raise SampleError("unit ids must not be empty")
    if any(b"\0" in e for e in encoded):  # PostgreSQL text cannot hold them
        raise SampleError("unit ids must not contain NUL characters")
    keys = np.empty(len(encoded), dtype=np.uint64)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        data = np.frombuffer(b"".join(encoded[i] for i in rows.tolist()), dtype=np.uint8).reshape(len(rows), length)
        keys[rows] = _keys_of_length(data, length, seed)
    return keys.view(np.int64)


def _keys_of_length(data: np.ndarray, length: int, seed: int) -> np.ndarray:
    n = data.shape[0]
    v = [np.full(n, (0x9E3779B9 + length + 3923095) & _M32, dtype=np.uint32) for _ in range(3)]  # a, b, c
    with np.errstate(over="ignore"):
        if seed:
            v[0] += np.uint32((seed >> 32) & _M32)
            v[1] += np.uint32(seed & _M32)
            _mix(v)
        full = length // 12
        if full:
            words = np.ascontiguousarray(data[:, : 12 * full]).view("<u4").reshape(n, full, 3)
            for i in range(full):
                for j in range(3):
                    v[j] += words[:, i, j]
                _mix(v)
        tail = np.zeros((n, 12), dtype=np.uint8)
        tail[:, : length - 12 * full] = data[:, 12 * full :]
        t = tail.view("<u4").reshape(n, 3)
        v[0] += t[:, 0]
        v[1] += t[:, 1]
        v[2] += t[:, 2] << np.uint32(8)  # bytes 8-10; the lowest byte of c is the length's
        _final(v)
    _, b, c = v
    return (b.astype(np.uint64) << np.uint64(32)) | c.astype(np.uint64)


def _stratified_order(ids: list[str], codes: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Indices sorted by (stratum, key): a sort by key, then a stable (radix) sort by
    stratum, is faster than lexsort. The first sort need not be stable: equal keys are
    detected below and handled without relying on input order."""
    by_key = np.argsort(keys)
    sorted_keys = keys[by_key]
    tied = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if tied.size:
        # Equal keys mean a duplicated id (same id, same key) or, about once in 1e8
        # draws of 500,000, a genuine 64-bit collision between different ids.
        clashing = Counter(ids[i] for i in by_key[np.union1d(tied, tied + 1)].tolist())
        dupes = sorted(uid for uid, c in clashing.items() if c > 1)
        if dupes:
            raise SampleError(f"unit ids occur more than once in the frame: {dupes[:5]}")
        # Break the tie by id, never by input order, to stay order-independent.
        return np.array(
            sorted(range(len(ids)), key=lambda i: (codes[i], keys[i], ids[i])), dtype=np.int64
        )
    ordered_codes = codes[by_key]
    if len(codes) and codes.max() < np.iinfo(np.int16).max:
        ordered_codes = ordered_codes.astype(np.int16)  # stable sort of int16 is a radix sort
    return by_key[np.argsort(ordered_codes, kind="stable")]
