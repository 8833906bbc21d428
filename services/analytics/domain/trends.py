"""A change between two rounds' estimates (no I/O): the trends' difference and its z-test."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .estimators import normal_quantile


@dataclass(frozen=True, slots=True)
class Change:
    difference: float
    se: float
    z: float
    p_value: float
    significant: bool


def change_between(previous: tuple[float, float], current: tuple[float, float], level: float = 0.95) -> Change:
    """Difference of two independent design-based estimates (value, se) with a two-sided z-test.

    Rounds are drawn independently, so Var(b - a) = SE_a^2 + SE_b^2.
    """
    (a, se_a), (b, se_b) = previous, current
    diff = b - a
    se = math.sqrt(se_a * se_a + se_b * se_b)
    if se == 0.0:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        z = diff / se
    p = math.erfc(abs(z) / math.sqrt(2.0))  # two-sided normal p-value
    return Change(diff, se, z, p, abs(z) > normal_quantile(level))
