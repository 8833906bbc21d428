"""The questionnaire data (core v1, digital_tools module) and the rules that keep it consistent."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from services.responses.domain.questionnaire import (
    LocalizedText,
    LocalSupplement,
    Question,
    Questionnaire,
    QuestionnaireError,
    effective_questionnaire,
    is_visible,
    load_module,
    load_questionnaire,
    render_question_text,
)


@pytest.fixture(scope="module")
def digital():
    return load_module("digital_tools_v1")


def _supplement(**overrides) -> LocalSupplement:
    data = {
        "kommunekode": "751",
        "version": 2,
        "questions": [
            {
                "id": "k751_tolk",
                "kind": "single_choice",
                "scale": "ja_nej_lokal",
                "required": False,
                "text": {"da": "Havde du brug for tolk til samtalen?", "en": "Did you need an interpreter?"},
            },
            {
                "id": "k751_tolk_uddyb",
                "kind": "free_text",
                "show_if": {"op": "in", "question": "k751_tolk", "values": ["ja"]},
                "text": {"da": "Fik du den tolk, du havde brug for?", "en": "Did you get the interpreter you needed?"},
            },
        ],
        "scales": [
            {
                "id": "ja_nej_lokal",
                "options": [
                    {"value": "ja", "label": {"da": "Ja", "en": "Yes"}},
                    {"value": "nej", "label": {"da": "Nej", "en": "No"}},
                ],
            }
        ],
    }
    data.update(overrides)
    return LocalSupplement.model_validate(data)


# --- the published core ---------------------------------------------------------------------


def test_core_has_the_five_themes_and_fifteen_questions_in_order(core: Questionnaire) -> None:
    assert [t.title.da for t in core.themes] == [
        "Mødet med jobcentret",
        "Mål og aktiviteter i forløbet",
        "Seneste samtale med din sagsbehandler",
        "Progression mod arbejde eller uddannelse",
        "Samlet tilfredshed med dit forløb",
    ]
    assert [q.id for q in core.questions] == [f"q{n}" for n in range(1, 16)]
    assert [len(t.questions) for t in core.themes] == [3, 3, 4, 2, 3]


def test_core_identity(core: Questionnaire) -> None:
    assert core.id == "kl_core"
    assert core.version == 1
    assert core.version_key == "kl_core@1"
    assert core.languages == ("da", "en")
    assert re.fullmatch(r"[0-9a-f]{64}", core.fingerprint)
    assert load_questionnaire("kl_core_v1").fingerprint == core.fingerprint


def test_question_kinds_and_required_flags(core: Questionnaire) -> None:
    kinds = {q.id: q.kind for q in core.questions}
    assert all(kinds[f"q{n}"] == "likert5" for n in range(1, 14))
    assert kinds["q14"] == kinds["q15"] == "free_text"
    assert all(core.question(f"q{n}").required for n in range(1, 14))
    assert not core.question("q14").required and not core.question("q15").required
    assert core.question("q14").text_limit == 2000


def test_agreement_and_satisfaction_scales(core: Questionnaire) -> None:
    agreement = core.scale("enighed")
    assert [o.label.da for o in agreement.options] == [
        "Meget enig", "Enig", "Hverken enig eller uenig", "Uenig", "Meget uenig", "Ved ikke",
    ]
    assert [o.score for o in agreement.options] == [5, 4, 3, 2, 1, None]
    satisfaction = core.scale_for("q13")
    assert [o.label.da for o in satisfaction.options] == [
        "Meget tilfreds", "Tilfreds", "Hverken tilfreds eller utilfreds", "Utilfreds", "Meget utilfreds", "Ved ikke",
    ]
    assert [o.score for o in satisfaction.options] == [5, 4, 3, 2, 1, None]
    assert all(core.question(f"q{n}").scale == "enighed" for n in range(1, 13))


def test_seed_wording_with_danish_letters_restored(core: Questionnaire) -> None:
    assert core.question("q1").text.da == "Oplever du at blive mødt med tillid i jobcentret?"
    assert core.question("q8").text.da == (
        "Min sagsbehandler var velforberedt og informeret om min situation til samtalen."
    )
    assert core.question("q15").text.da == "Hvad kunne have gjort dit forløb i jobcentret bedre?"
    assert core.themes[2].intro is not None and core.themes[2].intro.da.startswith("Tænk tilbage")
    # OCR damage seen in the seed ("forlgb", "mgdt", "taettere", "pa ") must not survive.
    all_danish = " ".join(q.text.da for q in core.questions)
    for mangled in ("forlgb", "mgdt", "taettere", "praesenteret", " pa ", "naeste", "Teenk"):
        assert mangled not in all_danish


def test_every_text_has_both_languages(core: Questionnaire, digital) -> None:
    for question in list(core.questions) + [q for t in digital.themes for q in t.questions]:
        assert question.text.da.strip() and question.text.en.strip()
        assert question.text.da != question.text.en


def test_loading_refuses_unknown_or_unsafe_names() -> None:
    with pytest.raises(QuestionnaireError):
        load_questionnaire("../kl_core_v1")
    with pytest.raises(QuestionnaireError):
        load_questionnaire("kl_core_v99")


def test_models_are_immutable(core: Questionnaire) -> None:
    with pytest.raises(ValidationError):
        core.question("q1").required = False  # type: ignore[misc]


def test_round_trip_through_json_keeps_the_fingerprint(core: Questionnaire) -> None:
    again = Questionnaire.model_validate_json(core.model_dump_json())
    assert again == core
    assert again.fingerprint == core.fingerprint


# --- show_if and piping ---------------------------------------------------------------------


def test_q14_is_shown_only_when_q13_is_answered(core: Questionnaire) -> None:
    q14 = core.question("q14")
    assert not is_visible(core, q14, {})
    assert is_visible(core, q14, {"q13": "tilfreds"})
    assert is_visible(core, q14, {"q13": "ved_ikke"})
    assert is_visible(core, core.question("q15"), {})


@pytest.mark.parametrize(
    ("answer", "da", "en"),
    [
        ("meget_tilfreds", "Vil du uddybe, hvorfor du har været meget tilfreds?", "Would you like to tell us why you have been very satisfied?"),
        ("tilfreds", "Vil du uddybe, hvorfor du har været tilfreds?", "Would you like to tell us why you have been satisfied?"),
        ("hverken_tilfreds_eller_utilfreds", "Vil du uddybe, hvorfor du har været hverken tilfreds eller utilfreds?", "Would you like to tell us why you have been neither satisfied nor dissatisfied?"),
        ("utilfreds", "Vil du uddybe, hvorfor du har været utilfreds?", "Would you like to tell us why you have been dissatisfied?"),
        ("meget_utilfreds", "Vil du uddybe, hvorfor du har været meget utilfreds?", "Would you like to tell us why you have been very dissatisfied?"),
    ],
)
def test_q14_pipes_the_q13_label_in_lower_case(core: Questionnaire, answer: str, da: str, en: str) -> None:
    assert render_question_text(core, "q14", {"q13": answer}, "da") == da
    assert render_question_text(core, "q14", {"q13": answer}, "en") == en


@pytest.mark.parametrize("answers", [{"q13": "ved_ikke"}, {}, {"q13": "not-an-option"}])
def test_q14_falls_back_to_neutral_wording(core: Questionnaire, answers: dict) -> None:
    assert render_question_text(core, "q14", answers, "da") == (
        "Vil du uddybe, hvordan du har oplevet dit forløb i jobcentret?"
    )
    text_en = render_question_text(core, "q14", answers, "en")
    assert "{" not in text_en and "don't know" not in text_en.lower()


def test_questions_without_piping_render_their_text(core: Questionnaire) -> None:
    assert render_question_text(core, "q7", {}, "en") == "The purpose of the conversation was clear."
    with pytest.raises(KeyError):
        render_question_text(core, "q99", {})


def test_pipe_label_overrides_lower_casing() -> None:
    qn = _minimal_questionnaire(
        scales=[
            {
                "id": "vaerktoej",
                "options": [
                    {"value": "jobnet", "label": {"da": "Jobnet", "en": "Jobnet"},
                     "pipe_label": {"da": "Jobnet", "en": "Jobnet"}},
                    {"value": "andet", "label": {"da": "Andet", "en": "Other"}},
                ],
            }
        ],
        questions=[
            {"id": "a", "kind": "single_choice", "scale": "vaerktoej", "text": {"da": "Hvad?", "en": "What?"}},
            {
                "id": "b",
                "kind": "free_text",
                "text": {"da": "Hvorfor {v}?", "en": "Why {v}?"},
                "piping": [{"placeholder": "v", "source": "a", "fallback": {"da": "Hvorfor?", "en": "Why?"}}],
            },
        ],
    )
    assert render_question_text(qn, "b", {"a": "jobnet"}) == "Hvorfor Jobnet?"
    # On a nominal scale (no scores) every option is a real answer and is piped.
    assert render_question_text(qn, "b", {"a": "andet"}) == "Hvorfor andet?"


# --- integrity rules ------------------------------------------------------------------------


def _minimal_questionnaire(*, questions: list[dict], scales: list[dict] | None = None) -> Questionnaire:
    return Questionnaire.model_validate(
        {
            "id": "test",
            "version": 1,
            "title": {"da": "Test", "en": "Test"},
            "scales": scales if scales is not None else [_agreement_scale()],
            "themes": [{"id": "t", "title": {"da": "T", "en": "T"}, "questions": questions}],
        }
    )


def _agreement_scale() -> dict:
    return json.loads(load_questionnaire().scale("enighed").model_dump_json())


def _likert(qid: str, **extra) -> dict:
    return {"id": qid, "kind": "likert5", "scale": "enighed", "text": {"da": "Spørgsmål", "en": "Question"}, **extra}


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ([_likert("a"), _likert("a")], "duplicate question id"),
        ([_likert("a", scale="findes_ikke")], "unknown scale"),
        ([_likert("a", show_if={"op": "answered", "question": "b"}), _likert("b")], "not an earlier question"),
        ([_likert("a", show_if={"op": "answered", "question": "a"})], "not an earlier question"),
        ([_likert("a"), _likert("b", show_if={"op": "in", "question": "a", "values": ["maaske"]})], "unknown values"),
        (
            [
                {"id": "a", "kind": "free_text", "text": {"da": "x", "en": "x"}},
                _likert("b", show_if={"op": "scored", "question": "a"}),
            ],
            "needs a choice question",
        ),
        (
            [_likert("a"), _likert("b", text={"da": "Hvorfor {x}?", "en": "Why?"},
                                   piping=[{"placeholder": "x", "source": "a", "fallback": {"da": "f", "en": "f"}}])],
            "placeholders",
        ),
        (
            [{"id": "a", "kind": "free_text", "text": {"da": "x", "en": "x"}},
             _likert("b", text={"da": "{x}", "en": "{x}"},
                     piping=[{"placeholder": "x", "source": "a", "fallback": {"da": "f", "en": "f"}}])],
            "earlier choice question",
        ),
        ([_likert("a", max_length=10)], "max_length only applies"),
        ([{"id": "a", "kind": "free_text", "scale": "enighed", "text": {"da": "x", "en": "x"}}], "cannot have a scale"),
        ([{"id": "a", "kind": "single_choice", "text": {"da": "x", "en": "x"}}], "needs a scale"),
        ([_likert("a", unknown_key=True)], "Extra inputs are not permitted"),
        ([_likert("A")], "String should match pattern"),
    ],
)
def test_inconsistent_data_is_refused_at_load_time(questions: list[dict], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _minimal_questionnaire(questions=questions)


def test_likert5_needs_five_scored_options_best_first() -> None:
    reversed_scale = _agreement_scale()
    reversed_scale["options"] = list(reversed(reversed_scale["options"][:5])) + reversed_scale["options"][5:]
    with pytest.raises(ValidationError, match="scored 5..1"):
        _minimal_questionnaire(questions=[_likert("a")], scales=[reversed_scale])
    four_point = _agreement_scale()
    four_point["options"] = four_point["options"][:4]
    with pytest.raises(ValidationError, match="scored 5..1"):
        _minimal_questionnaire(questions=[_likert("a")], scales=[four_point])


def test_compound_conditions() -> None:
    qn = _minimal_questionnaire(
        questions=[
            _likert("a"),
            _likert("b"),
            _likert("c", show_if={"op": "all", "conditions": [
                {"op": "scored", "question": "a"},
                {"op": "any", "conditions": [
                    {"op": "in", "question": "b", "values": ["uenig", "meget_uenig"]},
                    {"op": "answered", "question": "a"},
                ]},
            ]}),
        ]
    )
    c = qn.question("c")
    assert is_visible(qn, c, {"a": "enig"})
    assert not is_visible(qn, c, {"a": "ved_ikke"})  # answered, but not with a score
    assert not is_visible(qn, c, {})


# --- modules and local supplements ----------------------------------------------------------


def test_digital_tools_module(digital) -> None:
    assert digital.id == "digital_tools" and digital.version == 1
    ids = [q.id for t in digital.themes for q in t.questions]
    assert ids == ["dt1", "dt2", "dt3", "dt4", "dt5", "dt6", "dt7"]
    assert "Jobnet" in digital.themes[0].questions[0].text.da


def test_effective_questionnaire_appends_modules_then_supplement(core: Questionnaire, digital) -> None:
    supplement = _supplement()
    effective = effective_questionnaire(core, supplement, modules=[digital])
    ids = [q.id for q in effective.questions]
    assert ids[:15] == [q.id for q in core.questions]
    assert ids[15:22] == [f"dt{n}" for n in range(1, 8)]
    assert ids[22:] == ["k751_tolk", "k751_tolk_uddyb"]
    assert effective.version_key == "kl_core@1+digital_tools@1+lokal_751@2"
    assert effective.themes[-1].id == "lokal_751"
    assert effective.themes[-1].title.da == "Spørgsmål fra din kommune"
    # The core is untouched: same questions, same wording, same scales.
    for question in core.questions:
        assert effective.question(question.id) == question
    assert effective.scale("enighed") == core.scale("enighed")
    assert effective.fingerprint != core.fingerprint


def test_digital_tools_follow_up_questions_depend_on_use(core: Questionnaire, digital) -> None:
    effective = effective_questionnaire(core, modules=[digital])
    dt2 = effective.question("dt2")
    assert is_visible(effective, dt2, {"dt1": "ja"})
    assert not is_visible(effective, dt2, {"dt1": "nej"})
    assert not is_visible(effective, dt2, {})
    assert effective.version_key == "kl_core@1+digital_tools@1"


def test_without_extras_the_effective_questionnaire_equals_the_core(core: Questionnaire) -> None:
    effective = effective_questionnaire(core, None)
    assert effective == core
    assert effective.version_key == core.version_key


def test_supplement_ids_must_be_namespaced_by_kommunekode() -> None:
    with pytest.raises(ValidationError, match="must start with 'k751_'"):
        _supplement(questions=[{"id": "q16", "kind": "free_text", "text": {"da": "x", "en": "x"}}])
    with pytest.raises(ValidationError):
        _supplement(kommunekode="Aarhus")


def test_supplement_cannot_redefine_a_scale_or_reuse_an_id(core: Questionnaire) -> None:
    clashing_scale = _supplement(
        scales=[{"id": "enighed", "options": [
            {"value": "ja", "label": {"da": "Ja", "en": "Yes"}},
            {"value": "nej", "label": {"da": "Nej", "en": "No"}},
        ]}],
        questions=[{"id": "k751_a", "kind": "single_choice", "scale": "enighed", "text": {"da": "x", "en": "x"}}],
    )
    with pytest.raises(QuestionnaireError, match="redefines scale 'enighed'"):
        effective_questionnaire(core, clashing_scale)

    digital = load_module("digital_tools_v1")
    with pytest.raises(QuestionnaireError, match="reuses question ids"):
        effective_questionnaire(core, modules=[digital, digital])


def test_supplement_may_use_core_scales_and_refer_to_core_answers(core: Questionnaire) -> None:
    supplement = _supplement(
        scales=[],
        questions=[
            {"id": "k751_a", "kind": "likert5", "scale": "enighed", "required": True,
             "show_if": {"op": "scored", "question": "q13"},
             "text": {"da": "Jeg vil anbefale jobcentret til andre.", "en": "I would recommend the job centre."}},
        ],
    )
    effective = effective_questionnaire(core, supplement)
    assert is_visible(effective, effective.question("k751_a"), {"q13": "tilfreds"})
    assert not is_visible(effective, effective.question("k751_a"), {"q13": "ved_ikke"})


def test_supplement_referring_to_a_missing_question_is_refused(core: Questionnaire) -> None:
    supplement = _supplement(
        scales=[],
        questions=[{"id": "k751_a", "kind": "free_text", "text": {"da": "x", "en": "x"},
                    "show_if": {"op": "in", "question": "dt1", "values": ["ja"]}}],
    )
    with pytest.raises(QuestionnaireError, match="not an earlier question"):
        effective_questionnaire(core, supplement)  # dt1 exists only when the module is on


def test_effective_questionnaire_is_not_stacked(core: Questionnaire) -> None:
    once = effective_questionnaire(core, _supplement())
    with pytest.raises(QuestionnaireError, match="bare core"):
        effective_questionnaire(once, None)


def test_supplement_loads_from_json_data() -> None:
    raw = _supplement().model_dump_json()
    assert LocalSupplement.model_validate_json(raw) == _supplement()


def test_localized_text_requires_both_languages() -> None:
    with pytest.raises(ValidationError):
        LocalizedText(da="Kun dansk", en="")
    with pytest.raises(ValidationError):
        Question.model_validate({"id": "a", "kind": "free_text", "text": {"da": "x"}})
