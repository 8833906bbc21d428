"""The draw: stratified simple random sampling without replacement, reproducible from a
recorded seed, plus the population margins needed for weighting afterwards.

How the draw works (order sampling with permanent random numbers): every unit gets a
64-bit key = keyed hash of (seed, unit_id); within each stratum the n_h units with the
smallest keys are taken. If the keys behave like independent uniform draws, every subset
of size n_h is equally likely, i.e. simple random sampling without replacement, with
π = n_h / N_h. Because a key depends only on (seed, unit_id), the sample does not depend
on the order of the frame or on the other strata, and a recorded seed reproduces it.

Consequence to remember: the same seed in two rounds selects largely the same people.
Use `new_seed()` for every round and record it.

numpy is used so that hashing and sorting 500,000 units is vectorised (well under 0.5 s);
`unit_key` is the plain-Python reference of the same hash for audits and tests.
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

_U64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xFF51AFD7ED558CCD
_C2 = 0xC4CEB9FE1A85EC53


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
    """The 64-bit random sort key of one unit: plain-Python reference of the vectorised
    hash used by draw_sample (so an auditor can recompute why a citizen was drawn).

    The id's UTF-8 bytes are read as little-endian 64-bit words (the last one padded
    with zero bytes); each word is xor-ed into a state and mixed with the MurmurHash3
    64-bit finaliser; the seed keys both the initial and the final state. It is a
    statistical hash, not a cryptographic one: the seed is recorded, not secret.
    """
    _check_seed(seed)
    start, final = _seed_states(seed)
    data = unit_id.encode("utf-8")
    data += b"\0" * (-len(data) % 8)
    h = start
    for i in range(0, len(data), 8):
        h = _fmix64_int(h ^ int.from_bytes(data[i : i + 8], "little"))
    return _fmix64_int(h ^ final)


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
    _check_seed(seed)
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
            # Same float objects for the whole stratum; weight as N/n, not 1/(n/N), to keep
            # one rounding step so that Σ weights = N_h as exactly as floats allow.
            pi, weight = s.sample / s.population, s.population / s.sample
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


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << SEED_BITS:
        raise SampleError(f"seed must be an int in [0, 2**{SEED_BITS}), got {seed!r}")


def _fmix64_int(x: int) -> int:
    x ^= x >> 33
    x = (x * _C1) & _U64
    x ^= x >> 33
    x = (x * _C2) & _U64
    x ^= x >> 33
    return x


def _seed_states(seed: int) -> tuple[int, int]:
    start = _fmix64_int((seed ^ _GOLDEN) & _U64)
    return start, _fmix64_int((start + _GOLDEN) & _U64)


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3 finaliser, in place on a uint64 array (wrap-around is intended)."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C1)
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C2)
    x ^= x >> np.uint64(33)
    return x


def _unit_keys(ids: list[str], seed: int) -> np.ndarray:
    """Vectorised unit_key for all ids (uint64 array)."""
    words, n_words = _id_words(ids)
    start, final = _seed_states(seed)
    h = np.full(len(ids), start, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            mixed = _fmix64(h ^ words[:, j])
            # Shorter ids stop mixing at their own length, so a key never depends on the
            # longest id in the frame (n_words is None when all ids have one length).
            h = mixed if n_words is None else np.where(n_words > j, mixed, h)
        h ^= np.uint64(final)
        return _fmix64(h)


def _id_words(ids: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The ids' UTF-8 bytes as an (n, w) array of little-endian uint64 words, and the
    number of words of each id (None when all ids have the same byte length)."""
    n = len(ids)
    length = len(ids[0])
    # Fast path for the usual case, fixed-length ASCII pseudonyms: one join and one
    # encode instead of a conversion per string. The NUL separators pad every id to a
    # whole number of words; if the only NUL bytes are the separators and they all sit
    # at the row ends, every id has exactly this byte length and contains no NUL.
    pad = 8 - length % 8
    width = length + pad
    joined = ("\0" * pad).join(ids).encode("utf-8") + b"\0" * pad
    if length and len(joined) == n * width and joined.count(b"\0") == n * pad:
        ends = np.frombuffer(joined, dtype=np.uint8).reshape(n, width)[:, length:]
        if not ends.any():
            words = np.frombuffer(joined, dtype="<u8").reshape(n, width // 8)
            return words[:, : -(-length // 8)].astype(np.uint64, copy=False), None
    # General path: ids of different lengths or with non-ASCII characters.
    encoded = [i.encode("utf-8") for i in ids]
    if any(b"\0" in e for e in encoded):
        raise SampleError("unit ids must not contain NUL characters")
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    if lengths.min() == 0:
        raise SampleError("unit ids must not be empty")
    width = -(-int(lengths.max()) // 8) * 8
    padded = np.array(encoded, dtype=f"S{width}")  # zero-padded on the right
    words = padded.view("<u8").reshape(n, width // 8).astype(np.uint64, copy=False)
    return words, -(-lengths // 8)


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
