"""When a round may be drawn (services.sampling.domain.readiness)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, strategies as st

from services.sampling.domain.readiness import ALL_MUNICIPALITIES, draw_readiness

NOW = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
CODES = [f"{k:03d}" for k in range(101, 101 + ALL_MUNICIPALITIES)]
deadlines = st.none() | st.integers(-48, 48).map(lambda h: NOW + timedelta(hours=h))


@given(st.lists(st.sampled_from(CODES[:6]), unique=True), st.lists(st.sampled_from(CODES[:8])), deadlines)
def test_ready_when_every_participant_delivered_or_the_deadline_passed(kommuner, delivered, deadline):
    readiness = draw_readiness(kommuner, delivered, deadline, NOW)
    passed = deadline is not None and deadline <= NOW
    if kommuner:
        missing = sorted(set(kommuner) - set(delivered))
        assert list(readiness.missing) == missing
        assert readiness.ready == (not missing or passed)
    else:  # every municipality takes part: all 98, or the deadline
        assert readiness.ready == passed
    if not readiness.ready:
        assert "force=true" in readiness.reason


def test_a_round_of_all_municipalities_is_ready_when_all_98_delivered():
    assert draw_readiness([], CODES, None, NOW).ready
    assert not draw_readiness([], CODES[:-1], NOW + timedelta(days=1), NOW).ready
