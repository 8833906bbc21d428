"""A CPR number delivered twice in one extract, found across blocks in row order.

Only the first 16 bytes of each valid row's keyed hash are kept (no realistic collision, and no
CPR number in memory), with its row number: 20 bytes per citizen in sorted numpy runs, instead
of a Python dict entry (~120 bytes) per citizen. Runs of similar size are merged as they come
(like a binary counter), so a check costs O(log n) searches per block and memory stays at 20
bytes per distinct citizen however the file is cut.

A key is held as two big-endian unsigned 64-bit halves (``hi``, ``lo``): integers sort and
compare many times faster than 16-byte strings. Runs are sorted by ``hi``; lookups search on it
and compare ``lo`` too, so two keys that share their first 8 bytes are never taken for one.
"""

from __future__ import annotations

import uuid

import numpy as np

from services.ingest.partitions import citizens_of

KEY_BYTES = 16
_HALF = np.dtype(">u8")


class SeenKeys:
    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (hi, lo, first row), sorted by hi

    def check(self, digests: bytes, digest_size: int, rows: np.ndarray) -> dict[int, int]:
        """Record a block's keys (``digests`` holds ``digest_size`` bytes per row, in row order);
        returns {index in the block: first row number} for every row seen before, in this block
        or an earlier one. Those rows are not recorded again."""
        count = len(rows)
        if count == 0:
            return {}
        matrix = np.frombuffer(digests, dtype=np.uint8).reshape(count, digest_size)[:, :KEY_BYTES]
        halves = np.ascontiguousarray(matrix).view(_HALF).astype(np.uint64)
        hi, lo = halves[:, 0].copy(), halves[:, 1].copy()
        rows = np.asarray(rows, dtype=np.int32)
        # Sorted by hi; stable, so equal keys keep row order and the first is the original. Keys
        # with equal hi but different lo may interleave: a group of equal hi is checked on lo.
        order = np.argsort(hi, kind="stable")
        sorted_hi = hi[order]
        found: dict[int, int] = {}
        same_hi = np.flatnonzero(sorted_hi[1:] == sorted_hi[:-1])
        if len(same_hi):
            first_of: dict[tuple[int, int], int] = {}
            for position in np.unique(np.concatenate([same_hi, same_hi + 1])).tolist():
                index = int(order[position])
                key = (int(hi[index]), int(lo[index]))
                if key in first_of:
                    found[index] = int(rows[first_of[key]])
                else:
                    first_of[key] = index
        for run_hi, run_lo, run_rows in self._runs:
            # Sorted needles: each search starts where the last ended (cache-friendly).
            left = np.searchsorted(run_hi, sorted_hi)
            candidate = run_hi[np.minimum(left, len(run_hi) - 1)] == sorted_hi
            for position in np.flatnonzero(candidate).tolist():
                index = int(order[position])
                at = int(left[position])
                # Almost always one candidate; several only if keys share their first 8 bytes.
                while at < len(run_hi) and run_hi[at] == sorted_hi[position]:
                    if run_lo[at] == lo[index]:
                        found[index] = int(run_rows[at])  # an earlier block's row comes first
                        break
                    at += 1
        keep = np.ones(count, dtype=bool)
        if found:
            keep[list(found)] = False
        new_order = order[keep[order]]
        self._add(hi[new_order], lo[new_order], rows[new_order])
        return found

    def _add(self, hi: np.ndarray, lo: np.ndarray, rows: np.ndarray) -> None:
        if not len(hi):
            return
        self._runs.append((hi, lo, rows))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (a_hi, a_lo, a_rows), (b_hi, b_lo, b_rows) = self._runs[-2], self._runs[-1]
            merged_hi, merged_lo = np.concatenate([a_hi, b_hi]), np.concatenate([a_lo, b_lo])
            order = np.argsort(merged_hi, kind="stable")  # two sorted runs: a merge (timsort), not a sort
            self._runs[-2:] = [(merged_hi[order], merged_lo[order], np.concatenate([a_rows, b_rows])[order])]

    def __len__(self) -> int:
        return sum(len(hi) for hi, _, _ in self._runs)


class RoundMembers:
    """Who is already in other municipalities' accepted deliveries of the round: the first 8
    bytes of each one's keyed hash, sorted (8 bytes per citizen of the round).

    Read once per delivery with one COPY instead of probing every block's pseudonyms in every
    other delivery's partition: with one partition per delivery (services.ingest.partitions)
    probing costs a few milliseconds per partition and block, growing with the round, while
    reading the round's prefixes once and checking blocks in numpy stays flat (figures in
    bench/README.md, ingest). A prefix match is only a candidate; the
    service confirms candidates exactly (``_reject_cross_delivery_duplicates``).
    """

    def __init__(self, prefixes: np.ndarray) -> None:
        self._prefixes = np.sort(prefixes.astype(np.uint64, copy=False))

    @classmethod
    async def load(cls, connection, deliveries: list[uuid.UUID]) -> RoundMembers:
        """The hash prefixes of the citizens of ``deliveries``."""
        buffer = _Buffer()
        await connection.copy_from_query(
            citizens_of(deliveries, "decode(left(pseudonym, 16), 'hex')"),
            output=buffer.write,
            format="binary",
        )
        data = b"".join(buffer.parts)
        # Binary COPY: a 19-byte header, per row a field count (2 bytes), a length (4) and the
        # 8 bytes, then a 2-byte trailer.
        rows = np.frombuffer(data[19:-2], dtype=np.dtype([("fields", ">i2"), ("length", ">i4"), ("prefix", ">u8")]))
        return cls(rows["prefix"])

    def __len__(self) -> int:
        return len(self._prefixes)

    def may_contain(self, digests: bytes, digest_size: int, indexes: list[int]) -> list[int]:
        """Of the rows ``indexes`` (into ``digests``, ``digest_size`` bytes per row), those whose
        keyed hash starts like a member's."""
        if not indexes or not len(self._prefixes):
            return []
        matrix = np.frombuffer(digests, dtype=np.uint8).reshape(-1, digest_size)[indexes, :8]
        prefixes = np.ascontiguousarray(matrix).view(_HALF).astype(np.uint64).ravel()
        at = np.minimum(np.searchsorted(self._prefixes, prefixes), len(self._prefixes) - 1)
        return [indexes[i] for i in np.flatnonzero(self._prefixes[at] == prefixes).tolist()]


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    async def write(self, chunk: bytes) -> None:
        self.parts.append(bytes(chunk))
