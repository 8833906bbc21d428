"""Interviews by phone: who is on the interviewer's list, and what a call can end in (pure).

A citizen is on the list of their round while their link is open (not answered, not opted out,
not expired, the round's fieldwork not over), the round's dispatch plan offered interviews (so
dispatch released their phone number) and the calls so far allow another: never called, or a
call back whose time has come. "Refused" takes the citizen off the list for good; the link stays
open, so the letter's web form and the paper form still count. A completed interview spends the
link like any other answer (one answer per link), with mode ``phone``.

One interviewer at a time: the page claims the citizen it shows for ``CLAIM`` (another interviewer
gets the next one), and the claim ends with the call's outcome or when it runs out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Outcome = Literal["refused", "call_back", "completed"]
OUTCOMES: tuple[str, ...] = Outcome.__args__
CLAIM = timedelta(minutes=20)
# How far ahead a call back may be booked (beyond the end of fieldwork it is refused anyway).
CALL_BACK_HORIZON = timedelta(days=60)
DANISH_TIME = ZoneInfo("Europe/Copenhagen")


class CallBackRefused(ValueError):
    """A call-back time the rules refuse; ``args[0]`` says why (in Danish, for the page)."""


def may_call(outcome: str | None, call_back_at: datetime | None, now: datetime) -> bool:
    """Whether the calls so far allow another call at ``now``."""
    if outcome is None:
        return True
    return outcome == "call_back" and call_back_at is not None and call_back_at <= now


def may_call_sql(alias: str, now: str) -> str:
    """``may_call`` as an SQL condition on an ``interview`` row ``alias`` at ``now`` (an SQL expression)."""
    return f"({alias}.outcome IS NULL OR ({alias}.outcome = 'call_back' AND {alias}.call_back_at <= {now}))"


def claimed_by_other(claimed_by: str | None, claimed_until: datetime | None, me: str, now: datetime) -> bool:
    """Whether another interviewer has the citizen on their page now."""
    return claimed_by is not None and claimed_by != me and claimed_until is not None and claimed_until > now


def call_back_time(local: str, now: datetime, fieldwork_ends_at: datetime | None) -> datetime:
    """The call-back time an interviewer typed (``YYYY-MM-DDTHH:MM``, Danish local time, as an
    ``<input type="datetime-local">`` sends it), in UTC. It must lie ahead, within the horizon,
    and before the round's fieldwork ends (a call then could not be recorded)."""
    try:
        naive = datetime.strptime(local.strip(), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise CallBackRefused("Skriv tidspunktet som dato og klokkeslæt, fx 2026-12-08T14:30.") from None
    at = naive.replace(tzinfo=DANISH_TIME).astimezone(UTC)
    # A local time that does not exist (the hour skipped in spring) does not survive the round trip.
    if at.astimezone(DANISH_TIME).replace(tzinfo=None) != naive:
        raise CallBackRefused("Det klokkeslæt findes ikke den dag (sommertid). Vælg et andet.")
    if at <= now:
        raise CallBackRefused("Tidspunktet for at ringe igen skal ligge i fremtiden.")
    if at > now + CALL_BACK_HORIZON:
        raise CallBackRefused(f"Tidspunktet må højst ligge {CALL_BACK_HORIZON.days} dage fremme.")
    if fieldwork_ends_at is not None and at >= fieldwork_ends_at:
        raise CallBackRefused("Tidspunktet ligger efter rundens afslutning: et interview kan ikke registreres da.")
    return at
