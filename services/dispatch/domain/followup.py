"""Adaptive follow-up (pure): at a chosen reminder, an extra message (an SMS, or a paper
questionnaire by physical post) for the citizens of the cells answering least, within a budget of
extra messages, with a randomised control arm inside those cells.

A *cell* is a stratum, municipality x target group (``sample.drawn``'s ``stratum``). Its observed
response rate is its answered citizens over its invited ones (a message sent), as dispatch counts
them when the rule's step comes due. The rule chooses the cells either as the ``lowest_cells``
with the lowest rate or as every cell below ``below_rate``; cells with fewer than ``min_invited``
invited are not ranked (a rate of 0 of 2 says little). Ties are broken by the cell's name, so the
ranking depends on the counts alone.

Inside the chosen cells, the candidates (active, not answered, their plan sends the step, no such
extra message planned already) are assigned reproducibly from the rule's seed (the round id by
default), like the plan's experiment arms (domain/plan.py), by HMAC-SHA256 over the pseudonym:

* each cell's candidates are put in a seeded random order (HMAC of ``order|pseudonym``);
* each candidate is held out as ``followup_control`` with probability ``control_share``
  (HMAC of ``arm|pseudonym`` mapped to [0, 1)), otherwise ``followup_extra``;
* the cells are walked round-robin in rank order, one candidate per cell per turn, and the walk
  stops the moment the ``budget`` of extra messages is given out (or the candidates run out).

So the extra arm never exceeds the budget, the chosen cells take part evenly (their numbers of
assigned citizens differ by one at most, until a cell runs out), and
the control arm is drawn from the same random prefix of each cell as the extra arm: within a
cell the two are comparable, and the difference of their response rates afterwards is the
effect of the extra message (docs/analytics-method.md). Candidates past the prefix get no arm.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.dispatch.domain.plan import PAPER_ALL

FOLLOWUP_EXTRA = "followup_extra"
FOLLOWUP_CONTROL = "followup_control"
FOLLOWUP_ARMS = (FOLLOWUP_EXTRA, FOLLOWUP_CONTROL)
FollowupChannel = Literal["sms", "paper_questionnaire"]
# The dispatch channel an extra message goes on: the paper questionnaire to every citizen who has
# not answered (domain/plan.py), whatever their Digital Post.
STEP_CHANNEL = {"sms": "sms", "paper_questionnaire": PAPER_ALL}


class FollowupRule(BaseModel):
    """A round's adaptive follow-up rule, as the operator sets it."""

    model_config = ConfigDict(extra="forbid")

    step: Literal["reminder_1", "reminder_2"] = Field(description="the reminder at whose date the rule acts")
    lowest_cells: int | None = Field(None, ge=1, description="the number of cells with the lowest response rate")
    below_rate: float | None = Field(None, gt=0, le=1, description="or every cell whose response rate is below this")
    min_invited: int = Field(10, ge=1, description="cells with fewer invited citizens are not ranked")
    channel: FollowupChannel = Field(description="the extra message: an SMS, or a paper questionnaire by post")
    budget: int = Field(ge=1, le=10_000_000, description="the most extra messages the rule may send")
    control_share: float = Field(0.25, gt=0, le=0.9, description="the share of the chosen citizens held out as control")
    seed: str | None = Field(None, min_length=1, max_length=200, description="the assignment's seed (default: the round id)")

    @model_validator(mode="after")
    def _one_choice_of_cells(self) -> FollowupRule:
        if (self.lowest_cells is None) == (self.below_rate is None):
            raise ValueError("set exactly one of lowest_cells (the K cells answering least) and below_rate "
                             "(every cell answering below the rate)")
        return self

    @property
    def step_channel(self) -> str:
        return STEP_CHANNEL[self.channel]


@dataclass(frozen=True, slots=True)
class CellCount:
    """A cell's observed counts when the rule acts."""

    cell: str  # the stratum: municipality x target group
    invited: int
    answered: int

    @property
    def rate(self) -> Fraction:
        return Fraction(self.answered, self.invited) if self.invited else Fraction(0)


@dataclass(frozen=True, slots=True)
class Assignment:
    cells: tuple[str, ...]  # the chosen cells, lowest rate first
    arms: dict[str, str]  # pseudonym -> FOLLOWUP_EXTRA | FOLLOWUP_CONTROL

    @property
    def extra(self) -> list[str]:
        return sorted(p for p, arm in self.arms.items() if arm == FOLLOWUP_EXTRA)


def choose_cells(rule: FollowupRule, counts: Iterable[CellCount]) -> tuple[str, ...]:
    """The cells the rule reaches, lowest observed response rate first (ties by name)."""
    ranked = sorted((c for c in counts if c.invited >= rule.min_invited), key=lambda c: (c.rate, c.cell))
    if rule.lowest_cells is not None:
        return tuple(c.cell for c in ranked[: rule.lowest_cells])
    assert rule.below_rate is not None
    below = Fraction(rule.below_rate)
    return tuple(c.cell for c in ranked if c.rate < below)


def _unit(seed: bytes, purpose: str, pseudonym: str) -> int:
    return int.from_bytes(hmac.new(seed, f"{purpose}|{pseudonym}".encode(), hashlib.sha256).digest()[:8], "big")


def assign(rule: FollowupRule, round_id: str, counts: Iterable[CellCount],
           candidates: Mapping[str, Iterable[str]]) -> Assignment:
    """Choose the cells and assign their candidates (cell -> pseudonyms) to the arms: the module's
    docstring. Deterministic for a seed: independent of the order of either input."""
    cells = choose_cells(rule, counts)
    seed = (rule.seed or round_id).encode()
    cut = int(rule.control_share * 2**64)
    queues = []
    for cell in cells:
        people = sorted(set(candidates.get(cell, ())), key=lambda p: (_unit(seed, "order", p), p))
        if people:
            queues.append(iter(people))
    arms: dict[str, str] = {}
    given = 0
    while queues and given < rule.budget:
        still = []
        for queue in queues:
            pseudonym = next(queue, None)
            if pseudonym is None:
                continue
            still.append(queue)
            if _unit(seed, "arm", pseudonym) < cut:
                arms[pseudonym] = FOLLOWUP_CONTROL
            else:
                arms[pseudonym] = FOLLOWUP_EXTRA
                given += 1
                if given == rule.budget:
                    break
        queues = still
    return Assignment(cells=cells, arms=arms)
