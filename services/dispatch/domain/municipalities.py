"""Denmark's 98 municipalities: kommunekode -> name as it stands on a letter (data, not code)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

DATA = Path(__file__).with_name("municipalities.csv")


@functools.cache
def municipalities() -> dict[str, str]:
    with DATA.open(encoding="utf-8", newline="") as handle:
        return {row["kommunekode"]: row["name"] for row in csv.DictReader(handle)}


def municipality_name(kommunekode: str) -> str:
    """The municipality's name; an unknown code still gets a readable sender."""
    return municipalities().get(kommunekode, f"Kommune {kommunekode}")
