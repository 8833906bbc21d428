"""A dispatch step's lifecycle, and the rule that stops a citizen's messages: the one home of
both (the handlers, the sender, the privacy purges and the service use these names, never the
strings).

A step (one message: the invitation or a reminder, on one channel) moves so:

    waiting ─contact released─▶ planned ─claimed─▶ sending ─▶ sent
       │                          │                   ├─▶ planned   (transient failure: backoff;
       │                          │                   │              or requeued from a dead sender)
       │                          │                   ├─▶ failed    (permanent, or out of attempts)
       └──────────┬───────────────┘                   ├─▶ skipped   (stopped since the claim; no phone)
                  ├─▶ skipped   (no contact; answered, opted out; round purged)
                  └─▶ cancelled (fieldwork over before it was sent)      └─▶ cancelled (its retry
                                                                             would come after fieldwork)

Planning creates a step ``waiting`` (its invitation has no contact yet), ``planned`` or
``skipped`` (ingest holds no contact). Only ``planned`` steps are claimed; ``sending`` is on
record before anything leaves, so a crash never sends twice.

**Handed over.** Right before a claimed step goes to its channel the sender re-checks the stop
rule and, in the same statement, stamps the step ``handed_over_at``: from then on the message may
have reached the citizen. A step handed over is finished with its own idempotency key whatever
happens meanwhile (a crash of the sender, a timeout, the citizen answering from that very letter):
the receiver keeps one message per key, so a resend either delivers it or finds it delivered, and
the step ends ``sent``. The stop rule (``stops``) therefore reaches only steps never handed over:
``skipped`` with ``answered`` or ``opted_out`` means the message did not leave.
"""

from __future__ import annotations

from enum import StrEnum


class StepStatus(StrEnum):
    WAITING = "waiting"  # the invitation has no contact yet (never claimed, never sent)
    PLANNED = "planned"  # due at due_at (NULL: the round has no schedule yet)
    SENDING = "sending"  # claimed by a sender, the attempt counted
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # never sent, with a skip reason
    CANCELLED = "cancelled"  # fieldwork ended before it was sent


class InvitationStatus(StrEnum):
    ACTIVE = "active"
    ANSWERED = "answered"
    OPTED_OUT = "opted_out"


# What planning may create a step as.
INITIAL: frozenset[StepStatus] = frozenset({StepStatus.WAITING, StepStatus.PLANNED, StepStatus.SKIPPED})

TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.WAITING: frozenset({StepStatus.PLANNED, StepStatus.SKIPPED, StepStatus.CANCELLED}),
    StepStatus.PLANNED: frozenset({StepStatus.SENDING, StepStatus.SKIPPED, StepStatus.CANCELLED}),
    StepStatus.SENDING: frozenset(
        {StepStatus.SENT, StepStatus.PLANNED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
    ),
    StepStatus.SENT: frozenset(),
    StepStatus.FAILED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
    StepStatus.CANCELLED: frozenset(),
}

# Not sent and not claimed: what stopping a citizen's reminders, the end of fieldwork and a purge
# end, and what a new schedule moves.
UNSENT: tuple[StepStatus, ...] = (StepStatus.PLANNED, StepStatus.WAITING)


def may_move(before: StepStatus, after: StepStatus) -> bool:
    return after in TRANSITIONS[before]


def sends(invitation_status):
    """The reminder stop rule: an invitation's messages go out only while it is active; an answer
    or an opt-out stops every message not yet handed to its channel (``stops``). On a status
    (str) a bool; on an SQL column the condition."""
    return invitation_status == InvitationStatus.ACTIVE.value


def stops(invitation_status, handed_over_at) -> bool:
    """The stop rule's scope: a step is stopped when its invitation no longer sends and the
    step was never handed to its channel (module docstring). On values a bool; on SQL columns
    the condition (the reconciliation of a dead sender's steps, the answer handler)."""
    if isinstance(invitation_status, str):
        return not sends(invitation_status) and handed_over_at is None
    return ~sends(invitation_status) & handed_over_at.is_(None)


def goes_out(invitation_status, handed_over_at):
    """Not ``stops``: the step is (still) to be sent, with its own key. The sender's claim and
    its re-check before handing a batch over."""
    if isinstance(invitation_status, str):
        return not stops(invitation_status, handed_over_at)
    return sends(invitation_status) | handed_over_at.is_not(None)


def stop_reason(invitation_status: str) -> str | None:
    """Why a step of an invitation with this status is skipped rather than sent (None: it is not
    stopped). The reason is the status itself (``answered``, ``opted_out``)."""
    return None if sends(invitation_status) else str(invitation_status)
