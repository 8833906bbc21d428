from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.answer_id import normalise

from shared.events import LANGUAGE_PATTERN

AnswerValue = int | str | None
# A link's token as the letter prints it (256 bits in base64url; never fewer than 128 accepted):
# the API's path and body, the pages' paths and the error pages' link back all read it with this.
TOKEN_CHARS = r"[A-Za-z0-9_-]{20,100}"
TOKEN_PATTERN = rf"^{TOKEN_CHARS}$"
LANGUAGE = Field("da", pattern=LANGUAGE_PATTERN, description="The language the citizen answered in (BCP 47, e.g. da, en)")


class Submission(BaseModel):
    answers: dict[str, AnswerValue] = Field(max_length=200)
    language: str = LANGUAGE


class SubmissionReceipt(BaseModel):
    status: str
    round_id: str


class PaperSubmission(BaseModel):
    """A paper questionnaire keyed in by an operator: the form's ``answer_id`` (printed on it,
    ``12345-67890``; spaces and hyphens are ignored), or ``token``, the link's token, for a form
    printed without one. Exactly one of the two."""

    answer_id: str | None = Field(None, max_length=40, examples=["48291-30575"])
    token: str | None = Field(None, pattern=TOKEN_PATTERN)
    answers: dict[str, AnswerValue] = Field(max_length=200)
    language: str = LANGUAGE  # the language of the paper form

    @field_validator("answer_id")
    @classmethod
    def _answer_id(cls, value: str | None) -> str | None:
        return normalise(value) if value is not None else None  # InvalidAnswerId is a ValueError: 422

    @model_validator(mode="after")
    def _one_key(self) -> PaperSubmission:
        if (self.answer_id is None) == (self.token is None):
            raise ValueError("give the form's answer_id (or, for a form without one, the link's token): exactly one")
        return self


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
