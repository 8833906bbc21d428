"""Validation of answer sets against the exact questionnaire version given to the citizen."""

from __future__ import annotations

import pytest

from services.responses.domain.answers import (
    AnswerSubmission,
    QuestionnaireVersionMismatch,
    scrub_free_text,
    validate_answers,
    validate_submission,
)
from services.responses.domain.questionnaire import (
    LocalSupplement,
    Questionnaire,
    effective_questionnaire,
    load_module,
)


@pytest.fixture(scope="module")
def with_digital(core: Questionnaire) -> Questionnaire:
    return effective_questionnaire(core, modules=[load_module("digital_tools_v1")])


def complete_core_answers(**overrides: object) -> dict[str, object]:
    answers: dict[str, object] = {f"q{n}": "enig" for n in range(1, 13)}
    answers["q13"] = "tilfreds"
    answers["q14"] = "Jeg fik hjælp til at finde en praktik."
    answers["q15"] = "Færre skift af sagsbehandler."
    answers.update(overrides)
    return answers


# --- complete and valid ---------------------------------------------------------------------


def test_a_complete_valid_answer_set(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers())
    assert result.ok and result.complete
    assert result.errors == () and result.dropped == ()
    assert result.accepted == complete_core_answers()
    assert result.questionnaire_key == "kl_core@1"
    assert all(page.complete for page in result.pages)
    assert result.first_incomplete_page is None


def test_ved_ikke_is_a_valid_answer_and_free_text_is_optional(core: Questionnaire) -> None:
    answers = complete_core_answers(q1="ved_ikke", q13="ved_ikke")
    del answers["q14"], answers["q15"]
    result = validate_answers(core, answers)
    assert result.complete
    assert result.accepted["q1"] == "ved_ikke"


# --- errors per question --------------------------------------------------------------------


def test_unknown_question_ids_are_errors(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q99="enig", dt1="ja"))
    unknown = [e for e in result.errors if e.code == "unknown_question"]
    assert {e.question_id for e in unknown} == {"q99", "dt1"}  # dt1 only exists with the module
    assert all(e.theme_id is None for e in unknown)
    assert not result.ok


def test_values_outside_the_scale(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q1="Meget enig", q2="meget_tilfreds", q13="enig"))
    assert [(e.question_id, e.code) for e in result.errors] == [
        ("q1", "invalid_option"),
        ("q2", "invalid_option"),
        ("q13", "invalid_option"),
    ]
    error = result.errors_for("q1")[0]
    assert error.theme_id == "moedet_med_jobcentret"
    assert error.message.da == "Vælg en af svarmulighederne."
    assert error.message.en == "Choose one of the answer options."
    assert "q1" not in result.accepted


@pytest.mark.parametrize("value", [4.0, True, ["enig"], {"v": "enig"}])
def test_values_of_the_wrong_type(core: Questionnaire, value: object) -> None:
    result = validate_answers(core, complete_core_answers(q3=value))
    assert [(e.question_id, e.code) for e in result.errors] == [("q3", "invalid_type")]


def test_free_text_must_be_text(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q15=5))
    assert [(e.question_id, e.code) for e in result.errors] == [("q15", "invalid_type")]


def test_scores_are_accepted_and_stored_as_option_codes(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q1=5, q2=1, q13=4))
    assert result.complete
    assert (result.accepted["q1"], result.accepted["q2"], result.accepted["q13"]) == (
        "meget_enig", "meget_uenig", "tilfreds",
    )


@pytest.mark.parametrize("score", [0, 6, -1])
def test_scores_outside_the_scale(core: Questionnaire, score: int) -> None:
    result = validate_answers(core, complete_core_answers(q1=score))
    assert [(e.question_id, e.code) for e in result.errors] == [("q1", "invalid_option")]


def test_free_text_too_long(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q15="x" * 2345))
    [error] = result.errors
    assert (error.question_id, error.code) == ("q15", "too_long")
    assert error.params == {"max_length": 2000, "length": 2345}
    assert "højst være 2.000 tegn" in error.message.da and "2.345 tegn" in error.message.da
    assert "at most 2,000 characters" in error.message.en


def test_free_text_at_the_limit_is_accepted_and_is_counted_after_normalisation(core: Questionnaire) -> None:
    decomposed_ae = "a\u0308"  # "ä" typed as two code points counts as one character
    text = decomposed_ae * 2000
    result = validate_answers(core, complete_core_answers(q15=text))
    assert result.ok
    assert len(result.accepted["q15"]) == 2000


def test_free_text_is_normalised(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q15="  Bedre\r\nopfølgning\x00 \t"))
    assert result.accepted["q15"] == "Bedre\nopfølgning"


def test_blank_free_text_counts_as_not_answered(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q15="   \n "))
    assert result.complete
    assert "q15" not in result.accepted


def test_required_questions_in_a_final_submission(core: Questionnaire) -> None:
    answers = complete_core_answers()
    del answers["q4"], answers["q13"]
    result = validate_answers(core, answers)
    required = [e for e in result.errors if e.code == "required"]
    assert [e.question_id for e in required] == ["q4", "q13"]
    assert required[0].message.da == "Vælg et svar. Du kan også vælge »Ved ikke«."
    assert required[0].message.en == "Choose an answer. You can also choose “Don't know”."
    assert not result.complete


def test_errors_are_listed_in_questionnaire_order(core: Questionnaire) -> None:
    answers = complete_core_answers(q12="x", q2="y", zz="enig")
    del answers["q7"]
    result = validate_answers(core, answers)
    assert [e.question_id for e in result.errors] == ["q2", "q7", "q12", "zz"]


# --- hidden questions -----------------------------------------------------------------------


def test_answer_to_hidden_question_is_dropped_by_default(core: Questionnaire) -> None:
    answers = complete_core_answers()
    del answers["q13"]
    result = validate_answers(core, answers, partial=True)
    assert result.ok
    assert result.dropped == ("q14",)
    assert "q14" not in result.accepted


def test_answer_to_hidden_question_can_be_rejected(core: Questionnaire) -> None:
    answers = complete_core_answers()
    del answers["q13"]
    result = validate_answers(core, answers, partial=True, hidden="reject")
    assert [(e.question_id, e.code) for e in result.errors] == [("q14", "hidden_question")]
    assert result.dropped == ()


def test_q14_is_visible_after_ved_ikke(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q13="ved_ikke"))
    assert result.accepted["q14"] == "Jeg fik hjælp til at finde en praktik."


def test_invalid_answer_does_not_open_its_follow_up(core: Questionnaire) -> None:
    result = validate_answers(core, complete_core_answers(q13="super"), hidden="reject")
    assert {(e.question_id, e.code) for e in result.errors} == {
        ("q13", "invalid_option"),
        ("q14", "hidden_question"),
    }


def test_hidden_required_questions_are_not_missing(with_digital: Questionnaire) -> None:
    answers = complete_core_answers(dt1="nej", dt4="enig", dt5="sjaeldent")
    result = validate_answers(with_digital, answers)
    assert result.complete, result.errors
    page = next(p for p in result.pages if p.theme_id == "digitale_vaerktoejer")
    assert page.visible == ("dt1",)


def test_shown_required_follow_ups_are_missing(with_digital: Questionnaire) -> None:
    answers = complete_core_answers(dt1="ja", dt4="enig", dt5="sjaeldent")
    result = validate_answers(with_digital, answers)
    assert [(e.question_id, e.code) for e in result.errors] == [("dt2", "required"), ("dt3", "required")]


# --- partial answers (save and resume) ------------------------------------------------------


def test_partial_answers_report_missing_per_theme_page(core: Questionnaire) -> None:
    answers = {"q1": "enig", "q2": "meget_enig", "q3": "uenig", "q4": "enig"}
    result = validate_answers(core, answers, partial=True)
    assert result.ok and not result.complete
    assert result.errors == ()
    pages = {p.theme_id: p for p in result.pages}
    assert pages["moedet_med_jobcentret"].complete
    assert pages["maal_og_aktiviteter"].answered == ("q4",)
    assert pages["maal_og_aktiviteter"].missing_required == ("q5", "q6")
    assert pages["seneste_samtale"].missing_required == ("q7", "q8", "q9", "q10")
    assert pages["samlet_tilfredshed"].missing_required == ("q13",)
    assert pages["samlet_tilfredshed"].visible == ("q13", "q15")  # q14 waits for q13
    assert result.first_incomplete_page == "maal_og_aktiviteter"
    assert result.missing_required[:2] == ("q5", "q6")
    assert pages["maal_og_aktiviteter"].title.da == "Mål og aktiviteter i forløbet"


def test_partial_answers_still_report_invalid_values(core: Questionnaire) -> None:
    result = validate_answers(core, {"q1": "enig", "q2": "nope", "q15": "y" * 3000}, partial=True)
    assert [(e.question_id, e.code) for e in result.errors] == [("q2", "invalid_option"), ("q15", "too_long")]
    assert result.accepted == {"q1": "enig"}
    pages = {p.theme_id: p for p in result.pages}
    # A question with an error is listed as an error, not additionally as missing.
    assert pages["moedet_med_jobcentret"].errors == ("q2",)
    assert pages["moedet_med_jobcentret"].missing_required == ("q3",)


def test_none_clears_an_answer_when_resuming(core: Questionnaire) -> None:
    result = validate_answers(core, {"q1": None, "q2": "enig"}, partial=True)
    assert result.accepted == {"q2": "enig"}
    assert result.ok


def test_empty_partial_answer_set(core: Questionnaire) -> None:
    result = validate_answers(core, {}, partial=True)
    assert result.ok and not result.complete
    assert result.first_incomplete_page == "moedet_med_jobcentret"
    assert len(result.missing_required) == 13


# --- the exact version ----------------------------------------------------------------------


def test_submission_must_match_the_questionnaire_version(core: Questionnaire, with_digital: Questionnaire) -> None:
    submission = AnswerSubmission(questionnaire_key="kl_core@1", answers=complete_core_answers())
    assert validate_submission(core, submission).complete
    with pytest.raises(QuestionnaireVersionMismatch):
        validate_submission(with_digital, submission)


def test_local_supplement_answers(core: Questionnaire) -> None:
    supplement = LocalSupplement.model_validate(
        {
            "kommunekode": "101",
            "version": 1,
            "questions": [
                {"id": "k101_bolig", "kind": "likert5", "scale": "enighed", "required": True,
                 "text": {"da": "Jobcentret har hjulpet mig med min boligsituation.",
                          "en": "The job centre has helped me with my housing situation."}},
            ],
        }
    )
    qn = effective_questionnaire(core, supplement)
    submission = AnswerSubmission(
        questionnaire_key="kl_core@1+lokal_101@1",
        answers=complete_core_answers(k101_bolig="uenig"),
    )
    result = validate_submission(qn, submission)
    assert result.complete
    assert result.accepted["k101_bolig"] == "uenig"
    missing = validate_answers(qn, complete_core_answers())
    assert [(e.question_id, e.theme_id, e.code) for e in missing.errors] == [("k101_bolig", "lokal_101", "required")]


# --- scrubbing before the answers leave the service -----------------------------------------


def test_scrub_free_text_only_touches_free_text(core: Questionnaire) -> None:
    result = validate_answers(
        core,
        complete_core_answers(q14="Min sagsbehandler Mette Hansen ringede på 20 30 40 50.", q15="Intet."),
    )
    scrubbed = scrub_free_text(core, result.accepted)
    assert scrubbed["q14"] == "Min sagsbehandler [NAVN] ringede på [TELEFON]."
    assert scrubbed["q15"] == "Intet."
    assert scrubbed["q1"] == "enig"
    assert result.accepted["q14"].startswith("Min sagsbehandler Mette")  # the input is not mutated
