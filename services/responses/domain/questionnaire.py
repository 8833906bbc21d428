"""The questionnaire as versioned data.

The wording lives in JSON files under ``questionnaires/`` (one file per published version);
this module only defines their shape and the rules that keep them consistent. Keeping the
questions out of code matters because the core must stay word-for-word identical across
municipalities and rounds (it is what makes benchmarking and time series valid), while
optional modules and each municipality's local supplement change independently.

An answer set is always tied to the *effective* questionnaire the citizen saw: the core plus
the modules switched on for the round plus, possibly, the municipality's supplement. Its
``version_key`` names that combination and ``fingerprint`` pins its exact content.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

Language = Literal["da", "en"]
QuestionKind = Literal["likert5", "free_text", "single_choice"]

#: Default ceiling for free text. Long enough for a considered answer, short enough that a
#: pasted document (or a sagsakt full of personal data) is refused rather than stored.
DEFAULT_FREE_TEXT_MAX_LENGTH = 2000

_ID = r"^[a-z][a-z0-9_]*$"
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_DATA_FILE_NAME = re.compile(r"^[a-z0-9_]{1,64}$")  # a file name: bounded by what a file system holds


class QuestionnaireError(ValueError):
    """A questionnaire, module or supplement is inconsistent, or they cannot be combined."""


class _Frozen(BaseModel):
    # Published versions must not change under a running round, so every model is immutable,
    # and unknown keys are refused so that a typo in a data file fails loudly at load time.
    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalizedText(_Frozen):
    da: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, lang: Language) -> str:
        return self.da if lang == "da" else self.en


class ScaleOption(_Frozen):
    value: str = Field(pattern=_ID)
    label: LocalizedText
    #: None for options that are not a position on the scale ("Ved ikke"): they count as an
    #: answer but never enter an average.
    score: int | None = None
    #: How the label reads inside another question's text; defaults to the lower-cased label
    #: (translations.LocalizedQuestionnaire.question_text). Needed only for labels that must
    #: keep a capital (e.g. a product name).
    pipe_label: LocalizedText | None = None


class Scale(_Frozen):
    id: str = Field(pattern=_ID)
    options: tuple[ScaleOption, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique_values(self) -> Scale:
        values = [o.value for o in self.options]
        if len(values) != len(set(values)):
            raise ValueError(f"scale {self.id!r} has duplicate option values")
        return self

    def option(self, value: object) -> ScaleOption | None:
        for option in self.options:
            if option.value == value:
                return option
        return None

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.options)


# --- show_if conditions ---------------------------------------------------------------------
# Conditions may only look at questions that come *earlier* in the questionnaire (checked by
# Questionnaire). That keeps visibility computable in one pass and rules out cycles.


class Answered(_Frozen):
    """True when the question has any answer, including "Ved ikke"."""

    op: Literal["answered"]
    question: str

    def holds(self, questionnaire: Questionnaire, answers: Mapping[str, str]) -> bool:
        return _present(answers.get(self.question))

    def references(self) -> Iterator[str]:
        yield self.question


class Scored(_Frozen):
    """True when the question was answered with an option that carries a score."""

    op: Literal["scored"]
    question: str

    def holds(self, questionnaire: Questionnaire, answers: Mapping[str, str]) -> bool:
        scale = questionnaire.scale_for(self.question)
        option = scale.option(answers.get(self.question)) if scale else None
        return option is not None and option.score is not None

    def references(self) -> Iterator[str]:
        yield self.question


class AnsweredIn(_Frozen):
    """True when the question was answered with one of ``values``."""

    op: Literal["in"]
    question: str
    values: tuple[str, ...] = Field(min_length=1)

    def holds(self, questionnaire: Questionnaire, answers: Mapping[str, str]) -> bool:
        return answers.get(self.question) in self.values

    def references(self) -> Iterator[str]:
        yield self.question


class AllOf(_Frozen):
    op: Literal["all"]
    conditions: tuple[Condition, ...] = Field(min_length=1)

    def holds(self, questionnaire: Questionnaire, answers: Mapping[str, str]) -> bool:
        return all(c.holds(questionnaire, answers) for c in self.conditions)

    def references(self) -> Iterator[str]:
        for condition in self.conditions:
            yield from condition.references()


class AnyOf(_Frozen):
    op: Literal["any"]
    conditions: tuple[Condition, ...] = Field(min_length=1)

    def holds(self, questionnaire: Questionnaire, answers: Mapping[str, str]) -> bool:
        return any(c.holds(questionnaire, answers) for c in self.conditions)

    def references(self) -> Iterator[str]:
        for condition in self.conditions:
            yield from condition.references()


Condition = Annotated[
    Union[Answered, Scored, AnsweredIn, AllOf, AnyOf], Field(discriminator="op")
]
AllOf.model_rebuild()
AnyOf.model_rebuild()


def _present(value: object) -> bool:
    return value is not None and value != ""


# --- questions and themes -------------------------------------------------------------------


class Piping(_Frozen):
    """Insert the label of an earlier answer into this question's text.

    ``{placeholder}`` in the text is replaced by the chosen option's label in lower case. When
    there is nothing meaningful to insert (not answered, or an unscored option such as
    "Ved ikke"), the whole text is replaced by ``fallback``: a neutral sentence reads better
    than a template patched with "ved ikke".
    """

    placeholder: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    source: str
    fallback: LocalizedText


class Question(_Frozen):
    id: str = Field(pattern=_ID)
    kind: QuestionKind
    text: LocalizedText
    help: LocalizedText | None = None
    required: bool = False
    scale: str | None = None
    max_length: int | None = Field(default=None, ge=1, le=20_000)
    show_if: Condition | None = None
    piping: tuple[Piping, ...] = ()

    @model_validator(mode="after")
    def _kind_matches_fields(self) -> Question:
        if self.kind == "free_text":
            if self.scale is not None:
                raise ValueError(f"free-text question {self.id!r} cannot have a scale")
        else:
            if self.scale is None:
                raise ValueError(f"{self.kind} question {self.id!r} needs a scale")
            if self.max_length is not None:
                raise ValueError(f"max_length only applies to free text ({self.id!r})")
        return self

    @property
    def text_limit(self) -> int:
        return self.max_length or DEFAULT_FREE_TEXT_MAX_LENGTH

    @property
    def is_choice(self) -> bool:
        return self.kind != "free_text"


class Theme(_Frozen):
    """A theme is also one page of the web questionnaire (save-and-resume works per page)."""

    id: str = Field(pattern=_ID)
    title: LocalizedText
    intro: LocalizedText | None = None
    questions: tuple[Question, ...] = Field(min_length=1)


class ComponentRef(_Frozen):
    id: str
    version: int = Field(ge=1)


class Questionnaire(_Frozen):
    id: str = Field(pattern=_ID)
    version: int = Field(ge=1)
    title: LocalizedText
    languages: tuple[Language, ...] = ("da", "en")
    scales: tuple[Scale, ...]
    themes: tuple[Theme, ...] = Field(min_length=1)
    #: Filled in by effective_questionnaire(); empty for a bare core.
    modules: tuple[ComponentRef, ...] = ()
    supplement: ComponentRef | None = None

    _questions: dict[str, Question] = PrivateAttr(default_factory=dict)
    _theme_of: dict[str, str] = PrivateAttr(default_factory=dict)
    _scales: dict[str, Scale] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_integrity(self) -> Questionnaire:
        _check_integrity(self)
        return self

    def model_post_init(self, __context: object) -> None:
        self._scales = {s.id: s for s in self.scales}
        for theme in self.themes:
            for question in theme.questions:
                self._questions[question.id] = question
                self._theme_of[question.id] = theme.id

    # -- lookups --

    @property
    def questions(self) -> tuple[Question, ...]:
        """All questions in the order the citizen meets them."""
        return tuple(self._questions.values())

    def question(self, question_id: str) -> Question | None:
        return self._questions.get(question_id)

    def theme_id_of(self, question_id: str) -> str | None:
        return self._theme_of.get(question_id)

    def scale(self, scale_id: str) -> Scale | None:
        return self._scales.get(scale_id)

    def scale_for(self, question_id: str) -> Scale | None:
        question = self._questions.get(question_id)
        if question is None or question.scale is None:
            return None
        return self._scales.get(question.scale)

    # -- identity --

    @property
    def version_key(self) -> str:
        """Names the exact combination the citizen was given, e.g.
        ``kl_core@1+digital_tools@1+lokal_751@2``. Stored with every answer set."""
        parts = [f"{self.id}@{self.version}"]
        parts += [f"{m.id}@{m.version}" for m in self.modules]
        if self.supplement is not None:
            parts.append(f"{self.supplement.id}@{self.supplement.version}")
        return "+".join(parts)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the full content: detects a data file edited without a version bump."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()


def _check_integrity(qn: Questionnaire) -> None:
    scale_ids = [s.id for s in qn.scales]
    if len(scale_ids) != len(set(scale_ids)):
        raise ValueError("duplicate scale ids")
    scales = {s.id: s for s in qn.scales}
    theme_ids = [t.id for t in qn.themes]
    if len(theme_ids) != len(set(theme_ids)):
        raise ValueError("duplicate theme ids")

    earlier: dict[str, Question] = {}
    for theme in qn.themes:
        for question in theme.questions:
            if question.id in earlier:
                raise ValueError(f"duplicate question id {question.id!r}")
            _check_question(question, scales, earlier)
            earlier[question.id] = question


def _check_question(q: Question, scales: Mapping[str, Scale], earlier: Mapping[str, Question]) -> None:
    if q.scale is not None:
        scale = scales.get(q.scale)
        if scale is None:
            raise ValueError(f"question {q.id!r} uses unknown scale {q.scale!r}")
        if q.kind == "likert5":
            _check_likert5(q.id, scale)

    if q.show_if is not None:
        _check_condition(q.id, q.show_if, scales, earlier)

    wanted = {p.placeholder for p in q.piping}
    for lang in ("da", "en"):
        found = set(_PLACEHOLDER.findall(q.text.get(lang)))
        if found != wanted:
            raise ValueError(
                f"question {q.id!r} ({lang}) has placeholders {sorted(found)}, "
                f"piping defines {sorted(wanted)}"
            )
    for pipe in q.piping:
        source = earlier.get(pipe.source)
        if source is None or not source.is_choice:
            raise ValueError(
                f"question {q.id!r} pipes from {pipe.source!r}, which must be an earlier choice question"
            )


def _check_likert5(question_id: str, scale: Scale) -> None:
    # A likert5 question feeds averages and the 1-5 targets on the dashboard, so its scale
    # must be exactly five scored positions, best first, plus at most one "Ved ikke" last.
    scored = [o.score for o in scale.options if o.score is not None]
    unscored = [o for o in scale.options if o.score is None]
    tail_ok = not unscored or (len(unscored) == 1 and scale.options[-1].score is None)
    if scored != [5, 4, 3, 2, 1] or not tail_ok:
        raise ValueError(
            f"likert5 question {question_id!r}: scale {scale.id!r} must be scored 5..1 "
            "with at most one unscored option last"
        )


def _check_condition(
    question_id: str, condition: Condition, scales: Mapping[str, Scale], earlier: Mapping[str, Question]
) -> None:
    for ref in condition.references():
        if ref not in earlier:
            raise ValueError(f"show_if of {question_id!r} refers to {ref!r}, which is not an earlier question")
    if isinstance(condition, (AllOf, AnyOf)):
        for inner in condition.conditions:
            _check_condition(question_id, inner, scales, earlier)
        return
    target = earlier[condition.question]
    if isinstance(condition, (AnsweredIn, Scored)) and not target.is_choice:
        raise ValueError(f"show_if of {question_id!r} needs a choice question, {target.id!r} is free text")
    if isinstance(condition, AnsweredIn):
        unknown = set(condition.values) - set(scales[target.scale].values)  # type: ignore[index]
        if unknown:
            raise ValueError(f"show_if of {question_id!r} uses unknown values {sorted(unknown)}")


# --- modules and local supplements ----------------------------------------------------------


class QuestionnaireModule(_Frozen):
    """An optional block of themes (e.g. ``digital_tools``) switched on per round."""

    id: str = Field(pattern=_ID)
    version: int = Field(ge=1)
    title: LocalizedText
    scales: tuple[Scale, ...] = ()
    themes: tuple[Theme, ...] = Field(min_length=1)


_DEFAULT_SUPPLEMENT_TITLE = LocalizedText(
    da="Spørgsmål fra din kommune", en="Questions from your municipality"
)


class LocalSupplement(_Frozen):
    """A municipality's own questions, shown after the common questions.

    Question ids must start with ``k<kommunekode>_``: the namespace guarantees a supplement
    can never shadow a core or module id, so national results stay comparable, and it tells
    analytics at a glance that an answer is local.
    """

    kommunekode: str = Field(pattern=r"^\d{3}$")
    version: int = Field(ge=1)
    title: LocalizedText = _DEFAULT_SUPPLEMENT_TITLE
    intro: LocalizedText | None = None
    scales: tuple[Scale, ...] = ()
    questions: tuple[Question, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _namespaced_ids(self) -> LocalSupplement:
        prefix = self.id_prefix
        bad = [q.id for q in self.questions if not q.id.startswith(prefix)]
        if bad:
            raise ValueError(f"local question ids must start with {prefix!r}: {bad}")
        return self

    @property
    def id_prefix(self) -> str:
        return f"k{self.kommunekode}_"

    @property
    def component_id(self) -> str:
        return f"lokal_{self.kommunekode}"


def effective_questionnaire(
    core: Questionnaire,
    supplement: LocalSupplement | None = None,
    *,
    modules: Sequence[QuestionnaireModule] = (),
) -> Questionnaire:
    """The questionnaire a citizen is actually given: core, then modules, then the
    municipality's supplement. Core ids and wording are never altered."""
    if core.modules or core.supplement is not None:
        raise QuestionnaireError("effective_questionnaire() needs a bare core questionnaire")

    scales = {s.id: s for s in core.scales}
    themes = list(core.themes)
    taken = {q.id for q in core.questions}
    extra_sources: list[tuple[str, Sequence[Scale], Sequence[Question]]] = [
        (f"module {m.id}", m.scales, [q for t in m.themes for q in t.questions]) for m in modules
    ]
    if supplement is not None:
        extra_sources.append((f"supplement {supplement.component_id}", supplement.scales, supplement.questions))

    for origin, extra_scales, questions in extra_sources:
        for scale in extra_scales:
            if scale.id in scales and scales[scale.id] != scale:
                raise QuestionnaireError(f"{origin} redefines scale {scale.id!r} differently")
            scales[scale.id] = scale
        clashes = sorted(taken & {q.id for q in questions})
        if clashes:
            raise QuestionnaireError(f"{origin} reuses question ids {clashes}")
        taken |= {q.id for q in questions}

    for module in modules:
        themes.extend(module.themes)
    if supplement is not None:
        themes.append(
            Theme(
                id=supplement.component_id,
                title=supplement.title,
                intro=supplement.intro,
                questions=supplement.questions,
            )
        )

    try:
        return Questionnaire(
            id=core.id,
            version=core.version,
            title=core.title,
            languages=core.languages,
            scales=tuple(scales.values()),
            themes=tuple(themes),
            modules=tuple(ComponentRef(id=m.id, version=m.version) for m in modules),
            supplement=(
                ComponentRef(id=supplement.component_id, version=supplement.version)
                if supplement is not None
                else None
            ),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise QuestionnaireError(f"cannot combine questionnaire parts: {exc}") from exc


# --- text rendering (piping) ----------------------------------------------------------------


def render_question_text(
    questionnaire: Questionnaire,
    question_id: str,
    answers: Mapping[str, str],
    lang: Language = "da",
) -> str:
    """The question text as the citizen should read it, with piped labels filled in (in any
    language: the rule lives in ``translations.LocalizedQuestionnaire.question_text``)."""
    from .translations import localize  # imports this module

    return localize(questionnaire, lang).question_text(question_id, answers).text


def pipeable(scale: Scale, option: ScaleOption) -> bool:
    # On a scored scale the unscored option is "Ved ikke": "hvorfor du har været ved ikke"
    # is nonsense, so it falls back to the neutral text. An explicit pipe_label opts back in.
    # On a purely nominal scale (no scores at all) every option is a real answer.
    if option.pipe_label is not None or option.score is not None:
        return True
    return all(o.score is None for o in scale.options)


def is_visible(questionnaire: Questionnaire, question: Question, answers: Mapping[str, str]) -> bool:
    return question.show_if is None or question.show_if.holds(questionnaire, answers)


# --- loading published data -----------------------------------------------------------------


def _read_data_file(name: str) -> str:
    if not _DATA_FILE_NAME.match(name):
        raise QuestionnaireError(f"invalid questionnaire name {name!r}")
    path = resources.files(__package__) / "questionnaires" / f"{name}.json"
    if not path.is_file():
        raise QuestionnaireError(f"no published questionnaire data {name!r}")
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def load_questionnaire(name: str = "kl_core_v1") -> Questionnaire:
    """Load a published core questionnaire, e.g. ``kl_core_v1``. Cached: models are immutable."""
    return Questionnaire.model_validate_json(_read_data_file(name))


@lru_cache(maxsize=None)
def load_module(name: str) -> QuestionnaireModule:
    """Load a published optional module, e.g. ``digital_tools_v1``."""
    return QuestionnaireModule.model_validate_json(_read_data_file(name))
