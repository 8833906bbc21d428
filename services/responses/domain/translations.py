"""Questionnaire translations as data, and the questionnaire's texts in one language (pure).

A published core or module file (``questionnaires/kl_core_v1.json``) holds the Danish source
and the English version. Every other language is a file of its own beside it,
``questionnaires/translations/<component>.<lang>.json``::

    {"source_version": 1, "status": "draft", "texts": {"question.q1.text": "...", ...}}

``source_version`` is the version of the Danish source it translates (a translation of another
version is not used); ``status`` is ``draft`` until a person who reads both languages has
checked it and sets ``reviewed`` (docs/languages.md). The keys name each text of the source
(``source_texts``): ``title``, ``scale.<scale>.<option>``, ``theme.<theme>.title|intro``,
``question.<q>.text|help``, ``question.<q>.fallback.<placeholder>``.

A text a translation lacks is shown in Danish, marked as Danish (``Shown.lang``), never blank;
a local supplement has no translations, so its questions show in Danish (English in English).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from .languages import LANGUAGES, SOURCE_LANGUAGE, ReviewStatus, weakest
from .questionnaire import Questionnaire, QuestionnaireModule, Scale, ScaleOption, pipeable, is_visible

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_COMPONENT_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
_KEY_PART = re.compile(r"^([a-z][a-z0-9_]*)@(\d+)$")
#: Languages whose texts are in the source files themselves.
IN_SOURCE = ("da", "en")


class Translation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source_version: int = Field(ge=1)
    status: ReviewStatus
    reviewed_by: str | None = None  # who checked it (a name or role), set with status "reviewed"
    texts: dict[str, str]


@dataclass(frozen=True, slots=True)
class Shown:
    """A text as the page shows it, with the language it is really in (Danish when the page's
    language lacks it): the page marks it ``lang="da"`` and says it is only in Danish."""

    text: str
    lang: str

    def __str__(self) -> str:
        return self.text


def source_texts(part: Questionnaire | QuestionnaireModule, lang: str = SOURCE_LANGUAGE) -> dict[str, str]:
    """Every text of a questionnaire or module in ``lang`` (``da`` or ``en``), by key."""
    texts = {"title": part.title.get(lang)}  # type: ignore[arg-type]
    for scale in part.scales:
        for option in scale.options:
            texts[f"scale.{scale.id}.{option.value}"] = option.label.get(lang)  # type: ignore[arg-type]
            if option.pipe_label is not None:
                texts[f"scale.{scale.id}.{option.value}.pipe"] = option.pipe_label.get(lang)  # type: ignore[arg-type]
    for theme in part.themes:
        texts[f"theme.{theme.id}.title"] = theme.title.get(lang)  # type: ignore[arg-type]
        if theme.intro is not None:
            texts[f"theme.{theme.id}.intro"] = theme.intro.get(lang)  # type: ignore[arg-type]
        for question in theme.questions:
            texts[f"question.{question.id}.text"] = question.text.get(lang)  # type: ignore[arg-type]
            if question.help is not None:
                texts[f"question.{question.id}.help"] = question.help.get(lang)  # type: ignore[arg-type]
            for pipe in question.piping:
                texts[f"question.{question.id}.fallback.{pipe.placeholder}"] = pipe.fallback.get(lang)  # type: ignore[arg-type]
    return texts


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


@dataclass(frozen=True, slots=True)
class Coverage:
    """How a translation matches its source: keys it lacks, keys the source does not have, and
    texts whose ``{placeholders}`` differ from the source's (those are not used)."""

    missing: frozenset[str]
    unknown: frozenset[str]
    bad_placeholders: frozenset[str]

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unknown or self.bad_placeholders)


def _known(key: str, source: Mapping[str, str]) -> bool:
    """A key of the source, or the piped form of one of its options (``scale.<s>.<o>.pipe``): a
    translation may give an option the form it takes inside another question's text."""
    return key in source or (key.startswith("scale.") and key.endswith(".pipe") and key[: -len(".pipe")] in source)


def coverage(source: Mapping[str, str], translation: Translation) -> Coverage:
    texts = translation.texts
    return Coverage(
        missing=frozenset(k for k in source if not texts.get(k, "").strip()),
        unknown=frozenset(k for k in texts if not _known(k, source)),
        bad_placeholders=frozenset(
            k for k, v in texts.items() if _known(k, source) and placeholders(v) != placeholders(source.get(k, ""))
        ),
    )


# --- loading ----------------------------------------------------------------------------------


def translations_dir():
    return resources.files(__package__) / "questionnaires" / "translations"


@lru_cache(maxsize=None)
def load_translation(component: str, lang: str) -> Translation | None:
    """The translation of a published component (``kl_core_v1``) into ``lang``; None if there is none."""
    if not _COMPONENT_NAME.match(component) or lang not in LANGUAGES or lang in IN_SOURCE:
        return None
    path = translations_dir() / f"{component}.{lang}.json"
    if not path.is_file():
        return None
    return Translation.model_validate_json(path.read_text(encoding="utf-8"))


def components_of(version_key: str) -> tuple[tuple[str, int], ...]:
    """The published components (core, modules) a questionnaire key names, as (file name,
    version): ``kl_core@1+digital_tools@1+lokal_751@2`` -> ``kl_core_v1``, ``digital_tools_v1``.
    Local supplements are not published files and have no translations."""
    parts = []
    for part in version_key.split("+"):
        match = _KEY_PART.match(part)
        if match is None or match.group(1).startswith("lokal_"):
            continue
        parts.append((f"{match.group(1)}_v{match.group(2)}", int(match.group(2))))
    return tuple(parts)


def _usable(component: str, version: int, lang: str) -> Translation | None:
    translation = load_translation(component, lang)
    return translation if translation is not None and translation.source_version == version else None


@lru_cache(maxsize=1024)
def questionnaire_status(version_key: str, lang: str) -> ReviewStatus | None:
    """The review status of a questionnaire in ``lang``: its weakest component's translation
    (None: a component has no translation of its version). Danish and English are published
    with the source."""
    if lang in IN_SOURCE:
        return "reviewed"
    return weakest(
        (t.status if (t := _usable(name, version, lang)) is not None else None)
        for name, version in components_of(version_key)
    )


# --- the questionnaire in one language ----------------------------------------------------------


class LocalizedQuestionnaire:
    """Every text of one questionnaire in one language, each falling back to Danish."""

    def __init__(self, questionnaire: Questionnaire, lang: str, texts: Mapping[str, Shown]) -> None:
        self.questionnaire, self.lang, self._texts = questionnaire, lang, texts

    def text(self, key: str) -> Shown:
        return self._texts[key]

    def optional(self, key: str) -> Shown | None:
        return self._texts.get(key)

    @property
    def title(self) -> Shown:
        return self._texts["title"]

    def theme_title(self, theme_id: str) -> Shown:
        return self._texts[f"theme.{theme_id}.title"]

    def theme_intro(self, theme_id: str) -> Shown | None:
        return self._texts.get(f"theme.{theme_id}.intro")

    def help(self, question_id: str) -> Shown | None:
        return self._texts.get(f"question.{question_id}.help")

    def option_label(self, scale: Scale, option: ScaleOption) -> Shown:
        return self._texts[f"scale.{scale.id}.{option.value}"]

    def options(self, question_id: str) -> list[tuple[str, Shown]] | None:
        scale = self.questionnaire.scale_for(question_id)
        return [(o.value, self.option_label(scale, o)) for o in scale.options] if scale else None

    def question_text(self, question_id: str, answers: Mapping[str, str]) -> Shown:
        """The question as the citizen reads it, with the labels of earlier answers piped in
        (the same rule as ``render_question_text``, in this language)."""
        question = self.questionnaire.question(question_id)
        if question is None:
            raise KeyError(question_id)
        shown = self._texts[f"question.{question_id}.text"]
        text = shown.text
        for pipe in question.piping:
            scale = self.questionnaire.scale_for(pipe.source)
            option = scale.option(answers.get(pipe.source)) if scale else None
            if scale is None or option is None or not pipeable(scale, option):
                return self._texts[f"question.{question_id}.fallback.{pipe.placeholder}"]
            label = self._texts.get(f"scale.{scale.id}.{option.value}.pipe")
            if label is None:
                label = self.option_label(scale, option)
                label = Shown(label.text.lower() if label.lang in IN_SOURCE else label.text, label.lang)
            text = text.replace("{" + pipe.placeholder + "}", label.text)
        return Shown(text, shown.lang)

    def visible(self, question_id: str, answers: Mapping[str, str]) -> bool:
        question = self.questionnaire.question(question_id)
        return question is not None and is_visible(self.questionnaire, question, answers)


_localized: dict[tuple[str, str], LocalizedQuestionnaire] = {}


def localize(questionnaire: Questionnaire, lang: str) -> LocalizedQuestionnaire:
    """``questionnaire`` in ``lang``: Danish and English from the source files, any other
    language from its translation files over the Danish source. Cached per questionnaire
    object (the services keep one immutable object per version key), so a page view costs a
    dictionary lookup."""
    cache_key = (questionnaire.version_key, lang)
    found = _localized.get(cache_key)
    if found is not None and found.questionnaire is questionnaire:
        return found
    localized = LocalizedQuestionnaire(questionnaire, lang, _texts_for(questionnaire, lang))
    if len(_localized) > 2048:
        _localized.clear()
    _localized[cache_key] = localized
    return localized


def _texts_for(questionnaire: Questionnaire, lang: str) -> dict[str, Shown]:
    if lang in IN_SOURCE:
        return {k: Shown(v, lang) for k, v in source_texts(questionnaire, lang).items()}
    translations = [_usable(name, version, lang) for name, version in components_of(questionnaire.version_key)]
    return merge_texts(source_texts(questionnaire, SOURCE_LANGUAGE), translations, lang)


def merge_texts(source: Mapping[str, str], translations: list[Translation | None], lang: str) -> dict[str, Shown]:
    """Every source text, in ``lang`` where one of ``translations`` (core first, then modules;
    None: that component has none) has it, else in Danish, marked as Danish."""
    texts = {k: Shown(v, SOURCE_LANGUAGE) for k, v in source.items()}
    for position, translation in enumerate(translations):
        if translation is None:
            continue
        for k, v in translation.texts.items():
            # A module's title is not the questionnaire's; a text with other placeholders than
            # its source would show a raw "{...}": both keep the Danish.
            if (k == "title" and position > 0) or not v.strip() or not _known(k, source):
                continue
            if placeholders(v) == placeholders(source.get(k, "")):
                texts[k] = Shown(v, lang)
    return texts
