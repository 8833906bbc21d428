"""The step lifecycle and the reminder stop rule (services/dispatch/domain/lifecycle.py). The
paths that apply the stop rule (the answer handler, the sender's claim and its re-check after
the claim) are held to it one by one, over every invitation status and hand-over, against
PostgreSQL in tests/dispatch/integration/test_dispatch_contacts.py
(test_the_claim_the_recheck_and_the_answer_handler_each_keep_to_the_lifecycles_stop_rule), and
together through the running service in
tests/dispatch/integration/test_dispatch_service.py::test_no_reminder_after_an_answer_or_opt_out; its
scope after a crash (a step handed over stays delivered) in test_dispatch_process_crash.py."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from services.dispatch.domain.lifecycle import (
    INITIAL,
    TRANSITIONS,
    UNSENT,
    InvitationStatus,
    StepStatus,
    goes_out,
    may_move,
    sends,
    stop_reason,
    stops,
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


@given(status=st.sampled_from([*InvitationStatus]), handed_over=st.sampled_from([None, datetime(2026, 9, 1, tzinfo=UTC)]))
def test_the_stop_rule_reaches_only_steps_never_handed_over(status, handed_over):
    # A step handed to its channel may have been delivered: it goes out (again, with its key)
    # whatever the citizen did since; one never handed over goes only while the invitation sends.
    assert stops(status, handed_over) == (status != InvitationStatus.ACTIVE and handed_over is None)
    assert goes_out(status, handed_over) == (not stops(status, handed_over))
    assert not stops(status, handed_over) or stop_reason(status) == status.value


def test_the_stop_rule_scope_is_the_same_condition_in_sql():
    def sql(clause) -> str:
        return str(sa.select(DispatchStep.step).where(clause).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

    stopped = sql(stops(Invitation.status, DispatchStep.handed_over_at))
    assert "dispatch.invitation.status != 'active'" in stopped and "dispatch.dispatch_step.handed_over_at IS NULL" in stopped
    going = sql(goes_out(Invitation.status, DispatchStep.handed_over_at))
    assert "dispatch.invitation.status = 'active' OR dispatch.dispatch_step.handed_over_at IS NOT NULL" in going
    # The answer handler's form: the new status as a literal.
    assert "handed_over_at IS NULL" in sql(stops(sa.literal("answered"), DispatchStep.handed_over_at))
