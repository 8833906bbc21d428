"""Analytics' read side: a round's tables are published as releases, each built and suppressed at
one round version and kept; reads are served the round's latest release, filtered per caller.
Nothing here ever returns a response row."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import pickle
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.analytics.builder import RoundInfo, ThreadBuilder, round_info, round_method
from services.analytics.domain.calibration import CalibrationSpec
from services.analytics.handlers import ROUND_CHANGED_CHANNEL, touch_round
from services.analytics.domain.publication import (
    CONTENT_SCOPES,
    INDICATOR_COLUMNS,
    NATIONAL,
    RATE_COLUMNS,
    SCOPES,
    IndicatorTable,
    RoundPublication,
    natural_key,
)
from services.analytics.domain.trends import change_between
from services.analytics.models import PublicationRelease, RoundCalibration, RoundState
from services.analytics.overview.models import OverviewRound
from services.analytics.schemas import ResponseRateRow, ResponseRates
from shared.auth import Principal
from shared.bus import UnitOfWork
from shared.db import to_plain_url


logger = logging.getLogger(__name__)

PRELIMINARY, FINAL = "preliminary", "final"
PHASES = (PRELIMINARY, FINAL)


class RoundNotFound(LookupError):
    pass


class NotReleased(LookupError):
    """The round has data, but no release yet: nothing of it is published."""


class ReleaseRefused(ValueError):
    pass


@dataclass(frozen=True)
class ReleaseInfo:
    round_id: str
    release: int  # 1, 2, 3 ... per round
    version: int  # the round version the release was built at
    phase: str  # preliminary | final
    built_at: datetime  # UTC
    scope: str = "all"  # publication.SCOPES: "rates" publishes who answered, never what

    @property
    def answers_published(self) -> bool:
        """Whether the release publishes answers (indicator rows); a "rates" release has none."""
        return self.scope in CONTENT_SCOPES

    @property
    def built_at_text(self) -> str:
        """ISO 8601 in UTC with "Z", as the JSON responses write it."""
        return self.built_at.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def stamp(self) -> dict:
        """What every published row says about its release."""
        return {"release": self.release, "phase": self.phase, "built_at": self.built_at_text}

    def page_stamp(self) -> dict:
        """What every page of a table says about its release: the row stamp and the scope."""
        return {**self.stamp(), "scope": self.scope}


@dataclass(frozen=True)
class Release:
    info: ReleaseInfo
    publication: RoundPublication


# What a stored publication's pickle depends on: the published columns and the fields of the
# classes it is made of. A release stored under another layout (the code changed since) is not
# unpickled into today's classes; the release loop releases the round again from its baseline.
LAYOUT = hashlib.sha256(repr((
    INDICATOR_COLUMNS, RATE_COLUMNS,
    [f.name for f in dataclasses.fields(RoundPublication)], [f.name for f in dataclasses.fields(IndicatorTable)],
)).encode()).hexdigest()[:16]


def encode_publication(publication: RoundPublication) -> bytes:
    return zlib.compress(pickle.dumps(publication, protocol=pickle.HIGHEST_PROTOCOL), 6)


def decode_publication(blob: bytes) -> RoundPublication:
    # Our own table, written only by encode_publication: aggregates this service built.
    return pickle.loads(zlib.decompress(blob))  # noqa: S301


_RELEASES = PublicationRelease.__table__.fullname
_STATE = RoundState.__table__.fullname
# A release's scope is kept in the baseline stored with it (builder._build); a release stored
# without one was a final ("all") or a preliminary of national cells and municipal totals.
_SCOPE = "COALESCE(baseline->>'scope', CASE WHEN phase = 'final' THEN 'all' ELSE 'totals' END)"
_LATEST = sa.text(
    f"SELECT release, version, phase, built_at, {_SCOPE}, layout, publication FROM {_RELEASES} "
    "WHERE round_id = :r ORDER BY release DESC LIMIT 1"
)
_PREVIOUS = sa.text(f"SELECT release, version, phase, baseline FROM {_RELEASES} WHERE round_id = :r ORDER BY release DESC LIMIT 1")
_LIST = sa.text(f"SELECT release, version, phase, built_at, {_SCOPE} FROM {_RELEASES} WHERE round_id = :r ORDER BY release")
_VERSION = sa.text(f"SELECT version FROM {_STATE} WHERE round_id = :r")
# Every round with its version and its latest release (if any): what the release loop looks at.
_ROUNDS = sa.text(
    f"SELECT s.round_id, s.version, r.release, r.version, r.phase, r.built_at, r.layout, r.scope FROM {_STATE} s "
    f"LEFT JOIN LATERAL (SELECT release, version, phase, built_at, layout, {_SCOPE} AS scope FROM {_RELEASES} p "
    "WHERE p.round_id = s.round_id ORDER BY release DESC LIMIT 1) r ON true"
)


class Releases:
    """A round's published tables are its releases (table ``publication_release``): each built
    and suppressed at one round version and kept, numbered 1, 2, 3 ... per round, "preliminary"
    or "final". Every read is served the round's latest release (held in memory, loaded from the
    table on first use, so after a restart too); a round without one publishes nothing.

    Why releases and not tables rebuilt at every answer: two publications one answer apart
    differ by that citizen's answers. A release is cut

    * by :meth:`run`, the release loop, for a round whose version moved past its latest
      release's version, once the round has been quiet (no new version) for ``quiet`` seconds
      or its latest release is ``interval`` seconds old (a round without a release: ``interval``
      after the loop first saw it unreleased). These are preliminary; once a round has a final
      release the loop leaves it alone.
    * by the KL operator (:meth:`cut`, ``POST /rounds/{id}/releases``): preliminary (in a scope
      of its choosing: a release point), or final; a final may be cut again (a revision), a
      preliminary after a final is refused.

    What a release publishes is its scope (publication.SCOPES): the loop's preliminaries publish
    ``preliminary_scope``, by default "rates" (who answered, never what: the response-rate
    tables, no indicator rows), an operator's preliminary the scope it asks for ("totals" or
    "all": answers during fieldwork, held against the last release with answers by the growth
    rule), a final "all". A read of a "rates" release's indicator tables is an empty page that
    says its scope.
    * by the loop again, in the same phase, when the latest release was stored under another
      ``LAYOUT`` of the publication classes (a deployment changed them): it is never unpickled
      into classes it was not written with, and until the new release the round serves nothing.

    Each build is given the baseline stored with the round's previous release (what earlier
    releases published, so the new one cannot be differenced against them) and the new release
    is stored with the baseline it returns. Builds run in ``builder`` (the service passes a
    :class:`~services.analytics.builder.ProcessBuilder`: a worker process, one build at a time)
    from one REPEATABLE READ snapshot, so a release never claims a version it lacks. The loop is
    woken by every committed change (:class:`RoundChanges`, for the quiet clock) and looks at
    the rounds every ``poll`` seconds besides, so a lost notification only delays. Several
    service instances may run the loop: the release number is the table's key, so an instance
    that loses a race builds again on top of the winner's release (or, cutting automatically,
    keeps the winner's when the round has not changed since).
    """

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        min_count: int,
        caution_below: int,
        *,
        quiet: float = 300.0,
        interval: float = 3600.0,
        poll: float = 1.0,
        preliminary_scope: str = "rates",
        builder=None,
    ) -> None:
        self._uow_factory = uow_factory
        self.preliminary_scope = preliminary_scope  # what a preliminary release publishes (publication.SCOPES)
        self._builder = builder or ThreadBuilder(uow_factory)
        self.min_count = min_count
        self.caution_below = caution_below
        self.quiet = quiet
        self.interval = interval
        self.poll = poll
        self._latest: dict[str, Release] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # round -> (version last seen, monotonic time it was first seen, monotonic time the
        # round was first seen unreleased): the quiet and interval clocks of unreleased changes.
        self._watch: dict[str, tuple[int, float, float]] = {}
        self._wake = asyncio.Event()
        # Totals over the releases cut so far (the bench prints them).
        self.stats = {"releases": 0, "wall_s": 0.0, "load_s": 0.0, "build_cpu_s": 0.0}

    # -- reads --------------------------------------------------------------------------------

    async def latest(self, uow: UnitOfWork, round_id: str) -> Release:
        """The round's latest release. RoundNotFound for a round analytics never heard of,
        NotReleased for one that has no release yet."""
        cached = self._latest.get(round_id)
        if cached is not None:
            return cached
        row = (await uow.session.execute(_LATEST, {"r": round_id})).first()
        if row is None:
            if await round_info(uow, round_id) is None:
                raise RoundNotFound(round_id)
            raise NotReleased(round_id)
        number, version, phase, built_at, scope, layout, blob = row
        if layout != LAYOUT:
            self._wake.set()  # the release loop releases it again under this layout
            raise NotReleased(round_id)
        publication = await asyncio.to_thread(decode_publication, blob)
        return self._keep(Release(ReleaseInfo(round_id, number, version, phase, built_at, scope), publication))

    async def list(self, uow: UnitOfWork, round_id: str) -> list[ReleaseInfo]:
        rows = (await uow.session.execute(_LIST, {"r": round_id})).all()
        if not rows and await round_info(uow, round_id) is None:
            raise RoundNotFound(round_id)
        return [ReleaseInfo(round_id, *row) for row in rows]

    def _keep(self, release: Release) -> Release:
        """Hold ``release`` as the round's latest unless a later one is held already."""
        held = self._latest.get(release.info.round_id)
        if held is None or held.info.release < release.info.release:
            self._latest[release.info.round_id] = held = release
        return held

    # -- cutting ------------------------------------------------------------------------------

    async def cut(self, round_id: str, phase: str, *, automatic: bool = False, scope: str | None = None) -> ReleaseInfo | None:
        """Build and store the round's next release. ``automatic`` (the loop): only if the round
        changed since its latest release and has no final one; returns None when not cut.
        ``scope`` (publication.SCOPES): what a preliminary publishes, by default
        ``preliminary_scope``; a final publishes every cell ("all")."""
        if phase not in PHASES:
            raise ReleaseRefused(f"phase must be one of {PHASES}")
        if scope is not None and scope not in SCOPES:
            raise ReleaseRefused(f"scope must be one of {SCOPES}")
        if phase == FINAL and scope not in (None, "all"):
            raise ReleaseRefused('a final release publishes every cell: its scope is "all"')
        scope = "all" if phase == FINAL else scope or self.preliminary_scope
        async with self._locks.setdefault(round_id, asyncio.Lock()):
            for _attempt in range(5):
                async with self._uow_factory() as uow:
                    previous = (await uow.session.execute(_PREVIOUS, {"r": round_id})).first()
                    version = (await uow.session.execute(_VERSION, {"r": round_id})).scalar()
                if version is None:
                    raise RoundNotFound(round_id)
                if previous is not None and previous.phase == FINAL and phase == PRELIMINARY:
                    if automatic:
                        return None
                    raise ReleaseRefused(
                        f"round {round_id} has a final release ({previous.release}); cut a final one to revise it"
                    )
                if automatic and previous is not None and previous.version >= version:
                    return None
                started = time.monotonic()
                result = await self._builder.build(
                    round_id, self.min_count, self.caution_below, None if previous is None else previous.baseline, scope,
                )
                if result.info is None:
                    raise RoundNotFound(round_id)
                info = ReleaseInfo(round_id, (0 if previous is None else previous.release) + 1, result.info.version, phase,
                                   datetime.now(UTC), scope)
                blob = await asyncio.to_thread(encode_publication, result.publication)
                insert = (
                    pg_insert(PublicationRelease)
                    .values(round_id=round_id, release=info.release, version=info.version, phase=phase,
                            built_at=info.built_at, layout=LAYOUT, publication=blob, baseline=result.baseline)
                    .on_conflict_do_nothing(index_elements=["round_id", "release"])
                    .returning(PublicationRelease.release)
                )
                async with self._uow_factory() as uow:
                    inserted = (await uow.session.execute(insert)).first()
                    await uow.commit()
                if inserted is None:
                    continue  # another instance cut this number meanwhile: on top of its release
                self._keep(Release(info, result.publication))
                wall = time.monotonic() - started
                for key, value in (("releases", 1), ("wall_s", wall), ("load_s", result.load_seconds),
                                   ("build_cpu_s", result.build_seconds)):
                    self.stats[key] = round(self.stats[key] + value, 3)
                logger.info(
                    "release cut",
                    extra={"fields": {"round_id": round_id, "release": info.release, "phase": phase, "scope": scope,
                                      "version": info.version,
                                      "automatic": automatic, "bytes": len(blob), "wall_s": round(wall, 3)}},
                )
                return info
            raise RuntimeError(f"could not cut a release of round {round_id}: other instances kept cutting")

    # -- the release loop ---------------------------------------------------------------------

    def round_changed(self, round_id: str) -> None:
        """A committed change to the round (RoundChanges): look now, so the quiet clock starts."""
        self._wake.set()

    async def run(self) -> None:
        """Cut the releases that are due (see the class docstring), looking whenever a round
        changes, every ``poll`` seconds, and when the next release falls due."""
        timeout = 0.0
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for could miss a cancellation that
                # raced its timeout and never return, which hung the service's shutdown.
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                timeout = await self._release_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cutting due releases failed; retrying")
                timeout = max(self.poll, 1.0)

    async def _release_again(self, round_id: str, phase: str, scope: str) -> None:
        """The round's latest release was stored under another layout (the code changed since):
        release the round again in the same phase and scope, built from the stored baseline."""
        logger.warning("latest release stored under another layout; releasing the round again",
                       extra={"fields": {"round_id": round_id, "phase": phase, "scope": scope}})
        try:
            await self.cut(round_id, phase, scope=scope if scope in SCOPES else None)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("release failed", extra={"fields": {"round_id": round_id}})

    async def _release_due(self) -> float:
        """Cut every release that is due; the seconds until the next look."""
        async with self._uow_factory() as uow:
            rows = (await uow.session.execute(_ROUNDS)).all()
        now, wall = time.monotonic(), datetime.now(UTC)
        next_look = self.poll
        for round_id, version, number, released_version, phase, built_at, layout, scope in rows:
            held = self._latest.get(round_id)
            if held is not None and number is not None and held.info.release < number:
                self._latest.pop(round_id, None)  # cut by another instance: load it when read
            if layout is not None and layout != LAYOUT:
                await self._release_again(round_id, phase, scope)
                continue
            if phase == FINAL or (released_version is not None and version <= released_version):
                self._watch.pop(round_id, None)
                continue
            seen = self._watch.get(round_id)
            if seen is None:
                seen = (version, now, now)
            elif seen[0] != version:
                seen = (version, now, seen[2])
            self._watch[round_id] = seen
            quiet_left = seen[1] + self.quiet - now
            age = (wall - built_at).total_seconds() if built_at is not None else now - seen[2]
            due_in = min(quiet_left, self.interval - age)
            if due_in > 0:
                next_look = min(next_look, due_in)
                continue
            try:
                if await self.cut(round_id, PRELIMINARY, automatic=True) is not None:
                    self._watch.pop(round_id, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("release failed", extra={"fields": {"round_id": round_id}})
        return next_look


class RoundChanges:
    """Tells the release loop about every committed change to a round as it happens: LISTEN on
    the channel the handlers NOTIFY (handlers.touch_round), on a connection of its own, so a
    round's quiet clock starts at its last change rather than at the next poll. The poll
    stays, so a lost connection (reconnected after a second) or a pooler that drops LISTEN only
    makes releases later, never lost."""

    def __init__(self, database_url: str, on_change: Callable[[str], None]) -> None:
        self._dsn = to_plain_url(database_url)
        self._on_change = on_change
        self.listening = asyncio.Event()

    def _notified(self, connection, pid: int, channel: str, payload: str) -> None:
        self._on_change(payload)

    async def run(self) -> None:
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _connection: lost.set())
                await connection.add_listener(ROUND_CHANGED_CHANNEL, self._notified)
                self.listening.set()
                await lost.wait()
                logger.warning("round change listener lost its connection; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("round change listener failed; polling only until it reconnects", exc_info=True)
            finally:
                self.listening.clear()
                if connection is not None and not connection.is_closed():
                    # Not close(): its graceful handshake has no bound, and a listening
                    # connection has nothing to finish.
                    connection.terminate()
            await asyncio.sleep(1.0)


async def list_rounds(uow: UnitOfWork) -> list[RoundInfo]:
    rows = (await uow.session.execute(sa.select(RoundState))).scalars().all()
    infos = [RoundInfo(r.round_id, r.questionnaire_id, r.first_submitted_at, r.version) for r in rows]
    # Chronological by first answer (rounds without answers last), then by id.
    return sorted(infos, key=lambda r: (r.first_submitted_at is None, r.first_submitted_at or 0, natural_key(r.round_id)))


# -- filtering ---------------------------------------------------------------------------------------


def visible(rows: Iterable[dict], principal: Principal) -> list[dict]:
    """A municipality sees its own rows and the national ones; KL (kommuner:all) sees all."""
    if principal.all_kommuner:
        return rows if isinstance(rows, list) else list(rows)
    return [r for r in rows if r["kommunekode"] == NATIONAL or principal.may_act_for(r["kommunekode"])]


def select_rows(rows: Iterable[dict], filters: dict[str, object]) -> list[dict]:
    wanted = {k: v for k, v in filters.items() if v is not None}
    return [r for r in rows if all(r.get(k) == v for k, v in wanted.items())]


# -- releases ------------------------------------------------------------------------------------------


async def cut_release(releases: Releases, round_id: str, phase: str, scope: str | None = None) -> ReleaseInfo:
    """The KL operator's release of a round: a preliminary (``scope``, by default the configured
    preliminary scope: "totals" or "all" is a release point with answers during fieldwork) or
    the final. It spans a build, so it opens its own short units of work (read the previous
    release; store the new one) rather than hold one transaction open across the build."""
    info = await releases.cut(round_id, phase, scope=scope)
    assert info is not None  # only automatic cuts are skipped
    return info


# -- estimation settings per round (calibration, lonely strata) ----------------------------------------


async def _ensure_round_known(uow: UnitOfWork, round_id: str) -> None:
    """RoundNotFound for a round analytics has not heard of (neither defined nor with data)."""
    known = await uow.session.scalar(sa.select(OverviewRound.round_id).where(OverviewRound.round_id == round_id))
    if known is None and await round_info(uow, round_id) is None:
        raise RoundNotFound(round_id)


async def set_round_method(uow: UnitOfWork, round_id: str, spec: CalibrationSpec, lonely: str, by: str) -> None:
    """Store the round's calibration settings and lonely-stratum rule; the round's next release
    (built because the round changed) uses them. Refused (RoundNotFound) for a round analytics
    has not heard of (neither defined nor with data)."""
    await _ensure_round_known(uow, round_id)
    values = {"spec": spec.to_json(), "lonely": lonely, "updated_by": by, "updated_at": sa.func.now()}
    statement = pg_insert(RoundCalibration).values(round_id=round_id, **values)
    await uow.session.execute(statement.on_conflict_do_update(index_elements=["round_id"], set_=values))
    await touch_round(uow, round_id)
    await uow.commit()


async def round_method_view(uow: UnitOfWork, releases: Releases, round_id: str) -> dict:
    """The round's settings for its next release, and how its latest release was estimated."""
    await _ensure_round_known(uow, round_id)
    spec, lonely = await round_method(uow, round_id)
    out = {"round_id": round_id, **spec.to_json(), "lonely_strata": lonely, "release": None, "method": None}
    try:
        release = await releases.latest(uow, round_id)
    except (NotReleased, RoundNotFound):
        return out
    return out | {"release": release.info.release, "method": release.publication.method or None}


# -- response rates (the summary endpoint) ------------------------------------------------------------


async def response_rates(uow: UnitOfWork, releases: Releases, round_id: str, principal: Principal) -> ResponseRates:
    """Answers and response rate per municipality and nationally, from the latest release
    (RoundNotFound / NotReleased when there is none)."""
    release = await releases.latest(uow, round_id)
    rows = [r for r in release.publication.rate_rows if r["dimension"] == "maalgruppe" and r["level"] == "total"]
    return ResponseRates(
        round_id=round_id,
        suppression_threshold=releases.min_count,
        **release.info.page_stamp(),
        rows=[
            ResponseRateRow(
                kommunekode=r["kommunekode"],
                invited=r["invited"],
                answers=r["answers"],
                response_rate=r["response_rate"],
                suppressed=r["suppressed"],
                caution=r["caution"],
            )
            for r in visible(rows, principal)
        ],
    )


# -- trends ---------------------------------------------------------------------------------------------

TREND_INDICATORS = ("mean", "top2_share")
TREND_COLUMNS = (
    "round_id",
    "previous_round_id",
    "questionnaire_id",
    "question",
    "kommunekode",
    "indicator",
    "value",
    "se",
    "previous_value",
    "previous_se",
    "change",
    "change_se",
    "z",
    "p_value",
    "significant",
    "release",
    "phase",
    "built_at",
    "previous_release",
)


async def latest_releases(uow: UnitOfWork, releases: Releases, rounds: Iterable[RoundInfo]) -> list[Release]:
    """The latest release of each of ``rounds`` that has one, in the same order."""
    out = []
    for info in rounds:
        try:
            out.append(await releases.latest(uow, info.round_id))
        except (NotReleased, RoundNotFound):
            continue
    return out


async def trends(uow: UnitOfWork, releases: Releases, questionnaire_id: str | None = None) -> list[dict]:
    """Per round, question, municipality (and national) total: the estimate and its change since
    the previous round of the same questionnaire, flagged when significant (z-test, 5 %); each
    round as its latest release (rounds without one are left out), named in the row."""
    rounds = [r for r in await list_rounds(uow) if r.questionnaire_id and (questionnaire_id in (None, r.questionnaire_id))]
    questionnaires = {r.round_id: r.questionnaire_id for r in rounds}
    out: list[dict] = []
    previous_by_questionnaire: dict[str, tuple[str, dict, int]] = {}
    for release in await latest_releases(uow, releases, rounds):
        publication, stamp = release.publication, release.info.stamp()
        info = RoundInfo(release.info.round_id, questionnaires[release.info.round_id], None, release.info.version)
        totals = {
            (r["question"], r["kommunekode"]): r
            for r in publication.indicator_rows
            if r["dimension"] == "maalgruppe" and r["level"] == "total"
        }
        previous_round, previous, previous_release = previous_by_questionnaire.get(info.questionnaire_id, (None, {}, None))
        for (question, kommune), row in totals.items():
            before = previous.get((question, kommune))
            for ind in TREND_INDICATORS:
                value, se = row[ind], row[f"{ind}_se"]
                trend = {
                    "round_id": info.round_id,
                    "previous_round_id": previous_round,
                    "questionnaire_id": info.questionnaire_id,
                    "question": question,
                    "kommunekode": kommune,
                    "indicator": ind,
                    "value": value,
                    "se": se,
                    "previous_value": None if before is None else before[ind],
                    "previous_se": None if before is None else before[f"{ind}_se"],
                    "change": None,
                    "change_se": None,
                    "z": None,
                    "p_value": None,
                    "significant": None,
                    **stamp,
                    "previous_release": previous_release,
                }
                if value is not None and trend["previous_value"] is not None:
                    change = change_between((trend["previous_value"], trend["previous_se"]), (value, se))
                    trend.update(change=change.difference, change_se=change.se, z=change.z, p_value=change.p_value, significant=change.significant)
                out.append(trend)
        previous_by_questionnaire[info.questionnaire_id] = (info.round_id, totals, release.info.release)
    return out
