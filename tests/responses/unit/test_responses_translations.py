"""Languages as data: every translation file covers its Danish source (or is reported), a text a
translation lacks falls back to Danish marked as Danish (never blank), and a round offers only
the languages whose review status meets what it requires."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from services.responses.domain import effective_questionnaire, load_module, load_questionnaire
from services.responses.domain.languages import (
    LANGUAGES,
    NATIVE_NAMES,
    RIGHT_TO_LEFT,
    SOURCE_LANGUAGE,
    direction,
    meets,
    offered_languages,
    weakest,
)
from services.responses.domain.translations import (
    IN_SOURCE,
    Translation,
    components_of,
    coverage,
    load_translation,
    localize,
    merge_texts,
    placeholders,
    questionnaire_status,
    source_texts,
    translations_dir,
)
from services.responses.texts import PAGE_STATUS, SOURCE_TEXTS, TEXTS, long_date, raw_page_texts

TRANSLATION_FILE = re.compile(r"^(?P<component>[a-z0-9_]+)\.(?P<lang>[a-z]{2}(?:-x-[a-z]+)?)\.json$")
PUBLISHED = {"kl_core_v1": load_questionnaire("kl_core_v1"), "digital_tools_v1": load_module("digital_tools_v1")}
TRANSLATED = [lang for lang in LANGUAGES if lang not in IN_SOURCE]
BCP47 = re.compile(r"^[a-z]{2,3}(-x-[a-z0-9]{1,8})?$")


def test_every_translation_file_covers_its_source_or_is_reported():
    """Each file in questionnaires/translations/: a known component, a known language, the
    source version it names, and exactly the source's keys with the same {placeholders}."""
    problems = []
    seen = set()
    for path in sorted(p for p in translations_dir().iterdir() if p.name.endswith(".json")):
        match = TRANSLATION_FILE.match(path.name)
        if match is None or match["component"] not in PUBLISHED or match["lang"] not in TRANSLATED:
            problems.append(f"{path.name}: not <published component>.<language>.json")
            continue
        seen.add((match["component"], match["lang"]))
        part = PUBLISHED[match["component"]]
        translation = Translation.model_validate_json(path.read_text(encoding="utf-8"))
        if translation.source_version != part.version:
            problems.append(f"{path.name}: translates version {translation.source_version}, the source is {part.version}")
        result = coverage(source_texts(part), translation)
        if not result.complete:
            problems.append(f"{path.name}: missing {sorted(result.missing)}, unknown {sorted(result.unknown)}, "
                            f"placeholders differ in {sorted(result.bad_placeholders)}")
    wanted = {(component, lang) for component in PUBLISHED for lang in TRANSLATED}
    problems += [f"no translation of {c} into {lang}" for c, lang in sorted(wanted - seen)]
    assert problems == []


def test_every_page_text_file_covers_the_danish_keys_with_the_same_placeholders():
    problems = []
    for lang in LANGUAGES:
        texts = raw_page_texts(lang)
        if missing := sorted(k for k in SOURCE_TEXTS if not texts.get(k)):
            problems.append(f"{lang}: missing {missing}")
        if unknown := sorted(set(texts) - set(SOURCE_TEXTS)):
            problems.append(f"{lang}: unknown {unknown}")
        problems += [f"{lang}: {k} has placeholders {placeholders(v)}" for k, v in texts.items()
                     if k in SOURCE_TEXTS and placeholders(v) != placeholders(SOURCE_TEXTS[k])]
        if PAGE_STATUS[lang] not in ("draft", "reviewed"):
            problems.append(f"{lang}: status {PAGE_STATUS[lang]!r}")
    assert problems == []


def test_translations_are_drafts_until_reviewed_and_name_their_source():
    """The translations written for the platform are marked draft: nobody has reviewed them."""
    for component, part in PUBLISHED.items():
        for lang in TRANSLATED:
            translation = load_translation(component, lang)
            assert translation is not None and translation.status == "draft" and translation.source_version == part.version
            assert questionnaire_status(f"{part.id}@{part.version}", lang) == "draft"
    for lang in TRANSLATED:
        assert PAGE_STATUS[lang] == "draft"
    assert PAGE_STATUS["da"] == PAGE_STATUS["en"] == "reviewed"


def test_language_codes_are_bcp47_and_named_in_themselves():
    assert all(BCP47.match(lang) for lang in LANGUAGES)
    assert set(NATIVE_NAMES) == set(LANGUAGES)
    assert [direction(lang) for lang in LANGUAGES] == ["rtl" if lang in RIGHT_TO_LEFT else "ltr" for lang in LANGUAGES]
    assert direction("ar") == "rtl" and direction("da-x-let") == "ltr"


_SOURCE = source_texts(PUBLISHED["kl_core_v1"])
_FULL = load_translation("kl_core_v1", "uk")


@settings(max_examples=60, deadline=None)
@given(
    dropped=st.sets(st.sampled_from(sorted(_SOURCE))),
    blanked=st.sets(st.sampled_from(sorted(_SOURCE))),
    extra=st.sets(st.from_regex(r"question\.x[0-9]{1,3}\.text|scale\.enighed\.x[a-z]{1,5}", fullmatch=True), max_size=3),
)
def test_a_missing_or_blank_text_falls_back_to_danish_marked_as_danish(dropped, blanked, extra):
    """Any translation with texts dropped, blanked or added for ids the source lacks: every
    source text is shown (in Danish, marked, where the translation has none), no unknown id is
    shown, and the coverage check reports exactly what is missing and what is unknown."""
    texts = {k: ("  " if k in blanked else v) for k, v in _FULL.texts.items() if k not in dropped}
    texts |= {k: "Щось інше" for k in extra}
    partial = Translation(source_version=1, status="draft", texts=texts)
    merged = merge_texts(_SOURCE, [partial], "uk")
    assert set(merged) == set(_SOURCE)
    for key, shown in merged.items():
        assert shown.text.strip()  # never blank
        if key in dropped or key in blanked:
            assert (shown.text, shown.lang) == (_SOURCE[key], SOURCE_LANGUAGE)
        else:
            assert (shown.text, shown.lang) == (_FULL.texts[key], "uk")
    result = coverage(_SOURCE, partial)
    assert result.missing == frozenset(dropped | blanked)  # and the check reports exactly those
    assert result.unknown == frozenset(extra) and result.complete == (not (dropped or blanked or extra))


def test_a_text_with_other_placeholders_is_not_used_and_is_reported():
    texts = dict(_FULL.texts, **{"question.q14.text": "Ви відповіли {label}."})
    bad = Translation(source_version=1, status="draft", texts=texts)
    assert coverage(_SOURCE, bad).bad_placeholders == {"question.q14.text"}
    assert merge_texts(_SOURCE, [bad], "uk")["question.q14.text"].lang == "da"


def test_every_text_of_every_questionnaire_is_shown_in_every_language():
    combined = effective_questionnaire(PUBLISHED["kl_core_v1"], modules=[PUBLISHED["digital_tools_v1"]])
    for lang in LANGUAGES:
        localized = localize(combined, lang)
        for question in combined.questions:
            assert localized.question_text(question.id, {}).lang == lang
            for _, label in localized.options(question.id) or []:
                assert label.lang == lang and label.text.strip()
        for theme in combined.themes:
            assert localized.theme_title(theme.id).lang == lang
        assert localized.title.lang == lang


def test_piping_in_a_translation_uses_the_translated_label():
    localized = localize(PUBLISHED["kl_core_v1"], "pl")
    assert localized.question_text("q14", {"q13": "tilfreds"}).text == "Twoja odpowiedź: „Zadowolony(-a)”. Czy chcesz wyjaśnić dlaczego?"
    assert localized.question_text("q14", {"q13": "ved_ikke"}).text.startswith("Czy chcesz opisać")
    assert localize(PUBLISHED["kl_core_v1"], "da").question_text("q14", {"q13": "tilfreds"}).text == (
        "Vil du uddybe, hvorfor du har været tilfreds?"
    )


def test_a_local_supplement_has_no_translation_and_does_not_block_a_language():
    assert components_of("kl_core@1+digital_tools@1+lokal_751@2") == (("kl_core_v1", 1), ("digital_tools_v1", 1))
    assert questionnaire_status("kl_core@1+lokal_751@2", "ar") == "draft"
    assert questionnaire_status("kl_core@1+nomodule@1", "ar") is None  # a component without translation


_STATUS = st.sampled_from([None, "draft", "reviewed"])


@settings(max_examples=200, deadline=None)
@given(
    status_of=st.fixed_dictionaries({lang: _STATUS for lang in LANGUAGES}),
    named=st.lists(st.sampled_from(LANGUAGES), unique=True, max_size=len(LANGUAGES)),
    required=st.sampled_from(["draft", "reviewed"]),
)
def test_a_round_offers_exactly_the_named_languages_whose_status_meets_its_requirement(status_of, named, required):
    offered = offered_languages(status_of, named, required)
    assert offered[0] == SOURCE_LANGUAGE  # Danish always, first
    assert list(offered) == [lang for lang in LANGUAGES if lang in offered]  # menu order
    for lang in LANGUAGES:
        expected = lang == SOURCE_LANGUAGE or ((not named or lang in named) and meets(status_of[lang], required))
        assert (lang in offered) == expected, lang
    if required == "reviewed":
        assert not any(status_of[lang] in ("draft", None) for lang in offered if lang != SOURCE_LANGUAGE)


def test_a_round_requiring_reviewed_translations_offers_no_draft_language():
    status_of = {lang: weakest([PAGE_STATUS[lang], questionnaire_status("kl_core@1", lang)]) for lang in LANGUAGES}
    assert offered_languages(status_of, [], "reviewed") == ("da", "en")
    assert offered_languages(status_of, [], "draft") == LANGUAGES
    assert offered_languages(status_of, ["ar", "so"], "draft") == ("da", "ar", "so")


def test_weakest_status_of_parts():
    assert weakest(["reviewed", "reviewed"]) == "reviewed"
    assert weakest(["reviewed", "draft"]) == "draft"
    assert weakest(["draft", None]) is None


def test_dates_and_numbers_in_every_language():
    from datetime import date

    from services.responses.texts import number

    assert long_date(date(2026, 10, 3), "da") == "3. oktober 2026"
    assert long_date(date(2026, 10, 3), "uk") == "3 жовтня 2026 р."
    assert long_date(date(2026, 10, 3), "ar") == "3 أكتوبر 2026"
    assert number(2000, "da") == "2.000" and number(2000, "en") == "2,000" and number(2000, "pl") == "2\u00a0000"
    for lang in LANGUAGES:
        assert TEXTS[lang]["max_chars"].format(n=number(2000, lang)).count("2") == 1


def test_page_text_files_are_valid_json_with_twelve_months():
    from services.responses.texts import PAGE_TEXTS_DIR

    for lang in LANGUAGES:
        doc = json.loads((PAGE_TEXTS_DIR / f"{lang}.json").read_text(encoding="utf-8"))
        assert len(doc["months"]) == 12 and "{day}" in doc["date_format"]


def test_the_questionnaire_offered_for_print_names_the_languages_the_round_offers():
    """questionnaire.offered carries the round's offered languages (the letters list them), by
    the same rule as the pages' menu: round.defined's languages and translation_status."""
    from services.responses.domain import load_questionnaire
    from services.responses.printed import offered
    from services.responses.texts import offered_for

    core = load_questionnaire("kl_core_v1")
    assert offered(core).offered_languages == list(LANGUAGES)  # no definition yet: every language (drafts)
    assert offered(core, {"languages": ["ar", "so"], "translation_status": "draft"}).offered_languages == ["da", "ar", "so"]
    assert offered(core, {"languages": [], "translation_status": "reviewed"}).offered_languages == ["da", "en"]
    assert offered(core, {"languages": ["pl"]}).offered_languages == list(offered_for(core.version_key, ["pl"], "draft"))
    assert set(offered(core, {"languages": ["pl"]}).languages) == set(offered(core).languages)  # the print is the same
