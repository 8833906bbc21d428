"""A CPR number delivered twice in one extract, found across blocks in row order.

Only the first 16 bytes of each valid row's keyed hash are kept (no realistic collision, and no
CPR number in memory), with its row number: 20 bytes per citizen in sorted numpy runs, instead
of a Python dict entry (~120 bytes) per citizen. Runs of similar size are merged as they come
(like a binary counter), so a check costs O(log n) searches per block and memory stays at 20
bytes per distinct citizen however the file is cut.
"""

from __future__ import annotations

import numpy as np

KEY_BYTES = 16
_KEY = np.dtype(f"S{KEY_BYTES}")


class SeenKeys:
    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, their first row numbers)

    def check(self, digests: bytes, digest_size: int, rows: np.ndarray) -> dict[int, int]:
        """Record a block's keys (``digests`` holds ``digest_size`` bytes per row, in row order);
        returns {index in the block: first row number} for every row seen before, in this block
        or an earlier one. Those rows are not recorded again."""
        count = len(rows)
        if count == 0:
            return {}
        matrix = np.frombuffer(digests, dtype=np.uint8).reshape(count, digest_size)[:, :KEY_BYTES]
        keys = np.ascontiguousarray(matrix).view(_KEY).reshape(count)
        rows = np.asarray(rows, dtype=np.int32)
        order = np.argsort(keys, kind="stable")  # equal keys keep row order: the first is the original
        sorted_keys = keys[order]
        repeated = np.zeros(count, dtype=bool)
        repeated[1:] = sorted_keys[1:] == sorted_keys[:-1]
        found: dict[int, int] = {}
        if repeated.any():
            # The first occurrence of each key in the block is where its group starts.
            group_start = np.maximum.accumulate(np.where(~repeated, np.arange(count), 0))
            for position in np.flatnonzero(repeated):
                found[int(order[position])] = int(rows[order[group_start[position]]])
        for run_keys, run_rows in self._runs:
            at = np.searchsorted(run_keys, keys)
            at[at == len(run_keys)] = 0
            hits = np.flatnonzero(run_keys[at] == keys)
            for index in hits:
                found[int(index)] = int(run_rows[at[index]])  # an earlier block's row comes first
        keep = np.ones(count, dtype=bool)
        if found:
            keep[list(found)] = False
        new_order = order[keep[order]]
        self._add(keys[new_order], rows[new_order])
        return found

    def _add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        if not len(keys):
            return
        self._runs.append((keys, rows))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (a_keys, a_rows), (b_keys, b_rows) = self._runs[-2], self._runs[-1]
            merged_keys = np.concatenate([a_keys, b_keys])
            merged_rows = np.concatenate([a_rows, b_rows])
            order = np.argsort(merged_keys, kind="stable")
            self._runs[-2:] = [(merged_keys[order], merged_rows[order])]

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self._runs)
