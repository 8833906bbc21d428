from __future__ import annotations

from pydantic import BaseModel, Field

AnswerValue = int | str | None


class Submission(BaseModel):
    answers: dict[str, AnswerValue] = Field(max_length=200)


class SubmissionReceipt(BaseModel):
    status: str
    round_id: str
