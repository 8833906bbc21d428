"""The overview's pure rules: what the round waits for per phase, answers by day since the
invitation (Danish calendar days), messages per step and channel, and the totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.analytics.overview import domain
from services.analytics.overview.schemas import Figures

NOW = datetime(2026, 9, 10, 12, 0, tzinfo=UTC)


def test_what_the_round_waits_for_in_each_phase():
    definition = {"kommuner": ["101", "147", "751"], "delivery_deadline": (NOW - timedelta(days=1)).isoformat(),
                  "invitation_at": (NOW + timedelta(days=2)).isoformat(),
                  "reminders_at": [(NOW - timedelta(days=1)).isoformat(), (NOW + timedelta(days=5)).isoformat()],
                  "fieldwork_ends_at": (NOW + timedelta(days=20)).isoformat()}
    assert "round.defined" in domain.waits_for(None, {}, set(), None, NOW)[0]
    collecting = domain.waits_for("collecting_extracts", definition, {"101"}, "proposed", NOW)
    assert collecting[0] == "leverancer fra 2 kommune(r): 147, 751"
    assert collecting[1].endswith("er overskredet") and "godkendelse" in collecting[2]
    assert domain.waits_for("fieldwork_scheduled", definition, set(), "drawn", NOW) == ["invitationen 12. september 2026 kl. 14:00"]
    # Only reminders still to come, then the end.
    in_fieldwork = domain.waits_for("in_fieldwork", definition, set(), "drawn", NOW)
    assert in_fieldwork == ["påmindelsen 15. september 2026 kl. 14:00", "feltarbejdets slutning 30. september 2026 kl. 14:00"]
    assert "lukning" in domain.waits_for("fieldwork_ended", definition, set(), "drawn", NOW)[0]
    assert domain.waits_for("purged", definition, set(), "drawn", NOW) == []


def test_answers_by_danish_day_since_the_invitation():
    invitation = datetime(2026, 9, 1, 22, 30, tzinfo=UTC)  # 00:30 on the 2nd in Copenhagen: day 0 is the 2nd
    submitted = [("101", date(2026, 9, 2), 2), ("101", date(2026, 9, 3), 1), ("751", date(2026, 9, 4), 3)]
    days, counts = domain.answer_days(invitation, submitted, datetime(2026, 9, 5, 10, 0, tzinfo=UTC))
    assert [d.day for d in days] == [2, 3, 4, 5]
    assert counts == {"101": [2, 1, 0, 0], "751": [0, 0, 3, 0]}
    assert domain.answer_days(invitation, [], NOW) == ([], {})
    # No invitation date: from the first answer's day.
    assert domain.answer_days(None, submitted, datetime(2026, 9, 4, 10, 0, tzinfo=UTC))[0][0] == date(2026, 9, 2)


def test_messages_per_step_and_channel_and_the_total():
    rows = [{"step": "invitation", "channel": "letter", "status": s, "count": n}
            for s, n in (("sent", 7), ("failed", 1), ("waiting", 2), ("waiting_for_schedule", 3))]
    rows.append({"step": "reminder_1", "channel": "sms", "status": "cancelled", "count": 4})
    lines = domain.message_counts(rows)
    assert [(m.step, m.channel, m.planned, m.sent, m.failed, m.cancelled) for m in lines] == [
        ("invitation", "letter", 5, 7, 1, 0), ("reminder_1", "sms", 0, 0, 0, 4)]
    a = Figures(kommunekode="101", sample=10, answers=4, expected_answers=4.0, messages=lines, answers_by_day=[1, 3])
    b = Figures(kommunekode="751", sample=None, answers=0, answers_by_day=[0, 0])
    total = domain.total_of([a, b], 2, 200.0)
    assert (total.sample, total.answers, total.response_rate, total.expected_rate) == (10, 4, 0.4, 0.4)
    assert total.answers_by_day == [1, 3] and total.target_answers == 200.0
    assert total.messages == lines
