"""The round's lifecycle rules (services.ingest.domain.rounds), as properties over arbitrary plans,
action sequences and edits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from services.ingest.domain import rounds as r

NOW = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
ACTIONS: list[r.Action] = list(r.TRANSITIONS)

offsets = st.integers(min_value=-30 * 24, max_value=30 * 24).map(lambda h: NOW + timedelta(hours=h))
maybe = lambda s: st.none() | s  # noqa: E731


@st.composite
def plans(draw, phase=st.sampled_from(r.PHASES)) -> r.RoundPlan:
    invitation = draw(maybe(offsets))
    reminders = tuple(sorted(set(draw(st.lists(offsets, max_size=2)))))
    return r.RoundPlan(
        round_id="r-1",
        name=draw(st.sampled_from(["Runde", "Efterår 2026"])),
        reference_date=date(2026, 8, 1),
        maalgruppe_mapping_version="v2",
        retention_days=draw(st.integers(1, 400)),
        phase=draw(phase),
        kommuner=tuple(draw(st.sets(st.sampled_from(["101", "147", "751"])))),
        delivery_deadline=draw(maybe(offsets)),
        invitation_at=invitation,
        reminders_at=reminders if invitation else (),
        fieldwork_ends_at=draw(maybe(offsets)),
    )


def consistent(plan: r.RoundPlan) -> bool:
    return not r.validate(plan)


@given(plans(phase=st.just("planned")), st.lists(st.sampled_from(ACTIONS), max_size=12), st.lists(offsets, min_size=12, max_size=12))
def test_the_phase_only_moves_forward_along_the_transitions(plan, actions, clocks):
    for action, now in zip(actions, clocks):
        sources, target = r.TRANSITIONS[action]
        try:
            after = r.transition(plan, action, now)
        except r.TransitionRefused as refused:
            assert plan.phase not in sources or action in ("schedule", "start_fieldwork"), refused
            continue
        assert plan.phase in sources and after.phase == target
        assert r.phase_index(after.phase) >= r.phase_index(plan.phase)
        if action == "schedule":
            assert after.invitation_at is not None and after.invitation_at >= now - r.NOW_TOLERANCE
            assert after.fieldwork_ends_at is not None and consistent(after)
        plan = after


@given(plans(), st.sampled_from(ACTIONS))
def test_nothing_leaves_purged_and_everything_before_closed_can_be_closed(plan, action):
    if plan.phase == "purged":
        with pytest.raises(r.TransitionRefused):
            r.transition(plan, action, NOW)
    if r.phase_index(plan.phase) < r.phase_index("closed"):
        assert r.transition(plan, "close", NOW).phase == "closed"


@given(plans(phase=st.sampled_from(sorted(r.SENDING_PHASES))), st.sampled_from(["end_fieldwork", "close"]), offsets)
def test_ending_or_closing_during_fieldwork_leaves_nothing_to_send_after_now(plan, action, now):
    after = r.transition(plan, action, now)
    assert after.fieldwork_ends_at is not None and after.fieldwork_ends_at <= now
    assert all(reminder < after.fieldwork_ends_at for reminder in after.reminders_at)
    assert after.invitation_at is None or after.invitation_at < after.fieldwork_ends_at


# A value for each field that differs from every plan the strategy makes and keeps it consistent.
FRESH = {
    "name": "Ny runde",
    "reference_date": date(2027, 1, 1),
    "maalgruppe_mapping_version": "v1",
    "questionnaire_version": "2027.1",
    "kommuner": ("860",),
    "delivery_deadline": None,
    "sending_window": r.SendingWindow(time(9), time(17)),
    "retention_days": 999,
}


@given(plans(), st.sampled_from(sorted(FRESH)))
def test_a_field_changes_exactly_in_the_phases_that_allow_it(plan, field_name):
    plan = replace(plan, invitation_at=None, reminders_at=(), delivery_deadline=NOW, fieldwork_ends_at=None)
    if plan.phase in r.SENDING_PHASES:  # a scheduled round has its dates
        plan = replace(plan, invitation_at=NOW + timedelta(days=1), fieldwork_ends_at=NOW + timedelta(days=20))
    value = FRESH[field_name]
    if r.editable_in(field_name, plan.phase):
        assert getattr(r.edit(plan, {field_name: value}, NOW), field_name) == value
    else:
        with pytest.raises(r.FieldLocked, match=field_name):
            r.edit(plan, {field_name: value}, NOW)


def test_the_editable_phases_are_the_documented_ones():
    assert [p for p in r.PHASES if r.editable_in("reference_date", p)] == ["planned"]
    assert [p for p in r.PHASES if r.editable_in("kommuner", p)] == ["planned", "collecting_extracts"]
    assert [p for p in r.PHASES if r.editable_in("invitation_at", p)] == [
        "planned", "collecting_extracts", "sample_drawn", "fieldwork_scheduled",
    ]
    assert not any(r.editable_in(f, "purged") for f in r.EDITABLE_FIELDS)


@given(plans(), st.dictionaries(st.sampled_from(["invitation_at", "fieldwork_ends_at", "delivery_deadline"]), maybe(offsets)), offsets)
@settings(max_examples=300)
def test_an_accepted_edit_is_always_consistent(plan, changes, now):
    try:
        after = r.edit(plan, changes, now)
    except r.RoundRuleError:
        return
    assert consistent(after)
    for name, value in changes.items():
        assert getattr(after, name) == value


@given(plans(), st.sampled_from(["101", "147", "751", "860"]))
def test_a_delivery_is_taken_only_while_collecting_and_from_a_participant(plan, kommunekode):
    refusal = r.delivery_refusal(plan, kommunekode)
    taken = plan.phase in ("planned", "collecting_extracts") and (not plan.kommuner or kommunekode in plan.kommuner)
    assert (refusal is None) == taken
    if refusal is not None:
        assert plan.round_id in refusal


@given(plans(phase=st.sampled_from(r.PHASES)), offsets)
def test_a_passing_date_moves_only_a_scheduled_round(plan, now):
    action = r.due_action(plan, now)
    if plan.phase not in r.SENDING_PHASES:
        assert action is None
    elif plan.fieldwork_ends_at is not None and plan.fieldwork_ends_at <= now:
        assert action == "end_fieldwork"
    elif plan.phase == "fieldwork_scheduled" and plan.invitation_at is not None and plan.invitation_at <= now:
        assert action == "start_fieldwork" and r.transition(plan, action, now).phase == "in_fieldwork"
    else:
        assert action is None


def test_schedule_names_every_missing_or_past_date():
    plan = r.RoundPlan("r-1", "R", date(2026, 8, 1), "v2", 90, phase="sample_drawn")
    with pytest.raises(r.TransitionRefused) as refused:
        r.transition(plan, "schedule", NOW)
    assert {p.split(":")[0] for p in refused.value.problems} == {"invitation_at", "fieldwork_ends_at"}
    past = replace(plan, invitation_at=NOW - timedelta(hours=1), fieldwork_ends_at=NOW + timedelta(days=9))
    with pytest.raises(r.TransitionRefused, match="has passed"):
        r.transition(past, "schedule", NOW)
    just_now = replace(past, invitation_at=NOW - timedelta(seconds=30))
    assert r.transition(just_now, "schedule", NOW).phase == "fieldwork_scheduled"


@given(
    st.lists(st.sampled_from(r.SURVEY_LANGUAGES) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=9), max_size=10),
    st.sampled_from([*r.TRANSLATION_STATUSES, "checked"]),
)
def test_a_round_names_each_of_the_survey_languages_at_most_once(languages, status):
    """A round's languages: only the survey's codes, each once, and a known review status; every
    unknown code is named in the problem."""
    plan = r.RoundPlan(round_id="r-1", name="Runde", reference_date=date(2026, 8, 1), maalgruppe_mapping_version="v2",
                       retention_days=90, languages=tuple(languages), translation_status=status)
    problems = [p for p in r.validate(plan) if p.startswith(("languages", "translation_status"))]
    unknown = [code for code in languages if code not in r.SURVEY_LANGUAGES]
    assert any(p.startswith("languages") and "not a language" in p for p in problems) == bool(unknown)
    for code in unknown:
        assert any(repr(code) in p for p in problems)
    assert ("languages: a language is listed twice" in problems) == (len(set(languages)) != len(languages))
    assert any(p.startswith("translation_status") for p in problems) == (status not in r.TRANSLATION_STATUSES)
