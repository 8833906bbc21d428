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
    or an opt-out stops every message not yet sent. On a status (str) a bool; on an SQL column
    the condition (the sender's claim filter and its re-check before sending)."""
    return invitation_status == InvitationStatus.ACTIVE.value


def stop_reason(invitation_status: str) -> str | None:
    """Why a step of an invitation with this status is skipped rather than sent (None: it is not
    stopped). The reason is the status itself (``answered``, ``opted_out``)."""
    return None if sends(invitation_status) else str(invitation_status)
