from pydantic import BaseModel

from services.dispatch.domain.plan import RoundPlan


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


class DispatchStatus(BaseModel):
    round_id: str
    steps: list[StepCount]  # a step waiting for its invitation's contact has status "waiting"
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


__all__ = ["ArmCount", "ContactCount", "DispatchStatus", "FailedStep", "Failures", "RoundPlan", "RoundPlans", "StepCount"]
