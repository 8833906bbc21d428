"""A round's lifecycle: its phases, the transitions between them, their guards, and which parts of
the definition may still change in each phase. Pure rules (no I/O, the clock passed in): the
one home of these rules; ``services.ingest.rounds`` applies them and publishes the result
(round.defined), and docs/rounds.md explains them.

    planned ─first delivery─▶ collecting_extracts ─draw─▶ sample_drawn ─schedule─▶ fieldwork_scheduled
    fieldwork_scheduled ─invitation_at passes─▶ in_fieldwork ─fieldwork_ends_at passes / end─▶ fieldwork_ended
    any phase before closed ─close─▶ closed ─every service purged─▶ purged

Closing a round whose fieldwork has not ended ends it too (nothing is sent and no answer is taken
after a close): a round can be abandoned at any point before it is purged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Literal

from shared.events import ROUND_PHASES, SURVEY_LANGUAGES, TranslationStatus

TRANSLATION_STATUSES: tuple[str, ...] = TranslationStatus.__args__

Phase = Literal[
    "planned",
    "collecting_extracts",
    "sample_drawn",
    "fieldwork_scheduled",
    "in_fieldwork",
    "fieldwork_ended",
    "closed",
    "purged",
]
PHASES: tuple[Phase, ...] = ROUND_PHASES  # type: ignore[assignment]

Action = Literal["first_delivery", "sample_drawn", "schedule", "start_fieldwork", "end_fieldwork", "close", "purge"]

# Which phase each action leads to, and from which phases it may be taken.
TRANSITIONS: dict[Action, tuple[frozenset[Phase], Phase]] = {
    "first_delivery": (frozenset({"planned"}), "collecting_extracts"),
    # A draw needs a frame, and a frame needs deliveries; a replayed sample.drawn finds the round
    # past collecting_extracts and changes nothing.
    "sample_drawn": (frozenset({"collecting_extracts"}), "sample_drawn"),
    # Scheduling again before the invitation moves the dates (a reschedule).
    "schedule": (frozenset({"sample_drawn", "fieldwork_scheduled"}), "fieldwork_scheduled"),
    "start_fieldwork": (frozenset({"fieldwork_scheduled"}), "in_fieldwork"),
    "end_fieldwork": (frozenset({"fieldwork_scheduled", "in_fieldwork"}), "fieldwork_ended"),
    "close": (
        frozenset({"planned", "collecting_extracts", "sample_drawn", "fieldwork_scheduled", "in_fieldwork", "fieldwork_ended"}),
        "closed",
    ),
    "purge": (frozenset({"closed"}), "purged"),
}

# Deliveries are taken while the frame is being collected; after the draw a re-delivery would
# change a frame the sample was drawn from (its weights, its letters).
DELIVERY_PHASES: frozenset[Phase] = frozenset({"planned", "collecting_extracts"})
# Dispatch sends (from invitation_at on) in these phases only.
SENDING_PHASES: frozenset[Phase] = frozenset({"fieldwork_scheduled", "in_fieldwork"})
# "Now or in the future": an invitation_at this little in the past still counts as now (the
# operator's typing, the request's way here).
NOW_TOLERANCE = timedelta(minutes=5)
MAX_REMINDERS = 2
KOMMUNEKODE = re.compile(r"^\d{3}$")


class RoundRuleError(ValueError):
    """A definition or an action breaks a rule; ``problems`` says every one, in words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class TransitionRefused(RoundRuleError):
    """The action is not allowed in the round's phase (or its guard does not hold)."""


class FieldLocked(RoundRuleError):
    """A field that can no longer change in the round's phase."""


@dataclass(frozen=True)
class SendingWindow:
    start: time = time(8, 0)
    end: time = time(20, 0)


@dataclass(frozen=True)
class RoundPlan:
    """A round's definition as the rules see it (times are aware UTC datetimes)."""

    round_id: str
    name: str
    reference_date: date
    maalgruppe_mapping_version: str
    retention_days: int
    phase: Phase = "planned"
    questionnaire_version: str | None = None
    kommuner: tuple[str, ...] = ()
    delivery_deadline: datetime | None = None
    invitation_at: datetime | None = None
    reminders_at: tuple[datetime, ...] = ()
    fieldwork_ends_at: datetime | None = None
    sending_window: SendingWindow = field(default_factory=SendingWindow)
    languages: tuple[str, ...] = ()  # the languages offered (SURVEY_LANGUAGES); empty: every one
    translation_status: str = "draft"  # the review status a translation needs: draft | reviewed

    def participates(self, kommunekode: str) -> bool:
        return not self.kommuner or kommunekode in self.kommuner


EDITABLE_FIELDS: tuple[str, ...] = (
    "name",
    "reference_date",
    "maalgruppe_mapping_version",
    "questionnaire_version",
    "kommuner",
    "delivery_deadline",
    "invitation_at",
    "reminders_at",
    "fieldwork_ends_at",
    "sending_window",
    "retention_days",
    "languages",
    "translation_status",
)

# The last phase in which each field may change, and why not after.
_EDITABLE_UNTIL: dict[str, tuple[Phase, str]] = {
    "name": ("closed", "a purged round is gone"),
    "reference_date": ("planned", "deliveries were classified at the reference date"),
    "maalgruppe_mapping_version": ("planned", "deliveries were classified with the mapping"),
    "kommuner": ("collecting_extracts", "the sample has been drawn from the participating municipalities"),
    "delivery_deadline": ("collecting_extracts", "the sample has been drawn"),
    "questionnaire_version": ("fieldwork_scheduled", "citizens may have opened the questionnaire"),
    "languages": ("fieldwork_scheduled", "the invitations list the languages the round offers"),
    "translation_status": ("fieldwork_scheduled", "the invitations list the languages the round offers"),
    "invitation_at": ("fieldwork_scheduled", "the invitations have gone out"),
    "reminders_at": ("in_fieldwork", "fieldwork has ended"),
    "fieldwork_ends_at": ("in_fieldwork", "fieldwork has ended"),
    "sending_window": ("in_fieldwork", "fieldwork has ended"),
    "retention_days": ("fieldwork_ended", "the round is closed: its retention clock runs from the close"),
}


def phase_index(phase: Phase) -> int:
    return PHASES.index(phase)


def editable_in(field_name: str, phase: Phase) -> bool:
    until, _ = _EDITABLE_UNTIL[field_name]
    return phase_index(phase) <= phase_index(until)


def validate(plan: RoundPlan) -> list[str]:
    """What is inconsistent in a definition, in words (empty: nothing)."""
    problems: list[str] = []
    if not plan.name.strip():
        problems.append("name: must not be empty")
    if plan.retention_days < 1:
        problems.append("retention_days: at least 1")
    bad = [k for k in plan.kommuner if not KOMMUNEKODE.match(k)]
    if bad:
        problems.append(f"kommuner: not kommunekoder (3 digits): {', '.join(bad)}")
    if len(set(plan.kommuner)) != len(plan.kommuner):
        problems.append("kommuner: a municipality is listed twice")
    if len(plan.reminders_at) > MAX_REMINDERS:
        problems.append(f"reminders_at: at most {MAX_REMINDERS} reminders")
    if any(b <= a for a, b in zip(plan.reminders_at, plan.reminders_at[1:])):
        problems.append("reminders_at: each reminder must come after the one before")
    if plan.reminders_at and plan.invitation_at is None:
        problems.append("reminders_at: reminders need an invitation_at")
    if plan.invitation_at is not None:
        early = [r for r in plan.reminders_at if r <= plan.invitation_at]
        if early:
            problems.append(f"reminders_at: {_at(early[0])} is not after invitation_at {_at(plan.invitation_at)}")
        if plan.fieldwork_ends_at is not None and plan.fieldwork_ends_at <= plan.invitation_at:
            problems.append(
                f"fieldwork_ends_at: {_at(plan.fieldwork_ends_at)} is not after invitation_at {_at(plan.invitation_at)}"
            )
        if plan.delivery_deadline is not None and plan.delivery_deadline > plan.invitation_at:
            problems.append(
                f"delivery_deadline: {_at(plan.delivery_deadline)} is after invitation_at {_at(plan.invitation_at)}"
            )
    if plan.fieldwork_ends_at is not None:
        late = [r for r in plan.reminders_at if r >= plan.fieldwork_ends_at]
        if late:
            problems.append(f"reminders_at: {_at(late[0])} is not before fieldwork_ends_at {_at(plan.fieldwork_ends_at)}")
    if plan.sending_window.end <= plan.sending_window.start:
        problems.append("sending_window: end must be after start (a window within one day)")
    unknown = [code for code in plan.languages if code not in SURVEY_LANGUAGES]
    if unknown:
        problems.append(f"languages: {', '.join(repr(code) for code in unknown)} not a language the survey has "
                        f"(one of {', '.join(SURVEY_LANGUAGES)})")
    if len(set(plan.languages)) != len(plan.languages):
        problems.append("languages: a language is listed twice")
    if plan.translation_status not in TRANSLATION_STATUSES:
        problems.append(f"translation_status: {plan.translation_status!r} is not one of {', '.join(TRANSLATION_STATUSES)}")
    return problems


def edit(plan: RoundPlan, changes: dict, now: datetime) -> RoundPlan:
    """The plan with ``changes`` (field -> value) applied, if the phase allows every one of them
    and the result is consistent. Raises FieldLocked (409) or RoundRuleError (422)."""
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise RoundRuleError([f"{name}: not a field of a round that can be edited" for name in unknown])
    changed = {name: value for name, value in changes.items() if getattr(plan, name) != value}
    locked = []
    for name in changed:
        if not editable_in(name, plan.phase):
            locked.append(f"{name} can no longer change: the round is {plan.phase} ({_EDITABLE_UNTIL[name][1]})")
    locked.extend(_time_locks(plan, changed, now))
    if locked:
        raise FieldLocked(locked)
    updated = replace(plan, **changed)
    problems = validate(updated)
    if plan.phase in SENDING_PHASES:
        problems.extend(schedule_problems(updated, now, rescheduling=True))
    if problems:
        raise RoundRuleError(sorted(set(problems), key=problems.index))
    return updated


def _time_locks(plan: RoundPlan, changed: dict, now: datetime) -> list[str]:
    """Once scheduled, a time that has passed has happened: it cannot be moved, nor can a time
    be moved into the past."""
    if plan.phase not in SENDING_PHASES:
        return []
    locked = []
    if "invitation_at" in changed and plan.invitation_at is not None and plan.invitation_at <= now:
        locked.append(f"invitation_at can no longer change: the invitations went out at {_at(plan.invitation_at)}")
    if "reminders_at" in changed:
        old, new = plan.reminders_at, changed["reminders_at"]
        for i, at in enumerate(old):
            if at <= now and (i >= len(new) or new[i] != at):
                locked.append(f"reminders_at: reminder {i + 1} went out at {_at(at)} and can no longer change")
    if "fieldwork_ends_at" in changed and plan.fieldwork_ends_at is not None and plan.fieldwork_ends_at <= now:
        locked.append(f"fieldwork_ends_at can no longer change: fieldwork ended at {_at(plan.fieldwork_ends_at)}")
    return locked


def schedule_problems(plan: RoundPlan, now: datetime, *, rescheduling: bool = False) -> list[str]:
    """What keeps the send dates from being confirmed: an invitation now or later, an end of
    fieldwork, reminders between them (plus ``validate``'s rules)."""
    problems: list[str] = []
    if plan.invitation_at is None:
        problems.append("invitation_at: set the invitation date and time before scheduling")
    elif plan.invitation_at < now - NOW_TOLERANCE and not (rescheduling and plan.phase == "in_fieldwork"):
        problems.append(f"invitation_at: {_at(plan.invitation_at)} has passed; choose now or a later time")
    if plan.fieldwork_ends_at is None:
        problems.append("fieldwork_ends_at: set the end of fieldwork before scheduling")
    elif plan.fieldwork_ends_at <= now:
        problems.append(f"fieldwork_ends_at: {_at(plan.fieldwork_ends_at)} has passed")
    if not rescheduling:
        problems.extend(validate(plan))
    return problems


def transition(plan: RoundPlan, action: Action, now: datetime) -> RoundPlan:
    """The plan after ``action``; raises TransitionRefused when the phase or the guard forbids it."""
    sources, target = TRANSITIONS[action]
    if plan.phase not in sources:
        allowed = ", ".join(p for p in PHASES if p in sources)
        raise TransitionRefused([f"round {plan.round_id} is {plan.phase}; {action.replace('_', ' ')} needs it to be {allowed}"])
    if action == "schedule":
        if problems := schedule_problems(plan, now):
            raise TransitionRefused(problems)
    if action == "start_fieldwork" and (plan.invitation_at is None or plan.invitation_at > now):
        raise TransitionRefused([f"round {plan.round_id}: invitation_at has not passed"])
    updated = replace(plan, phase=target)
    if action in ("end_fieldwork", "close") and plan.phase in SENDING_PHASES:
        # Fieldwork ends now (an early end, or a close): the definition says so.
        ends = now if plan.fieldwork_ends_at is None or plan.fieldwork_ends_at > now else plan.fieldwork_ends_at
        reminders = tuple(r for r in plan.reminders_at if r < ends)
        invitation = plan.invitation_at if plan.invitation_at is None or plan.invitation_at < ends else None
        updated = replace(updated, fieldwork_ends_at=ends, reminders_at=reminders if invitation else (), invitation_at=invitation)
    return updated


def due_action(plan: RoundPlan, now: datetime) -> Action | None:
    """The transition a passing date makes due (the phase worker takes it), if any."""
    if plan.phase in SENDING_PHASES and plan.fieldwork_ends_at is not None and plan.fieldwork_ends_at <= now:
        return "end_fieldwork"
    if plan.phase == "fieldwork_scheduled" and plan.invitation_at is not None and plan.invitation_at <= now:
        return "start_fieldwork"
    return None


def delivery_refusal(plan: RoundPlan, kommunekode: str) -> str | None:
    """Why a delivery for this municipality is refused, or None when it is taken."""
    if plan.phase not in DELIVERY_PHASES:
        return (
            f"round {plan.round_id} is {plan.phase} and takes no more deliveries: the sample was drawn from the "
            "deliveries it had (KL's operator can close this round and define a new one)"
            if plan.phase not in ("closed", "purged")
            else f"round {plan.round_id} is {plan.phase} and takes no more deliveries"
        )
    if not plan.participates(kommunekode):
        return f"municipality {kommunekode} does not take part in round {plan.round_id} (its municipalities: {', '.join(plan.kommuner)})"
    return None


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
