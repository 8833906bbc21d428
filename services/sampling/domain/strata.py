"""Shared vocabulary of the sampling domain: strata and frame units.

A stratum is one municipality × one target group (kommune × målgruppe). Danish names
are kept where they are the real names used by KL and the municipalities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

# kommunekode = the official 3-digit municipality code (e.g. "101" København).
Kommunekode: TypeAlias = str
# maalgruppe = target group; the benefit → group mapping is central, versioned data
# owned elsewhere, so groups are plain strings here rather than an enum baked into code.
Maalgruppe: TypeAlias = str
StratumKey: TypeAlias = tuple[Kommunekode, Maalgruppe]

# The five groups of the final concept (seed 001). Only used for defaults: any group
# name that has a response rate in the rules is accepted.
MAALGRUPPER: tuple[Maalgruppe, ...] = (
    "dagpenge",
    "sygedagpenge",
    "job_og_uddannelsesparate",
    "aktivitetsparate",
    "jobafklaring",
)


@dataclass(frozen=True, slots=True)
class FrameUnit:
    """One citizen in a municipality's population extract, after pseudonymisation.

    `unit_id` is the pseudonym (never the CPR number). `bands` holds the background
    variables already grouped into broad intervals (e.g. {"koen": "K",
    "aldersgruppe": "30-39", "varighed": "6-12 mdr"}); they are data, not fields,
    so a new background variable needs no code change.
    """

    unit_id: str
    kommunekode: Kommunekode
    maalgruppe: Maalgruppe
    forskerbeskyttet: bool = False  # protected from research/survey contact (CPR)
    deceased: bool = False
    emigrated: bool = False
    bands: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def stratum(self) -> StratumKey:
        return (self.kommunekode, self.maalgruppe)
