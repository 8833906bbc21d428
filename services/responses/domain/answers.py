"""Validation of a citizen's answers against the exact questionnaire they were given.

Two modes share one code path:

* ``partial=True`` (save-and-resume): whatever is present is checked and kept; missing
  required answers are *reported* per theme page, not treated as errors.
* ``partial=False`` (final submission): missing required answers are errors too.

Errors are structured per question id, with a Danish and an English message, so the web
front end can build an accessible error summary that links each message to its field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .questionnaire import LocalizedText, Question, Questionnaire, is_visible
from .scrubbing import scrub

ErrorCode = Literal[
    "unknown_question",
    "invalid_type",
    "invalid_option",
    "too_long",
    "hidden_question",
    "required",
]
HiddenPolicy = Literal["drop", "reject"]

# Control characters other than tab and newline have no place in an answer and can break
# CSV/Excel exports downstream; they are removed rather than rejected (citizens can't see them).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class QuestionnaireVersionMismatch(ValueError):
    """The answers were made for another questionnaire version than the one given."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AnswerSubmission(_Frozen):
    """What the front end posts: answers keyed by question id, plus the version key of the
    questionnaire the citizen was shown. Choice answers are option values (``"enig"``) or,
    for scored scales, the score (``4``); free-text answers are strings; ``None`` clears an
    answer when resuming."""

    questionnaire_key: str
    answers: dict[str, object] = Field(default_factory=dict)


class AnswerError(_Frozen):
    question_id: str
    #: None when the id is not in the questionnaire at all.
    theme_id: str | None
    code: ErrorCode
    message: LocalizedText
    #: Numbers used in the message (e.g. max_length, length), for front ends that re-phrase.
    params: dict[str, int] = Field(default_factory=dict)


class PageStatus(_Frozen):
    """Progress of one theme page, used to send a resuming citizen to the right page."""

    theme_id: str
    title: LocalizedText
    visible: tuple[str, ...]
    answered: tuple[str, ...]
    missing_required: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing_required and not self.errors


class ValidationResult(_Frozen):
    questionnaire_key: str
    #: The cleaned answers that may be stored: valid, visible and normalised.
    accepted: dict[str, str]
    errors: tuple[AnswerError, ...]
    #: Ids of answers discarded because their question was hidden (show_if false).
    dropped: tuple[str, ...]
    pages: tuple[PageStatus, ...]

    @property
    def ok(self) -> bool:
        """No errors: the accepted answers can be saved (as a draft, if not complete)."""
        return not self.errors

    @property
    def missing_required(self) -> tuple[str, ...]:
        return tuple(qid for page in self.pages for qid in page.missing_required)

    @property
    def complete(self) -> bool:
        """Valid and nothing required is missing: the answer set can be finally submitted."""
        return self.ok and not self.missing_required

    def errors_for(self, question_id: str) -> tuple[AnswerError, ...]:
        return tuple(e for e in self.errors if e.question_id == question_id)

    @property
    def first_incomplete_page(self) -> str | None:
        return next((p.theme_id for p in self.pages if not p.complete), None)


def validate_submission(
    questionnaire: Questionnaire,
    submission: AnswerSubmission,
    *,
    partial: bool = False,
    hidden: HiddenPolicy = "drop",
) -> ValidationResult:
    """Like :func:`validate_answers`, but first checks that the submission was made for this
    exact questionnaire. Validating against "the current" version instead would silently
    mis-score answers whose options changed between versions."""
    if submission.questionnaire_key != questionnaire.version_key:
        raise QuestionnaireVersionMismatch(
            f"answers are for {submission.questionnaire_key!r}, "
            f"but the questionnaire given is {questionnaire.version_key!r}"
        )
    return validate_answers(questionnaire, submission.answers, partial=partial, hidden=hidden)


def validate_answers(
    questionnaire: Questionnaire,
    answers: Mapping[str, object],
    *,
    partial: bool = False,
    hidden: HiddenPolicy = "drop",
) -> ValidationResult:
    """Check ``answers`` against ``questionnaire``.

    ``hidden="drop"`` discards answers to questions whose show_if is false (the normal case:
    the citizen changed an earlier answer after filling in a follow-up); ``"reject"`` turns
    them into errors, for API clients that should never send them.
    """
    errors: list[AnswerError] = []
    accepted: dict[str, str] = {}
    dropped: list[str] = []

    for question_id in answers:
        if questionnaire.question(question_id) is None:
            errors.append(_error(None, question_id, "unknown_question"))

    visible: set[str] = set()
    # One pass in questionnaire order: show_if only looks at earlier questions, so their
    # accepted answers are known by the time a condition is evaluated.
    for question in questionnaire.questions:
        theme_id = questionnaire.theme_id_of(question.id)
        shown = is_visible(questionnaire, question, accepted)
        if shown:
            visible.add(question.id)
        raw = answers.get(question.id)
        if raw is None:
            continue
        value = _normalise(questionnaire, question, raw)
        if value is None:
            errors.append(_error(theme_id, question.id, "invalid_type"))
            continue
        if value == "":
            continue  # an emptied text box (or a form's empty radio value) is "not answered"
        if not shown:
            if hidden == "drop":
                dropped.append(question.id)
            else:
                errors.append(_error(theme_id, question.id, "hidden_question"))
            continue
        error = _check_value(questionnaire, question, theme_id, value)
        if error is not None:
            errors.append(error)
        else:
            accepted[question.id] = value

    pages = _page_statuses(questionnaire, visible, accepted, errors)
    if not partial:
        for page in pages:
            for question_id in page.missing_required:
                question = questionnaire.question(question_id)
                assert question is not None
                errors.append(_required_error(questionnaire, question, page.theme_id))
        pages = _page_statuses(questionnaire, visible, accepted, errors)

    return ValidationResult(
        questionnaire_key=questionnaire.version_key,
        accepted=accepted,
        errors=tuple(_in_questionnaire_order(questionnaire, errors)),
        dropped=tuple(dropped),
        pages=pages,
    )


def scrub_free_text(questionnaire: Questionnaire, answers: Mapping[str, str]) -> dict[str, str]:
    """Copy of ``answers`` with every free-text answer scrubbed of personal data.

    Call this on accepted answers before they leave the service (events, exports,
    dashboards): choice answers are passed through unchanged.
    """
    scrubbed: dict[str, str] = {}
    for question_id, value in answers.items():
        question = questionnaire.question(question_id)
        scrubbed[question_id] = scrub(value) if question and question.kind == "free_text" else value
    return scrubbed


# --- helpers --------------------------------------------------------------------------------


def _normalise(questionnaire: Questionnaire, question: Question, raw: object) -> str | None:
    """The answer in its stored form, or None when its type is wrong for the question."""
    if question.is_choice:
        if isinstance(raw, int) and not isinstance(raw, bool):
            # Paper and phone entry send scores (the event contract allows 1..5); store the
            # option code so every answer set has one canonical form. A score that is not on
            # the scale becomes "7", which no option code can be, so it fails as invalid_option.
            scale = questionnaire.scale_for(question.id)
            option = next((o for o in scale.options if o.score == raw), None) if scale else None
            return option.value if option is not None else str(raw)
        return raw if isinstance(raw, str) else None
    if not isinstance(raw, str):
        return None
    # NFC so that "é" typed as e + combining accent counts (and is stored) as one character.
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL_CHARS.sub("", text).strip()


def _check_value(
    questionnaire: Questionnaire, question: Question, theme_id: str | None, value: str
) -> AnswerError | None:
    if question.is_choice:
        scale = questionnaire.scale_for(question.id)
        if scale is None or scale.option(value) is None:
            return _error(theme_id, question.id, "invalid_option")
        return None
    if len(value) > question.text_limit:
        return _error(
            theme_id,
            question.id,
            "too_long",
            params={"max_length": question.text_limit, "length": len(value)},
        )
    return None


def _page_statuses(
    questionnaire: Questionnaire,
    visible: set[str],
    accepted: Mapping[str, str],
    errors: list[AnswerError],
) -> tuple[PageStatus, ...]:
    with_errors = {e.question_id for e in errors}
    pages = []
    for theme in questionnaire.themes:
        shown = tuple(q.id for q in theme.questions if q.id in visible)
        pages.append(
            PageStatus(
                theme_id=theme.id,
                title=theme.title,
                visible=shown,
                answered=tuple(qid for qid in shown if qid in accepted),
                missing_required=tuple(
                    q.id
                    for q in theme.questions
                    if q.required and q.id in visible and q.id not in accepted and q.id not in with_errors
                ),
                errors=tuple(q.id for q in theme.questions if q.id in with_errors),
            )
        )
    return tuple(pages)


def _in_questionnaire_order(questionnaire: Questionnaire, errors: list[AnswerError]) -> list[AnswerError]:
    # The error summary should list problems in the order the fields appear on the page;
    # unknown ids (no position) go last.
    position = {q.id: i for i, q in enumerate(questionnaire.questions)}
    return sorted(errors, key=lambda e: position.get(e.question_id, len(position)))


def _da_number(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def _error(
    theme_id: str | None, question_id: str, code: ErrorCode, params: dict[str, int] | None = None
) -> AnswerError:
    params = params or {}
    if code == "too_long":
        max_length, length = params["max_length"], params["length"]
        message = LocalizedText(
            da=f"Dit svar er for langt. Det må højst være {_da_number(max_length)} tegn, "
            f"og du har skrevet {_da_number(length)} tegn.",
            en=f"Your answer is too long. It can be at most {max_length:,} characters, "
            f"and you have written {length:,}.",
        )
    else:
        message = _MESSAGES[code]
    return AnswerError(question_id=question_id, theme_id=theme_id, code=code, message=message, params=params)


def _required_error(questionnaire: Questionnaire, question: Question, theme_id: str) -> AnswerError:
    scale = questionnaire.scale_for(question.id)
    if scale is None:
        message = _MESSAGES["required"]
    else:
        # Tell the citizen that "Ved ikke" is a legitimate way out: required questions must
        # never force an opinion someone does not have.
        no_opinion = next((o for o in scale.options if o.score is None), None)
        if no_opinion is not None and any(o.score is not None for o in scale.options):
            message = LocalizedText(
                da=f"Vælg et svar. Du kan også vælge »{no_opinion.label.da}«.",
                en=f"Choose an answer. You can also choose “{no_opinion.label.en}”.",
            )
        else:
            message = _MESSAGES["required_choice"]
    return AnswerError(question_id=question.id, theme_id=theme_id, code="required", message=message)


# The message of each error code: (Danish, English).
_MESSAGES: dict[str, LocalizedText] = {
    code: LocalizedText(da=da, en=en)
    for code, (da, en) in {
        "unknown_question": (
            "Spørgsmålet findes ikke i denne udgave af spørgeskemaet.",
            "This question does not exist in this version of the questionnaire.",
        ),
        "invalid_type": ("Svaret har et forkert format.", "The answer has the wrong format."),
        "invalid_option": ("Vælg en af svarmulighederne.", "Choose one of the answer options."),
        "hidden_question": (
            "Spørgsmålet skal ikke besvares ud fra dine andre svar.",
            "This question does not apply, given your other answers.",
        ),
        "required": ("Besvar spørgsmålet.", "Answer the question."),
        "required_choice": ("Vælg et svar.", "Choose an answer."),
    }.items()
}
