"""The rules of interviews by phone (domain/interviews.py): who may be called now, one
interviewer at a time, and which call-back times are taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.responses.domain.interviews import (
    CALL_BACK_HORIZON,
    DANISH_TIME,
    OUTCOMES,
    CallBackRefused,
    call_back_time,
    claimed_by_other,
    may_call,
)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


@given(st.sampled_from((None, *OUTCOMES)), st.none() | instants, instants)
def test_may_call_only_the_uncalled_and_call_backs_whose_time_has_come(outcome, call_back_at, now):
    allowed = may_call(outcome, call_back_at, now)
    if outcome is None:
        assert allowed
    elif outcome in ("refused", "completed"):
        assert not allowed  # refused and completed are final
    else:
        assert allowed == (call_back_at is not None and call_back_at <= now)


@given(st.none() | st.sampled_from(["anna", "bo"]), st.none() | instants, st.sampled_from(["anna", "bo"]), instants)
def test_a_claim_keeps_others_away_until_it_runs_out(claimed_by, claimed_until, me, now):
    other = claimed_by_other(claimed_by, claimed_until, me, now)
    assert other == (claimed_by not in (None, me) and claimed_until is not None and claimed_until > now)
    assert not claimed_by_other(me, claimed_until, me, now)  # never kept from one's own call


@given(st.integers(min_value=1, max_value=60 * 24 * 59))
def test_a_call_back_ahead_within_the_horizon_is_taken_in_danish_time(minutes):
    local = (NOW + timedelta(minutes=minutes)).astimezone(DANISH_TIME)
    typed = local.strftime("%Y-%m-%dT%H:%M")
    at = call_back_time(typed, NOW, None)
    assert at.tzinfo is not None and at.astimezone(DANISH_TIME).strftime("%Y-%m-%dT%H:%M") == typed
    assert NOW < at <= NOW + CALL_BACK_HORIZON


@given(st.integers(min_value=-60 * 24 * 30, max_value=0))
def test_a_call_back_now_or_in_the_past_is_refused(minutes):
    typed = (NOW + timedelta(minutes=minutes)).astimezone(DANISH_TIME).strftime("%Y-%m-%dT%H:%M")
    with pytest.raises(CallBackRefused, match="fremtiden"):
        call_back_time(typed, NOW, None)


def test_call_backs_after_the_end_of_fieldwork_beyond_the_horizon_or_unreadable_are_refused():
    with pytest.raises(CallBackRefused, match="afslutning"):
        call_back_time("2026-12-20T10:00", NOW, datetime(2026, 12, 15, tzinfo=UTC))
    with pytest.raises(CallBackRefused, match="højst"):
        call_back_time("2027-06-01T10:00", NOW, None)
    for typed in ("", "i morgen", "2026-13-01T10:00", "2026-12-08 10:00:00"):
        with pytest.raises(CallBackRefused, match="dato og klokkeslæt"):
            call_back_time(typed, NOW, None)
    # 02:30 on the last Sunday of March does not exist in Danish time.
    with pytest.raises(CallBackRefused, match="sommertid"):
        call_back_time("2027-03-28T02:30", datetime(2027, 3, 20, tzinfo=UTC), None)
    # Winter time: 14:30 in Copenhagen is 13:30 UTC.
    assert call_back_time("2026-12-08T14:30", NOW, None) == datetime(2026, 12, 8, 13, 30, tzinfo=UTC)
