"""The scheduling rule (services/dispatch/domain/schedule.py): due times from the round's
definition, the sending window in Danish local time, the end of fieldwork. Properties over
generated schedules, windows and instants (daylight-saving changes included)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.dispatch.domain.schedule import (
    ENDED_PHASES,
    LOCAL,
    SENDING_PHASES,
    Schedule,
    Window,
    due_time,
    fieldwork_over,
    may_send,
    open_keys,
    round_key,
    round_sending,
    sendable,
    shown_status,
    step_date,
)
from shared.events import ROUND_PHASES

instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC))
times = st.times()
windows = st.builds(Window, times, times)
phases = st.sampled_from(ROUND_PHASES)
steps = st.sampled_from(("invitation", "reminder_1", "reminder_2"))
channels = st.sampled_from(("letter", "sms"))
intervals = st.floats(min_value=0.001, max_value=30)


@st.composite
def schedules(draw) -> Schedule:
    invitation = draw(st.none() | instants)
    reminders = tuple(draw(st.lists(instants, max_size=2))) if invitation else ()
    return Schedule(phase=draw(phases), invitation_at=invitation, reminders_at=reminders,
                    fieldwork_ends_at=draw(st.none() | instants), window=draw(windows))


# --- the window ---------------------------------------------------------------------------------


@settings(max_examples=400)
@given(window=windows, at=instants)
def test_the_next_opening_is_open_not_earlier_and_nothing_open_comes_before_it(window, at):
    opening = window.next_opening(at)
    assert opening >= at and window.is_open(opening)
    if opening > at:
        # Nothing in between is open: probe every minute and the instant just before.
        probe = at
        while probe < opening:
            assert not window.is_open(probe), (probe, opening)
            probe += timedelta(minutes=1)
        assert not window.is_open(opening - timedelta(microseconds=1))


def test_the_window_is_danish_local_time_across_summer_and_winter_time():
    window = Window(time(8), time(20))
    summer = datetime(2026, 7, 1, 5, 59, tzinfo=UTC)  # 07:59 in Copenhagen (UTC+2)
    winter = datetime(2026, 12, 1, 6, 59, tzinfo=UTC)  # 07:59 in Copenhagen (UTC+1)
    assert not window.is_open(summer) and window.next_opening(summer) == datetime(2026, 7, 1, 6, tzinfo=UTC)
    assert not window.is_open(winter) and window.next_opening(winter) == datetime(2026, 12, 1, 7, tzinfo=UTC)
    evening = datetime(2026, 12, 1, 19, 1, tzinfo=UTC)  # 20:01 local: tomorrow at 08:00
    assert window.next_opening(evening) == datetime(2026, 12, 2, 7, tzinfo=UTC)
    across_midnight = Window(time(22), time(2))
    assert across_midnight.is_open(datetime(2026, 12, 1, 23, 30, tzinfo=UTC))  # 00:30 local
    assert not across_midnight.is_open(datetime(2026, 12, 1, 12, tzinfo=UTC))


def test_a_start_inside_the_spring_gap_opens_the_next_day():
    window = Window(time(2, 30), time(2, 45))  # 02:30 does not exist in Copenhagen on 29 March 2026
    at = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    opening = window.next_opening(at)
    assert opening.astimezone(LOCAL).date().isoformat() == "2026-03-30" and window.is_open(opening)


# --- due times ------------------------------------------------------------------------------------


@given(schedule=schedules(), step=steps, channel=channels, interval=intervals)
def test_only_a_scheduled_round_in_a_sending_phase_has_due_times(schedule, step, channel, interval):
    due = due_time(schedule, step, channel, interval)
    assert (due is None) == (schedule.phase not in SENDING_PHASES or schedule.invitation_at is None)
    assert due_time(None, step, channel, interval) is None
    if due is not None:
        assert due >= step_date(schedule, step, interval) and schedule.window.is_open(due)


@given(invitation=instants, interval=intervals, window=windows)
def test_without_reminder_dates_reminders_follow_the_interval(invitation, interval, window):
    schedule = Schedule("in_fieldwork", invitation_at=invitation, window=window)
    assert step_date(schedule, "invitation", None) == invitation
    assert step_date(schedule, "reminder_1", interval) == invitation + timedelta(days=interval)
    assert step_date(schedule, "reminder_2", interval) == invitation + timedelta(days=2 * interval)


@given(invitation=instants, dates=st.lists(instants, min_size=1, max_size=2), interval=intervals)
def test_the_rounds_reminder_dates_win_over_every_arms_interval(invitation, dates, interval):
    schedule = Schedule("fieldwork_scheduled", invitation_at=invitation, reminders_at=tuple(dates))
    assert step_date(schedule, "reminder_1", interval) == dates[0]
    expected_2 = dates[1] if len(dates) == 2 else dates[0] + timedelta(days=interval)
    assert step_date(schedule, "reminder_2", interval) == expected_2
    assert step_date(schedule, "reminder_1", interval) == step_date(schedule, "reminder_1", interval * 2)


# --- may it go now ---------------------------------------------------------------------------------


@given(schedule=schedules(), step=steps, channel=channels, interval=intervals, now=instants)
def test_sendable_means_due_in_a_sending_phase_inside_the_window_before_the_end(schedule, step, channel, interval, now):
    ok = sendable(schedule, step, channel, interval, now)
    if ok:
        assert schedule.phase in SENDING_PHASES
        assert schedule.window.is_open(now)
        assert schedule.fieldwork_ends_at is None or now < schedule.fieldwork_ends_at
        assert due_time(schedule, step, channel, interval) <= now
    if schedule.phase in ENDED_PHASES or (schedule.fieldwork_ends_at and now >= schedule.fieldwork_ends_at):
        assert not ok and fieldwork_over(schedule, now) and not may_send(schedule, channel, now)
        assert round_sending(schedule, now) == "ended"
    assert not sendable(None, step, channel, interval, now)


@given(schedule=schedules(), now=instants)
def test_the_claims_open_keys_are_exactly_the_pairs_that_may_send(schedule, now):
    keys = open_keys({"r1": schedule}, ("letter", "sms"), now)
    assert keys == [round_key("r1", c) for c in ("letter", "sms") if may_send(schedule, c, now)]
    state = round_sending(schedule, now)
    if keys:
        assert state in ("sending", "scheduled")


def test_the_operators_view_of_a_step_and_a_round():
    assert shown_status("planned", None) == "waiting_for_schedule"
    assert shown_status("planned", datetime.now(UTC)) == "planned"
    assert shown_status("cancelled", None) == "cancelled"
    assert round_sending(None, datetime.now(UTC)) == "waiting_for_definition"
    now = datetime(2026, 9, 1, 10, tzinfo=UTC)
    assert round_sending(Schedule("sample_drawn", invitation_at=now), now) == "waiting_for_schedule"
    assert round_sending(Schedule("fieldwork_scheduled"), now) == "waiting_for_schedule"
    assert round_sending(Schedule("fieldwork_scheduled", invitation_at=now + timedelta(hours=1)), now) == "scheduled"
    assert round_sending(Schedule("in_fieldwork", invitation_at=now), now) == "sending"
    assert round_sending(Schedule("in_fieldwork", invitation_at=now - timedelta(days=1)), now + timedelta(hours=10)) == "outside_window"
    assert round_sending(Schedule("in_fieldwork", invitation_at=now, fieldwork_ends_at=now), now) == "ended"
