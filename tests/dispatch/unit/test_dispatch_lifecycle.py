"""The step lifecycle and the reminder stop rule (services/dispatch/domain/lifecycle.py). The
paths that apply the stop rule (the answer handler, the sender's claim and its re-check after
the claim) are exercised against PostgreSQL in
tests/dispatch/integration/test_dispatch_service.py::test_no_reminder_after_an_answer_or_opt_out."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.dispatch.domain.lifecycle import (
    INITIAL,
    TRANSITIONS,
    UNSENT,
    InvitationStatus,
    StepStatus,
    may_move,
    sends,
    stop_reason,
)
from services.dispatch.models import DispatchStep, Invitation


def test_every_status_has_its_transitions_and_the_ends_are_final():
    assert set(TRANSITIONS) == set(StepStatus)
    finals = {s for s, after in TRANSITIONS.items() if not after}
    assert finals == {StepStatus.SENT, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
    assert INITIAL <= set(StepStatus) and StepStatus.SENDING not in INITIAL
    # Only a claimed step is sent; every unsent step can still be stopped or cancelled.
    assert {s for s in StepStatus if may_move(s, StepStatus.SENT)} == {StepStatus.SENDING}
    assert {s for s in StepStatus if may_move(s, StepStatus.SENDING)} == {StepStatus.PLANNED}
    for status in UNSENT:
        assert may_move(status, StepStatus.SKIPPED) and may_move(status, StepStatus.CANCELLED)


def test_only_an_active_invitation_sends_and_a_stopped_one_says_why():
    assert sends(InvitationStatus.ACTIVE) and sends("active")
    for status in (InvitationStatus.ANSWERED, InvitationStatus.OPTED_OUT):
        assert not sends(status)
        assert stop_reason(status) == status.value
    assert stop_reason(InvitationStatus.ACTIVE) is None


def test_the_stop_rule_is_the_same_condition_in_sql():
    sql = str(sa.select(Invitation.id).where(sends(Invitation.status)).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    assert "dispatch.invitation.status = 'active'" in sql
    assert DispatchStep.__table__.c.status.default.arg == StepStatus.PLANNED
    assert Invitation.__table__.c.status.default.arg == InvitationStatus.ACTIVE
