"""Dispatch plans and response-rate experiments (pure).

A plan says which steps a citizen gets (the invitation, up to two reminders), how far apart and
through which channels, and whether one reminder brings a paper questionnaire by physical post
(``paper_questionnaire``): to the citizens exempt from Digital Post, and optionally to everyone
who has not answered by then. A round may randomise its citizens into *arms* that change the plan
(e.g. an SMS with the reminder or not). Assignment is reproducible: HMAC-SHA256 keyed with the
experiment seed over the pseudonym, mapped to [0, 1) and cut by the arms' cumulative weights (in
name order), so anyone holding the seed can recompute every citizen's arm, and nobody without it
can steer one.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ChannelName = Literal["letter", "sms"]
STEPS = ("invitation", "reminder_1", "reminder_2")
# The paper questionnaire's channels, by audience: whether a citizen is exempt from Digital Post
# is in the sealed contact, so it is decided when the message is built (compose.py).
PAPER_EXEMPT = "paper_exempt"  # only citizens exempt from Digital Post
PAPER_ALL = "paper_all"  # every citizen who has not answered by then
PAPER_CHANNELS = (PAPER_EXEMPT, PAPER_ALL)


class PaperQuestionnaireStep(BaseModel):
    """A paper questionnaire sent by physical post (SF1601 Fysisk Post) with one reminder, on
    its date; like every reminder, never to a citizen who has answered or opted out."""

    model_config = ConfigDict(extra="forbid")

    reminder: int = Field(ge=1, le=2, description="the reminder it goes with (1 or 2): its date")
    everyone_unanswered: bool = Field(False, description="also to citizens with Digital Post who have not answered "
                                      "by then; otherwise only to those exempt from Digital Post")

    @property
    def step(self) -> str:
        return STEPS[self.reminder]

    @property
    def channel(self) -> str:
        return PAPER_ALL if self.everyone_unanswered else PAPER_EXEMPT


class ArmSpec(BaseModel):
    """One experiment arm: its share and what it changes in the plan (unset = as the plan)."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(gt=0)
    reminder_count: int | None = Field(default=None, ge=0, le=2)
    reminder_interval_days: float | None = Field(default=None, gt=0)
    reminder_channels: list[ChannelName] | None = Field(default=None, min_length=1)


class RoundPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminder_count: int = Field(default=2, ge=0, le=2)
    reminder_interval_days: float = Field(default=7.0, gt=0)
    invitation_channels: list[ChannelName] = Field(default=["letter"], min_length=1)
    reminder_channels: list[ChannelName] = Field(default=["letter"], min_length=1)
    # {"sms_reminder": {"weight": 0.5, "reminder_channels": ["letter", "sms"]}, "no_sms": 0.5}
    arms: dict[str, ArmSpec] = Field(default_factory=dict)
    experiment_seed: str | None = None  # defaults to the round id
    paper_questionnaire: PaperQuestionnaireStep | None = None
    # Interviews by phone: the phone numbers of the round's citizens go, sealed, to the
    # interviewer's page in responses (interview.phones_released). Off: no number leaves dispatch.
    phone_interviews: bool = False

    @field_validator("arms", mode="before")
    @classmethod
    def _weights_shorthand(cls, value):
        if isinstance(value, dict):
            return {k: {"weight": v} if isinstance(v, int | float) else v for k, v in value.items()}
        return value

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, value: dict[str, ArmSpec]) -> dict[str, ArmSpec]:
        for name in value:
            if not (1 <= len(name) <= 64 and name.replace("_", "").replace("-", "").isalnum()):
                raise ValueError("arm names are 1-64 letters, digits, '_' or '-'")
        return value

    @field_validator("invitation_channels", "reminder_channels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _paper_with_a_reminder_sent(self) -> RoundPlan:
        """The paper questionnaire goes with a reminder that the plan, and every arm, sends."""
        paper = self.paper_questionnaire
        if paper is None:
            return self
        problems = []
        if paper.reminder > self.reminder_count:
            problems.append(f"the plan sends {self.reminder_count} reminder(s)")
        for name, arm in sorted(self.arms.items()):
            if arm.reminder_count is not None and paper.reminder > arm.reminder_count:
                problems.append(f"arm {name!r} sends {arm.reminder_count} reminder(s)")
        if problems:
            raise ValueError(f"paper_questionnaire.reminder is {paper.reminder}, but " + " and ".join(problems)
                             + ": the paper questionnaire goes with a reminder that is sent")
        return self


def assign_arm(plan: RoundPlan, round_id: str, pseudonym: str) -> str | None:
    if not plan.arms:
        return None
    seed = (plan.experiment_seed or round_id).encode()
    digest = hmac.new(seed, pseudonym.encode(), hashlib.sha256).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(arm.weight for arm in plan.arms.values())
    cumulative = 0.0
    names = sorted(plan.arms)
    for name in names:
        cumulative += plan.arms[name].weight / total
        if u < cumulative:
            return name
    return names[-1]  # float rounding at the top end


def plan_for_arm(plan: RoundPlan, arm: str | None) -> RoundPlan:
    if arm is None or arm not in plan.arms:
        return plan
    changes = plan.arms[arm].model_dump(exclude={"weight"}, exclude_none=True)
    return plan.model_copy(update=changes)


def planned_steps(plan: RoundPlan) -> list[tuple[str, str, float | None]]:
    """(step, channel, reminder interval in days; None for the invitation) for every message the
    plan sends. When each goes out is the round's schedule (domain/schedule.py)."""
    out: list[tuple[str, str, float | None]] = [(STEPS[0], ch, None) for ch in plan.invitation_channels]
    for i in range(1, plan.reminder_count + 1):
        out.extend((STEPS[i], ch, plan.reminder_interval_days) for ch in plan.reminder_channels)
    paper = plan.paper_questionnaire
    if paper is not None and paper.reminder <= plan.reminder_count:
        out.append((paper.step, paper.channel, plan.reminder_interval_days))
    return out
