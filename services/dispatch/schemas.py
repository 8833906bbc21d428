from datetime import datetime

from pydantic import BaseModel

from services.dispatch.domain.followup import FollowupRule
from services.dispatch.domain.plan import RoundPlan
from shared.events import SendingWindow


class StepCount(BaseModel):
    kommunekode: str
    step: str
    channel: str
    status: str
    count: int


class ContactCount(BaseModel):
    """Invitations of one municipality without a contact (a municipality with none is left out)."""

    kommunekode: str
    waiting: int  # planned, but ingest has not released the contact yet: nothing goes out until it does
    no_contact: int  # ingest released no contact (erased, objected, not in the current delivery): never sent


class RoundSchedule(BaseModel):
    """The round's definition as dispatch follows it (round.defined)."""

    revision: int
    phase: str
    invitation_at: datetime | None
    reminders_at: list[datetime]
    fieldwork_ends_at: datetime | None
    sending_window: SendingWindow


class DispatchStatus(BaseModel):
    round_id: str
    # waiting_for_definition | waiting_for_schedule | scheduled | sending | outside_window | ended
    sending: str
    schedule: RoundSchedule | None = None  # None: no round.defined yet, nothing is sent
    # Status per step: "waiting" (no contact yet), "waiting_for_schedule" (the round has no
    # invitation date or is not in a sending phase), "planned" (due time set), "sending", "sent",
    # "failed", "skipped", "cancelled" (fieldwork ended before it went).
    steps: list[StepCount]
    invitations_waiting_for_contact: int = 0
    contacts: list[ContactCount] = []


class RoundPlans(BaseModel):
    round_id: str
    default: RoundPlan  # what a municipality without a plan of its own gets
    municipalities: dict[str, RoundPlan]


class FailedStep(BaseModel):
    kommunekode: str
    pseudonym: str
    step: str
    channel: str
    attempts: int
    last_error: str | None


class Failures(BaseModel):
    round_id: str
    failed: list[FailedStep]


class ArmCount(BaseModel):
    arm: str | None
    invited: int


class FollowupCell(BaseModel):
    """A cell's counts when the rule acted."""

    stratum: str
    invited: int  # citizens with a message sent
    answered: int
    chosen: bool


class FollowupArmCount(BaseModel):
    stratum: str
    arm: str  # followup_extra | followup_control
    citizens: int
    answered: int  # since the assignment (every one of them was unanswered then)


class FollowupState(BaseModel):
    """The round's adaptive follow-up rule; once it has acted, what it saw, chose and sent."""

    round_id: str
    rule: FollowupRule
    set_at: datetime
    applied_at: datetime | None = None  # None: the rule has not acted yet
    cells: list[FollowupCell] = []  # every cell it ranked, the chosen ones first in rank order
    arms: dict[str, int] = {}  # citizens per arm
    by_cell: list[FollowupArmCount] = []
    extra_messages: dict[str, int] = {}  # the extra steps per status (planned, sent, skipped, ...)


__all__ = ["FollowupArmCount", "FollowupCell", "FollowupState", "ArmCount", "ContactCount", "DispatchStatus", "RoundSchedule", "FailedStep", "Failures", "RoundPlan", "RoundPlans", "StepCount"]
