"""What the sampling service refuses, as exceptions; ``services.sampling.errors`` says what each
answers over HTTP. Those that name no reason carry the round id as their message."""

from __future__ import annotations

class DrawExists(Exception):
    pass


class EmptyFrame(Exception):
    pass


class NoAllocation(Exception):
    pass


class StaleAllocation(Exception):
    """The frame changed (a re-delivery) since the allocation was computed."""


class InvalidAllocation(Exception):
    """Rules or overrides break a hard rule; the message says which."""


class RoundNotDefined(Exception):
    """No round.defined has arrived for the round: sampling does no work for it."""


class RoundRefused(Exception):
    """The round's phase or readiness forbids the work; the message says why."""
