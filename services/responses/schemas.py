from __future__ import annotations

from pydantic import BaseModel, Field

from shared.events import LANGUAGE_PATTERN

AnswerValue = int | str | None
LANGUAGE = Field("da", pattern=LANGUAGE_PATTERN, description="The language the citizen answered in (BCP 47, e.g. da, en)")


class Submission(BaseModel):
    answers: dict[str, AnswerValue] = Field(max_length=200)
    language: str = LANGUAGE


class SubmissionReceipt(BaseModel):
    status: str
    round_id: str


class PaperSubmission(BaseModel):
    """A paper questionnaire keyed in by an operator. ``token`` is the code printed on the paper
    form (the same token as in the web link)."""

    token: str = Field(pattern=r"^[A-Za-z0-9_-]{20,100}$")
    answers: dict[str, AnswerValue] = Field(max_length=200)
    language: str = LANGUAGE  # the language of the paper form


class PaperReceipt(BaseModel):
    status: str
    round_id: str
    kommunekode: str
    mode: str
    questionnaire_key: str


class RoundQuestionnaireIn(BaseModel):
    core: str = Field("kl_core_v1", pattern=r"^[a-z0-9_]+$", examples=["kl_core_v1"])
    modules: list[str] = Field(default_factory=list, max_length=10, examples=[["digital_tools_v1"]])
    supplements: dict[str, int] = Field(default_factory=dict, description="kommunekode -> supplement version")


class RoundQuestionnaireOut(RoundQuestionnaireIn):
    round_id: str
    version_keys: dict[str, str] = Field(description="'default' and each kommunekode with a supplement -> version key")
