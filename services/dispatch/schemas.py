from pydantic import BaseModel


class StepCount(BaseModel):
    kommunekode: str
    step: str
    status: str
    count: int


class DispatchStatus(BaseModel):
    round_id: str
    steps: list[StepCount]
