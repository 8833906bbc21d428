"""Pure domain logic of the responses service: the questionnaire as versioned data, answer
validation and free-text scrubbing. No database, no Kafka, no HTTP: everything here is plain
functions over immutable Pydantic models, so it can be tested and reused anywhere."""

from .answers import (
    AnswerError,
    AnswerSubmission,
    PageStatus,
    QuestionnaireVersionMismatch,
    ValidationResult,
    scrub_free_text,
    validate_answers,
    validate_submission,
)
from .questionnaire import (
    LocalizedText,
    LocalSupplement,
    Question,
    Questionnaire,
    QuestionnaireError,
    QuestionnaireModule,
    Scale,
    ScaleOption,
    Theme,
    effective_questionnaire,
    is_visible,
    load_module,
    load_questionnaire,
    render_question_text,
)
from .scrubbing import ScrubResult, scrub, scrub_with_report

__all__ = [
    "AnswerError",
    "AnswerSubmission",
    "LocalSupplement",
    "LocalizedText",
    "PageStatus",
    "Question",
    "Questionnaire",
    "QuestionnaireError",
    "QuestionnaireModule",
    "QuestionnaireVersionMismatch",
    "Scale",
    "ScaleOption",
    "ScrubResult",
    "Theme",
    "ValidationResult",
    "effective_questionnaire",
    "is_visible",
    "load_module",
    "load_questionnaire",
    "render_question_text",
    "scrub",
    "scrub_free_text",
    "scrub_with_report",
    "validate_answers",
    "validate_submission",
]
