from pydantic import BaseModel

from services.dispatch.domain.plan import RoundPlan


class StepCount(BaseModel):
    kommunekode: str
    step: str
    channel: str
    status: str
    count: int


class DispatchStatus(BaseModel):
    round_id: str
    steps: list[StepCount]


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


__all__ = ["ArmCount", "DispatchStatus", "FailedStep", "Failures", "RoundPlan", "RoundPlans", "StepCount"]
