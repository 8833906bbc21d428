"""Wall time per pipeline stage (claim, render, recheck, send, record, plan), summed.

Cheap enough to keep on always (two perf_counter calls per batch); the national bench prints it
as its per-stage breakdown. Stages overlap (the sender renders one batch while it sends another),
so the sums need not add up to the elapsed time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class _Measure:
    __slots__ = ("items",)

    def __init__(self, items: int) -> None:
        self.items = items


class StageTimes:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.items: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.counts: dict[str, int] = defaultdict(int)  # e.g. "sent.invitation": steps recorded as sent

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    @contextmanager
    def measure(self, stage: str, items: int = 0) -> Iterator[_Measure]:
        m = _Measure(items)
        t0 = time.perf_counter()
        try:
            yield m
        finally:
            self.seconds[stage] += time.perf_counter() - t0
            self.items[stage] += m.items
            self.calls[stage] += 1

    def snapshot(self) -> dict[str, tuple[float, int, int]]:
        return {stage: (self.seconds[stage], self.items[stage], self.calls[stage]) for stage in self.seconds}
