"""When a round may be drawn: every participating municipality has delivered, or the delivery
deadline has passed; before that only when the operator forces it (and the draw records it).
A round with no listed municipalities takes part with all 98."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

ALL_MUNICIPALITIES = 98
# Phases in which a round still may be drawn (ingest's lifecycle: the draw moves it on).
DRAWABLE_PHASES = frozenset({"planned", "collecting_extracts"})


@dataclass(frozen=True)
class Readiness:
    ready: bool
    delivered: tuple[str, ...]
    missing: tuple[str, ...]  # participating municipalities without a delivery (listed rounds only)
    deadline_passed: bool
    reason: str  # in words, for the operator

    def to_json(self) -> dict:
        return {"delivered": list(self.delivered), "missing": list(self.missing), "deadline_passed": self.deadline_passed, "reason": self.reason}


def draw_readiness(kommuner: Sequence[str], delivered: Collection[str], deadline: datetime | None, now: datetime) -> Readiness:
    have = tuple(sorted(set(delivered)))
    deadline_passed = deadline is not None and deadline <= now
    if kommuner:
        missing = tuple(sorted(set(kommuner) - set(have)))
        complete = not missing
        waiting = f"{len(missing)} of {len(kommuner)} municipalities have not delivered ({', '.join(missing)})"
    else:
        missing = ()
        complete = len(have) >= ALL_MUNICIPALITIES
        waiting = f"{len(have)} of all {ALL_MUNICIPALITIES} municipalities have delivered"
    if complete:
        return Readiness(True, have, missing, deadline_passed, "every participating municipality has delivered")
    if deadline_passed:
        return Readiness(True, have, missing, True, f"the delivery deadline has passed; {waiting}")
    until = f"the delivery deadline {deadline.isoformat(timespec='minutes')}" if deadline else "a delivery deadline (none is set)"
    return Readiness(False, have, missing, False, f"{waiting}, and {until} has not passed: draw with force=true to draw anyway")
