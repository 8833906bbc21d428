"""Analytics' read side: a round's publication is computed from the tallies, cached by the
round's version, and filtered per caller. Nothing here ever returns a response row."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable

import asyncpg
import sqlalchemy as sa

from services.analytics.builder import BuildResult, RoundInfo, ThreadBuilder, load_rates, round_info
from services.analytics.handlers import ROUND_CHANGED_CHANNEL
from services.analytics.domain.publication import NATIONAL, RoundPublication, build_rate_rows, change_between, natural_key
from services.analytics.models import RoundState
from services.analytics.schemas import ResponseRateRow, ResponseRates
from shared.auth import Principal
from shared.bus import UnitOfWork
from shared.db import to_plain_url


logger = logging.getLogger(__name__)


class RoundNotFound(LookupError):
    pass


class PublicationCache:
    """Publications by round, each valid while the round's version is unchanged.

    * Reads never compute on the event loop and never serve a state older than the version
      they observe (:meth:`current`: the round's version as polled every ``interval``, so a
      read costs no database round trip): a read whose round changed waits for the build
      that covers it; builds run in ``builder`` (the service passes a
      :class:`~services.analytics.builder.ProcessBuilder`: a worker process, so a build
      never holds this process's GIL against the consumer and the reads), one at a time per
      round, each from one REPEATABLE READ snapshot of the tallies, and concurrent readers
      share it.
    * A background loop (:meth:`run`) watches the versions of the rounds in the cache, woken
      by every committed change (:class:`RoundChanges`) and polling every ``interval`` besides,
      and rebuilds a changed round ahead of its readers. Builds of a round are spaced by
      ``last build's cost x (1 / build_share - 1)`` (see :meth:`_space`):
      changes arriving meanwhile are coalesced into the next build, so a live round's builds
      use at most ``build_share`` of one core (the service's default: all of the builder's one).
    * ``max_lag`` (seconds, default 0): a read may be served a publication whose snapshot is
      younger than this even if the round changed since, instead of waiting for the next
      build; 0 keeps "a read never sees less than the version it observed".
    * Response rates have their own entry (rate tallies only, one small suppression), so the
      count of answers is fresh without the indicator tables being rebuilt.

    A build is a pure function of the tallies at one version, so a rebuild or a replay gives
    identical rows.
    """

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        min_count: int,
        caution_below: int,
        interval: float = 0.1,
        max_lag: float = 0.0,
        build_share: float = 0.25,
        builder=None,
    ) -> None:
        self._uow_factory = uow_factory
        self._builder = builder or ThreadBuilder(uow_factory)
        self.min_count = min_count
        self.caution_below = caution_below
        self.interval = interval
        self.max_lag = max_lag
        self.build_share = min(max(build_share, 0.01), 1.0)
        # round -> (version, publication, monotonic time of the snapshot it was built from)
        self._entries: dict[str, tuple[int, RoundPublication, float]] = {}
        self._rates: dict[str, tuple[int, list[dict]]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._next_build: dict[str, float] = {}
        # Versions of the rounds readers asked for, refreshed by run() every interval: a read
        # then costs no database round trip (see current()).
        self._known: dict[str, RoundInfo] = {}
        self._known_at = -math.inf
        self._building: dict[str, asyncio.Task] = {}
        self._wake = asyncio.Event()
        # Totals over the builds so far (the bench prints them; cheap enough to keep always).
        self.stats = {"builds": 0, "wall_s": 0.0, "load_s": 0.0, "build_cpu_s": 0.0}

    async def current(self, uow: UnitOfWork, round_id: str) -> RoundInfo | None:
        """The round's state as of the last poll (at most ``interval`` old; a round not polled
        yet, or a stalled poll, is read from the database). Every endpoint takes its version
        from here, so response rates and tables agree on what "current" is."""
        known = self._known.get(round_id)
        if known is not None and time.monotonic() - self._known_at < max(1.0, 5 * self.interval):
            return known
        info = await round_info(uow, round_id)
        if info is not None:
            self._known[round_id] = info
        return info

    async def get(self, uow: UnitOfWork, round_id: str) -> RoundPublication:
        info = await self.current(uow, round_id)
        if info is None:
            raise RoundNotFound(round_id)
        return await self.get_for(uow, info)

    async def get_for(self, uow: UnitOfWork, info: RoundInfo) -> RoundPublication:
        cached = self._entries.get(info.round_id)
        if cached and (cached[0] >= info.version or time.monotonic() - cached[2] < self.max_lag):
            return cached[1]
        return await self._build(info.round_id, info.version)

    async def rate_rows(self, uow: UnitOfWork, round_id: str) -> list[dict]:
        """The response-rate tables of a round at (at least) its current version."""
        info = await self.current(uow, round_id)
        if info is None:
            raise RoundNotFound(round_id)
        published = self._entries.get(round_id)
        if published and published[0] >= info.version:
            return published[1].rate_rows
        async with self._lock("rates", round_id):
            cached = self._rates.get(round_id)
            if cached and cached[0] >= info.version:
                return cached[1]
            async with _Snapshot(self._uow_factory) as snapshot:
                now = await round_info(snapshot, round_id)
                rates = await load_rates(snapshot, round_id)
            rows = await asyncio.to_thread(
                build_rate_rows, round_id, rates, min_count=self.min_count, caution_below=self.caution_below
            )
            self._rates[round_id] = (now.version if now else 0, rows)
            return rows

    def _lock(self, kind: str, round_id: str) -> asyncio.Lock:
        return self._locks.setdefault((kind, round_id), asyncio.Lock())

    async def _build(self, round_id: str, version: int) -> RoundPublication:
        async with self._lock("publication", round_id):
            cached = self._entries.get(round_id)
            if cached and cached[0] >= version:
                return cached[1]
            # Builds of a round are spaced (see _space): readers arriving meanwhile wait for,
            # and share, the next one.
            if (delay := self._next_build.get(round_id, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            started = time.monotonic()
            try:
                result: BuildResult = await self._builder.build(round_id, self.min_count, self.caution_below)
            except BaseException:
                self._space(round_id, time.monotonic() - started)
                raise
            self._space(round_id, result.load_seconds + result.build_seconds)
            if result.info is None:
                raise RoundNotFound(round_id)
            logger.debug(
                "publication built",
                extra={"fields": {"round_id": round_id, "version": result.info.version, "load_s": round(result.load_seconds, 3),
                                  "build_cpu_s": round(result.build_seconds, 3), "wall_s": round(time.monotonic() - started, 3)}},
            )
            for key, value in (("builds", 1), ("wall_s", time.monotonic() - started), ("load_s", result.load_seconds),
                               ("build_cpu_s", result.build_seconds)):
                self.stats[key] = round(self.stats[key] + value, 3)
            # ``started`` is no later than the snapshot: max_lag is measured conservatively.
            self._entries[round_id] = (result.info.version, result.publication, started)
            return result.publication

    def _space(self, round_id: str, took: float) -> None:
        """The next build of the round starts no sooner than ``this build's cost x (1 /
        build_share - 1)`` from now (and at least ``_MIN_GAP``): a round that changes all the
        time takes at most ``build_share`` of one core for its builds, and the rest of the
        machine (consumer, reads, PostgreSQL) keeps the CPU. ``took`` is the build's cost: the
        time its snapshot took to load (PostgreSQL at work) plus the CPU seconds of its
        computation. Time spent waiting, for a core the machine is busy with, in the builder's
        queue or for its start-up, is not cost: spacing by it (wall time, as before) left the
        builder idle longer the busier the machine was, and answers waited for the next build at
        no saving of CPU."""
        now = time.monotonic()
        self._next_build[round_id] = now + max(_MIN_GAP, took * (1 / self.build_share - 1))

    def round_changed(self, round_id: str) -> None:
        """A committed change to the round (RoundChanges): poll now if readers want the round."""
        if round_id in self._known:
            self._wake.set()

    def _finished(self, round_id: str, task: asyncio.Task) -> None:
        self._building.pop(round_id, None)
        self._wake.set()  # changes that came during the build: build again as soon as due
        if not task.cancelled() and task.exception() is not None:
            logger.error("publication rebuild failed", exc_info=task.exception())

    async def run(self) -> None:
        """Poll the versions of the rounds readers asked for, every ``interval`` and whenever a
        round changes (:meth:`round_changed`) or a build ends; rebuild changed rounds ahead of
        their readers (see the class docstring)."""
        timeout = self.interval
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for could miss a cancellation that
                # raced its timeout and never return, which hung the service's shutdown.
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            timeout = self.interval
            if not self._known:
                continue
            try:
                started = time.monotonic()
                async with self._uow_factory() as uow:
                    rows = (await uow.session.execute(_STATES, {"ids": sorted(self._known)})).all()
                self._known.update({row[0]: RoundInfo(*row) for row in rows})
                self._known_at = started
                now = time.monotonic()
                for info in [RoundInfo(*row) for row in rows]:
                    cached = self._entries.get(info.round_id)
                    if not cached or cached[0] >= info.version or info.round_id in self._building:
                        continue
                    due_at = self._next_build.get(info.round_id, 0.0)
                    if due_at > now:
                        timeout = min(timeout, due_at - now)  # look again when it is due
                        continue
                    # In its own task, so the versions keep being polled during a build.
                    task = asyncio.create_task(self._build(info.round_id, info.version))
                    self._building[info.round_id] = task
                    task.add_done_callback(lambda t, r=info.round_id: self._finished(r, t))
            except asyncio.CancelledError:
                for task in list(self._building.values()):
                    task.cancel()
                raise
            except Exception:
                logger.exception("polling round versions failed; retrying")
                await asyncio.sleep(1.0)


# Builds of a round are at least this far apart even when the builder may use its whole core:
# answers arriving within it are coalesced into one build.
_MIN_GAP = 0.005


class RoundChanges:
    """Tells the cache about every committed change to a round as it happens: LISTEN on the
    channel the handlers NOTIFY (handlers.touch_round), on a connection of its own. Without it
    a change waited for the next poll (``interval``), and a build that could start at once
    waited with it. The poll stays, so a lost connection (reconnected after a second) or a
    pooler that drops LISTEN only makes changes slower to show, never lost."""

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


class _Snapshot:
    """A read-only REPEATABLE READ transaction: every query sees the same committed state."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self._uow = uow_factory()

    async def __aenter__(self) -> UnitOfWork:
        uow = await self._uow.__aenter__()
        await uow.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        return uow

    async def __aexit__(self, *exc_info) -> None:
        await self._uow.__aexit__(*exc_info)


_STATES = sa.text(
    f"SELECT round_id, questionnaire_id, first_submitted_at, version FROM {RoundState.__table__.fullname} "
    "WHERE round_id = ANY(CAST(:ids AS text[]))"
)


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


# -- response rates (the original summary endpoint) ---------------------------------------------------


async def response_rates(uow: UnitOfWork, cache: PublicationCache, round_id: str, principal: Principal) -> ResponseRates:
    try:
        rows = [r for r in await cache.rate_rows(uow, round_id) if r["dimension"] == "maalgruppe" and r["level"] == "total"]
    except RoundNotFound:
        rows = []
    return ResponseRates(
        round_id=round_id,
        suppression_threshold=cache.min_count,
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
)


async def trends(uow: UnitOfWork, cache: PublicationCache, questionnaire_id: str | None = None) -> list[dict]:
    """Per round, question, municipality (and national) total: the estimate and its change since
    the previous round of the same questionnaire, flagged when significant (z-test, 5 %)."""
    rounds = [r for r in await list_rounds(uow) if r.questionnaire_id and (questionnaire_id in (None, r.questionnaire_id))]
    out: list[dict] = []
    previous_by_questionnaire: dict[str, tuple[str, dict]] = {}
    for info in rounds:
        publication = await cache.get_for(uow, info)
        totals = {
            (r["question"], r["kommunekode"]): r
            for r in publication.indicator_rows
            if r["dimension"] == "maalgruppe" and r["level"] == "total"
        }
        previous_round, previous = previous_by_questionnaire.get(info.questionnaire_id, (None, {}))
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
                }
                if value is not None and trend["previous_value"] is not None:
                    change = change_between((trend["previous_value"], trend["previous_se"]), (value, se))
                    trend.update(change=change.difference, change_se=change.se, z=change.z, p_value=change.p_value, significant=change.significant)
                out.append(trend)
        previous_by_questionnaire[info.questionnaire_id] = (info.round_id, totals)
    return out
