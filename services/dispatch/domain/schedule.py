"""When a planned message may go out (pure): the one rule the sender's claim, the status and the
rescheduling all use.

The draw plans; the round's definition (round.defined, owned by ingest) schedules. A step is
sendable when all of these hold:

* the round is in a sending phase (``fieldwork_scheduled`` or ``in_fieldwork``) and has an
  ``invitation_at``: otherwise its steps wait ("waiting_for_schedule"), however long;
* its due time has come. The invitation is due at ``invitation_at``; reminder *k* at
  ``reminders_at[k-1]`` when the round sets it, otherwise ``interval`` days after the step before
  it (the plan's, or the citizen's experiment arm's, ``reminder_interval_days``). So a round with
  reminder dates sends every arm's reminders on those dates (arms still choose how many reminders
  and on which channels); an arm's own interval counts only where the round sets no date. The due
  time is then moved to the next opening of the sending window;
* fieldwork is not over (phase ``fieldwork_ended``/``closed``/``purged``, or ``fieldwork_ends_at``
  has passed): after that nothing is sent and every step not sent is cancelled;
* the sending window (Danish local time, Europe/Copenhagen) is open now. Both channels keep to it:
  SMS because of the issue's "no SMS at night", and Digital Post letters too, because a letter is
  announced on the citizen's phone (the Digital Post app's notification, or an SMS/e-mail
  notice) the moment it arrives, so a letter at 03:00 is a notification at 03:00. An operator who
  wants letters at any hour widens the window. ``WINDOWED_CHANNELS`` is the one place to change it.

The due time (window included) is stored on each step as a cache of ``due_time`` and rewritten,
set-based, whenever a revision changes it, so the claim can walk the ``(status, due_at)`` index in
due order and read no step that is not due. What can change between two revisions (the window
closing, the end date passing) is checked at claim time by ``may_send`` over the rounds'
definitions, which the claim receives as the list of (round, channel) open now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.dispatch.domain.lifecycle import StepStatus
from services.dispatch.domain.plan import STEPS
from shared.events import FIELDWORK_OVER_PHASES
from shared.events import fieldwork_over as round_fieldwork_over

LOCAL = ZoneInfo("Europe/Copenhagen")
SENDING_PHASES = frozenset({"fieldwork_scheduled", "in_fieldwork"})
ENDED_PHASES = frozenset(FIELDWORK_OVER_PHASES)
WINDOWED_CHANNELS = frozenset({"letter", "sms"})

RoundSending = Literal["waiting_for_definition", "waiting_for_schedule", "scheduled", "sending", "outside_window", "ended"]


@dataclass(frozen=True, slots=True)
class Window:
    """Local (Europe/Copenhagen) opening hours; ``start > end`` is a window across midnight."""

    start: time = time(8, 0)
    end: time = time(20, 0)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(LOCAL).time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= local <= self.end
        return local >= self.start or local <= self.end

    def next_opening(self, at: datetime) -> datetime:
        """The earliest instant at or after ``at`` when the window is open."""
        if self.is_open(at):
            return at
        day = at.astimezone(LOCAL).date()
        for offset in range(0, 4):  # a start time inside a DST gap does not exist that day: try the next
            candidate = _local(day + timedelta(days=offset), self.start)
            if candidate >= at and self.is_open(candidate):
                return candidate
        raise ValueError("no opening of the sending window within four days")  # unreachable for real windows


def _local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=LOCAL).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Schedule:
    """What dispatch sends by, from a round's definition (round.defined)."""

    phase: str
    invitation_at: datetime | None = None
    reminders_at: tuple[datetime, ...] = ()
    fieldwork_ends_at: datetime | None = None
    window: Window = Window()

    @classmethod
    def from_definition(cls, definition) -> Schedule:
        """From a RoundDefined event (or anything with its attributes)."""
        window = definition.sending_window
        return cls(phase=definition.phase, invitation_at=definition.invitation_at,
                   reminders_at=tuple(definition.reminders_at), fieldwork_ends_at=definition.fieldwork_ends_at,
                   window=Window(window.start, window.end))

    @property
    def times_steps(self) -> bool:
        """True when the round's steps have due times (otherwise they wait for a schedule)."""
        return self.phase in SENDING_PHASES and self.invitation_at is not None

    def due_basis(self) -> tuple:
        """What the steps' due times depend on: a revision that keeps it moves no step."""
        return (self.times_steps, self.invitation_at, self.reminders_at, self.window)


def step_date(schedule: Schedule, step: str, interval_days: float | None) -> datetime | None:
    """The step's date before the window: see the module's docstring."""
    if schedule.invitation_at is None:
        return None
    k = STEPS.index(step)
    if k <= len(schedule.reminders_at):
        return schedule.invitation_at if k == 0 else schedule.reminders_at[k - 1]
    # The last step with a date of its own, then the interval per step after it.
    anchor = len(schedule.reminders_at)
    at = schedule.invitation_at if anchor == 0 else schedule.reminders_at[anchor - 1]
    return at + timedelta(days=(interval_days or 0) * (k - anchor))


def due_time(schedule: Schedule | None, step: str, channel: str, interval_days: float | None) -> datetime | None:
    """When the step may go out; None while the round is not scheduled (no definition, not in a
    sending phase, no invitation date)."""
    if schedule is None or not schedule.times_steps:
        return None
    at = step_date(schedule, step, interval_days)
    assert at is not None
    return schedule.window.next_opening(at) if channel in WINDOWED_CHANNELS else at


def fieldwork_over(schedule: Schedule | None, now: datetime) -> bool:
    return schedule is not None and round_fieldwork_over(schedule.phase, schedule.fieldwork_ends_at, now)


def may_send(schedule: Schedule | None, channel: str, now: datetime) -> bool:
    """Whether anything of the round may go out on the channel at ``now`` (due or not)."""
    if schedule is None or not schedule.times_steps or fieldwork_over(schedule, now):
        return False
    return channel not in WINDOWED_CHANNELS or schedule.window.is_open(now)


def sendable(schedule: Schedule | None, step: str, channel: str, interval_days: float | None, now: datetime) -> bool:
    """The rule in one place: the step's due time has come and the round may send on the channel
    now. The claim applies it as ``due_at <= now`` (the stored ``due_time``) and the (round,
    channel) pairs ``may_send`` allows, computed here."""
    due = due_time(schedule, step, channel, interval_days)
    return due is not None and due <= now and may_send(schedule, channel, now)


def retry_time(schedule: Schedule | None, channel: str, at: datetime) -> datetime:
    """A transient failure's next try: ``at``, moved into the window."""
    if schedule is not None and channel in WINDOWED_CHANNELS:
        return schedule.window.next_opening(at)
    return at


def round_sending(schedule: Schedule | None, now: datetime) -> RoundSending:
    """The round's state for the operator's status."""
    if schedule is None:
        return "waiting_for_definition"
    if fieldwork_over(schedule, now):
        return "ended"
    if not schedule.times_steps:
        return "waiting_for_schedule"
    assert schedule.invitation_at is not None
    if now < schedule.window.next_opening(schedule.invitation_at):
        return "scheduled"
    return "sending" if schedule.window.is_open(now) else "outside_window"


def open_keys(schedules: dict[str, Schedule], channels, now: datetime) -> list[str]:
    """``round_key(round, channel)`` of every pair that may send now: the claim's parameter."""
    return [round_key(round_id, channel) for round_id, schedule in schedules.items() for channel in channels
            if may_send(schedule, channel, now)]


def round_key(round_id: str, channel: str) -> str:
    # A unit separator: cannot occur in a round id (ROUND_PATTERN) nor in a channel name.
    return f"{round_id}\x1f{channel}"


def answer_deadline(schedule: Schedule | None, response_deadline_days: int):
    """The last day to answer, printed on letters: the last day of fieldwork when the round has
    an end, else ``response_deadline_days`` after the invitation date; None: count from the
    invitation's creation (a round without a schedule sends nothing anyway)."""
    if schedule is None:
        return None
    if schedule.fieldwork_ends_at is not None:
        return (schedule.fieldwork_ends_at - timedelta(microseconds=1)).astimezone(LOCAL).date()
    if schedule.invitation_at is not None:
        return (schedule.invitation_at + timedelta(days=response_deadline_days)).astimezone(LOCAL).date()
    return None


STEP_WAITING_FOR_SCHEDULE = "waiting_for_schedule"


def shown_status(status: str, due_at: datetime | None) -> str:
    """A step's status as the operator sees it: a planned step without a due time is waiting
    for the round's schedule."""
    return STEP_WAITING_FOR_SCHEDULE if status == StepStatus.PLANNED and due_at is None else status
