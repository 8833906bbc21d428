"""Where a round's publication is built: reading its tallies from one snapshot and computing the
suppressed tables (no HTTP, no consumer).

A build is CPU-bound Python, so the service hands builds to :class:`ProcessBuilder`: one worker
process with its own database connection that loads, builds and returns the finished
publication; the service's process only unpickles it (its indicator rows cross as columns, see
publication.IndicatorTable), and the consumer and the reads never wait behind a build for the
interpreter lock. :func:`load_and_build` is the same function either way (the worker calls it,
and so does the in-thread :class:`ThreadBuilder`), so where a build runs never changes its rows
(tested).

A build is given the baseline of the round's previous release (JSON, as stored with it) and
returns the new publication with the baseline the next release is to be built with.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from services.analytics.domain.answers import CODES, answer_code
from services.analytics.domain.calibration import CalibrationSpec, RespondentCell, calibrate, union_figures
from services.analytics.domain.publication import (
    ALL_LEVELS,
    NATIONAL,
    NO_ARM,
    RESPONDENTS,
    Baseline,
    GroupedCounts,
    RateCount,
    RoundPublication,
    StratumInfo,
    build_publication,
)
from services.analytics.models import AnswerTally, FollowupInvited, PopulationCell, RateTally, ResponseFact, RoundCalibration, RoundState, StratumFrame

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundInfo:
    round_id: str
    questionnaire_id: str | None
    first_submitted_at: object
    version: int


_STATE = RoundState.__table__.fullname
_ROUND_INFO = sa.text(f"SELECT round_id, questionnaire_id, first_submitted_at, version FROM {_STATE} WHERE round_id = :r")
_RATES = sa.text(
    f"SELECT stratum, kommunekode, maalgruppe, arm, invited, answered, mode, language FROM {RateTally.__table__.fullname} "
    "WHERE round_id = :r"
)
# The citizens of each adaptive follow-up arm and those of them who answered: rows of their own
# (RateCount.followup), beside the tallies.
_FOLLOWUP = sa.text(
    f"SELECT stratum, kommunekode, maalgruppe, '{NO_ARM}', count(*)::int, (count(*) FILTER (WHERE answered))::int, "
    f"'', '', followup_arm FROM {FollowupInvited.__table__.fullname} WHERE round_id = :r "
    "GROUP BY stratum, kommunekode, maalgruppe, followup_arm"
)
_FRAME = sa.text(f"SELECT stratum, kommunekode, maalgruppe, population FROM {StratumFrame.__table__.fullname} WHERE round_id = :r")
# The tallies grouped per stratum by each band (gender, age band, course duration band), one row
# per (stratum, dimension, level, question) with one column per answer code: six times fewer
# rows to send and decode than one row per code, which was most of a build's loading time. The
# stratum's totals are not a grouping set of their own: every tally has a gender (part of its
# key), so they are the sum of the gender rows, added up here (load_inputs) at a fraction of
# what a fourth grouping set cost PostgreSQL.
_GROUPED = sa.text(
    "SELECT stratum, "
    "CASE WHEN grouping(gender) = 0 THEN 'gender' WHEN grouping(age_band) = 0 THEN 'age_band' "
    "ELSE 'duration_band' END, "
    "coalesce(gender, age_band, duration_band), question, "
    + ", ".join(f"coalesce(sum(n) FILTER (WHERE code = '{code}'), 0)::int" for code in CODES)
    + f" FROM {AnswerTally.__table__.fullname} WHERE round_id = :r "
    "GROUP BY GROUPING SETS ((stratum, gender, question), (stratum, age_band, question), (stratum, duration_band, question))"
)


# Respondents (people who answered the questionnaire, whatever they answered) per stratum by
# each band and in total: the counts suppression decides on. Rows of the grouped counts under
# the question RESPONDENTS, the number in the first code's column.
_RESPONDENTS = sa.text(
    "SELECT stratum, "
    "CASE WHEN grouping(gender) = 0 THEN 'gender' WHEN grouping(age_band) = 0 THEN 'age_band' "
    "WHEN grouping(duration_band) = 0 THEN 'duration_band' ELSE 'total' END, "
    "coalesce(gender, age_band, duration_band, 'total'), count(*)::int "
    f"FROM {ResponseFact.__table__.fullname} WHERE round_id = :r "
    "GROUP BY GROUPING SETS ((stratum, gender), (stratum, age_band), (stratum, duration_band), (stratum))"
)
_NO_CODES = (0,) * (len(CODES) - 1)


def respondent_row(stratum: str, dimension: str, level: str, n: int) -> GroupedCounts:
    return (stratum, dimension, level, RESPONDENTS, (n, *_NO_CODES))


def with_totals(grouped: list[GroupedCounts]) -> list[GroupedCounts]:
    """The grouped tallies plus each (stratum, question)'s "total" row: the sum of its gender rows."""
    totals: dict[tuple[str, str], list[int]] = {}
    for h, dim, _, q, counts in grouped:
        if dim == "gender":
            acc = totals.get((h, q))
            if acc is None:
                totals[(h, q)] = list(counts)
            else:
                for i, n in enumerate(counts):
                    acc[i] += n
    return grouped + [(h, "total", "total", q, tuple(counts)) for (h, q), counts in totals.items()]


async def round_info(uow, round_id: str) -> RoundInfo | None:
    """``uow`` is anything with an async ``session`` (a UnitOfWork, or the worker's snapshot)."""
    row = (await uow.session.execute(_ROUND_INFO, {"r": round_id})).first()
    return None if row is None else RoundInfo(*row)


async def load_rates(uow, round_id: str) -> list[RateCount]:
    rows = (await uow.session.execute(_RATES, {"r": round_id})).all() + (await uow.session.execute(_FOLLOWUP, {"r": round_id})).all()
    return [RateCount(*row) for row in rows]


async def load_grouped(uow, round_id: str) -> list[GroupedCounts]:
    """A round's answer counts in full: the tallies grouped per stratum by each band, with
    totals, and the respondents per stratum by each band and in total (question RESPONDENTS)."""
    rows = (await uow.session.execute(_GROUPED, {"r": round_id})).all()
    respondents = (await uow.session.execute(_RESPONDENTS, {"r": round_id})).all()
    return with_totals([(h, dim, lvl, q, counts) for h, dim, lvl, q, *counts in rows]) + [
        respondent_row(h, dim, lvl, n) for h, dim, lvl, n in respondents
    ]


_COUNTS_STATE = sa.text(f"SELECT version, counts_reset_version FROM {_STATE} WHERE round_id = :r")
_FACTS_SINCE = sa.text(
    f"SELECT stratum, gender, age_band, duration_band, answers FROM {ResponseFact.__table__.fullname} "
    "WHERE round_id = :r AND version > :since"
).columns(
    sa.column("stratum", sa.Text), sa.column("gender", sa.Text), sa.column("age_band", sa.Text),
    sa.column("duration_band", sa.Text), sa.column("answers", ResponseFact.__table__.c.answers.type),
)
_CODE_POSITION = {code: i for i, code in enumerate(CODES)}


@dataclass
class _HeldCounts:
    version: int  # the round version the counts are at
    reset_version: int  # RoundState.counts_reset_version when they were loaded in full
    groups: dict[tuple[str, str, str, str], list[int]]  # (stratum, dimension, level, question) -> per code


class HeldCounts:
    """Rounds' grouped answer counts, kept by a builder from one build to the next.

    Loading a live round's counts in full (the grouping query over its tallies) was a third of
    each build, and at 200 answers/s a build finds only some tens of new answers. So a builder
    keeps each round's counts at the version it last built, and the next build reads only the
    facts counted since (``ResponseFact.version`` above the held version; handlers.py tags
    facts so that these are exactly the answers the tallies gained) and adds them in. The
    counts are loaded in full the first time, after an erasure (which lowers counts no new fact
    shows: ``counts_reset_version``), and if the version ever went back. Either way they equal
    the full load at the snapshot's version (tested), so a build's rows do not depend on it.
    Holds at most ``max_rounds`` rounds, least recently built dropped first.
    """

    def __init__(self, max_rounds: int = 8) -> None:
        self.max_rounds = max_rounds
        self._rounds: OrderedDict[str, _HeldCounts] = OrderedDict()
        self.full_loads = 0
        self.facts_added = 0

    async def grouped(self, uow, round_id: str) -> list[GroupedCounts]:
        """The round's counts at the snapshot ``uow`` reads (REPEATABLE READ)."""
        state = (await uow.session.execute(_COUNTS_STATE, {"r": round_id})).first()
        if state is None:
            self._rounds.pop(round_id, None)
            return []
        version, reset_version = state
        # Taken out while it changes and put back when done: a build that fails half-way (the
        # query, the worker stopped) leaves no half-added counts; the next loads in full.
        held = self._rounds.pop(round_id, None)
        if held is None or held.reset_version != reset_version or held.version > version:
            grouped = await load_grouped(uow, round_id)
            held = _HeldCounts(version, reset_version, {(h, d, lvl, q): list(c) for h, d, lvl, q, c in grouped})
            self.full_loads += 1
        elif held.version < version:
            facts = (await uow.session.execute(_FACTS_SINCE, {"r": round_id, "since": held.version})).all()
            _add_facts(held.groups, facts)
            held.version = version
            self.facts_added += len(facts)
        self._rounds[round_id] = held
        while len(self._rounds) > self.max_rounds:
            self._rounds.popitem(last=False)
        # Copies: the held lists change with the next build while this one may still compute.
        return [(*key, tuple(counts)) for key, counts in held.groups.items()]


def _add_facts(groups: dict[tuple[str, str, str, str], list[int]], facts) -> None:
    """Count facts' answers into grouped counts as the handlers count them into the tallies
    (one per answer with a code), and each fact once as a respondent (RESPONDENTS), under the
    stratum's total and each of its bands."""
    width = len(CODES)
    for stratum, gender, age_band, duration_band, answers in facts:
        slots = (("total", "total"), ("gender", gender), ("age_band", age_band), ("duration_band", duration_band))
        for dimension, level in slots:
            counts = groups.get((stratum, dimension, level, RESPONDENTS))
            if counts is None:
                counts = groups[(stratum, dimension, level, RESPONDENTS)] = [0] * width
            counts[0] += 1
        for question, value in answers.items():
            code = answer_code(value)
            if code is None:
                continue
            i = _CODE_POSITION[code]
            for dimension, level in slots:
                counts = groups.get((stratum, dimension, level, question))
                if counts is None:
                    counts = groups[(stratum, dimension, level, question)] = [0] * width
                counts[i] += 1


async def load_inputs(
    uow, round_id: str, held: HeldCounts | None = None
) -> tuple[dict[str, StratumInfo], list[GroupedCounts], list[RateCount]]:
    s = uow.session
    rates = await load_rates(uow, round_id)
    frame = (await s.execute(_FRAME, {"r": round_id})).all()
    answers = await held.grouped(uow, round_id) if held is not None else await load_grouped(uow, round_id)
    strata: dict[str, StratumInfo] = {}
    respondents: dict[str, int] = {}
    for r in rates:
        if r.followup:
            continue  # the follow-up arms' citizens are counted in the tallies already
        respondents[r.stratum] = respondents.get(r.stratum, 0) + r.answered
        strata.setdefault(r.stratum, StratumInfo(r.kommunekode, r.maalgruppe, 0, None))
    for h, kommunekode, maalgruppe, _ in frame:
        strata.setdefault(h, StratumInfo(kommunekode, maalgruppe, 0, None))
    population = {h: n for h, _, _, n in frame}
    strata = {
        h: StratumInfo(info.kommunekode, info.maalgruppe, respondents.get(h, 0), population.get(h))
        for h, info in strata.items()
    }
    return strata, answers, rates


# Calibration's inputs (domain/calibration.py): respondents per stratum x bands, answers per
# stratum x bands x question x code, the population per cell (frame.margins) and the round's
# calibration settings.
_RESPONDENT_CELLS = sa.text(
    "SELECT stratum, kommunekode, maalgruppe, gender, age_band, duration_band, count(*)::int "
    f"FROM {ResponseFact.__table__.fullname} WHERE round_id = :r GROUP BY 1, 2, 3, 4, 5, 6"
)
_ANSWER_CELLS = sa.text(
    f"SELECT stratum, gender, age_band, duration_band, question, code, n FROM {AnswerTally.__table__.fullname} "
    "WHERE round_id = :r AND n > 0"
)
_POPULATION = sa.text(
    "SELECT kommunekode, maalgruppe, gender, age_band, duration_band, population "
    f"FROM {PopulationCell.__table__.fullname} WHERE round_id = :r"
)
_ROUND_CALIBRATION = sa.text(f"SELECT spec, lonely FROM {RoundCalibration.__table__.fullname} WHERE round_id = :r")
DEFAULT_LONELY = "adjust"


@dataclass
class CalibrationInputs:
    spec: CalibrationSpec
    lonely: str
    cells: list[RespondentCell]
    answers: list[tuple]  # (stratum, gender, age_band, duration_band, question, code, n)
    population: list[tuple]  # (kommunekode, maalgruppe, gender, age_band, duration_band, citizens)


async def round_method(uow, round_id: str) -> tuple[CalibrationSpec, str]:
    """The round's calibration specification and lonely-stratum rule (defaults where unset)."""
    row = (await uow.session.execute(_ROUND_CALIBRATION, {"r": round_id})).first()
    if row is None:
        return CalibrationSpec(), DEFAULT_LONELY
    return CalibrationSpec.from_json(row.spec), row.lonely


async def load_calibration_inputs(uow, round_id: str) -> CalibrationInputs:
    s = uow.session
    spec, lonely = await round_method(uow, round_id)
    cells = [RespondentCell(*row) for row in (await s.execute(_RESPONDENT_CELLS, {"r": round_id})).all()]
    answers = [tuple(row) for row in (await s.execute(_ANSWER_CELLS, {"r": round_id})).all()]
    population = [tuple(row) for row in (await s.execute(_POPULATION, {"r": round_id})).all()]
    return CalibrationInputs(spec, lonely, cells, answers, population)


def calibrated_figures(strata: dict[str, StratumInfo], inputs: CalibrationInputs) -> tuple[dict | None, dict]:
    """(the calibrated figures for build_publication, or None without population counts; the
    method metadata: lonely-stratum rule and the calibration's report)."""
    method: dict = {"lonely_strata": inputs.lonely}
    if not inputs.population or not inputs.cells:
        method["calibration"] = {**inputs.spec.to_json(), "calibrated": [], "problems": [],
                                 "note": "no population counts (frame.margins) for the round: no calibrated figures"}
        return None, method
    cal = calibrate(inputs.cells, {h: info.population for h, info in strata.items()}, inputs.population, inputs.spec)
    position = {(c.stratum, c.gender, c.age_band, c.duration_band): i for i, c in enumerate(cal.cells)}
    code_index = {code: j for j, code in enumerate(CODES)}
    counts: dict[str, np.ndarray] = {}
    for h, gender, age, duration, question, code, n in inputs.answers:
        i = position.get((h, gender, age, duration))
        if i is None or code not in code_index:
            continue
        if question not in counts:
            counts[question] = np.zeros((len(cal.cells), len(CODES)))
        counts[question][i, code_index[code]] += n
    method["calibration"] = cal.report()
    return union_figures(cal, counts, lonely=inputs.lonely, national=NATIONAL, all_levels=ALL_LEVELS), method


class _Session:
    """The minimal unit of work :func:`load_inputs` needs: a session."""

    def __init__(self, session) -> None:
        self.session = session


async def snapshot_inputs(sessions, round_id: str, held: HeldCounts | None = None):
    """Version and tallies from one REPEATABLE READ snapshot, so a publication never claims a
    state it lacks. ``sessions()`` gives an async context manager of a fresh session; ``held``
    the builder's counts kept from its last builds (none: load in full). Returns (info,
    inputs), info None for an unknown round."""
    async with sessions() as session:
        async with session.begin():
            await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            uow = _Session(session)
            info = await round_info(uow, round_id)
            if info is None:
                return None, None
            return info, (*await load_inputs(uow, round_id, held), await load_calibration_inputs(uow, round_id))


@dataclass
class BuildResult:
    info: RoundInfo | None
    publication: RoundPublication | None
    # The baseline the round's next release is to be built with (Baseline.to_json()).
    baseline: dict | None = None
    # The build's cost: the time the snapshot took to load and the CPU seconds (process time of
    # the builder) of the computation.
    load_seconds: float = 0.0
    build_seconds: float = 0.0


def _build(info: RoundInfo, strata, answers, rates, min_count: int, caution_below: int, baseline: dict | None,
           scope: str = "all", calibration: CalibrationInputs | None = None):
    """The pure build: (publication, the baseline of the next release as JSON, which also says
    the release's ``scope``)."""
    calibrated, method = (None, {"lonely_strata": DEFAULT_LONELY}) if calibration is None else calibrated_figures(strata, calibration)
    publication = build_publication(
        info.round_id, info.questionnaire_id, strata, answers, rates, min_count=min_count, caution_below=caution_below,
        baseline=None if baseline is None else Baseline.from_json(baseline), scope=scope,
        calibrated=calibrated if scope != "rates" else None, method=method, lonely=method["lonely_strata"],
    )
    return publication, {**publication.baseline.to_json(), "scope": scope}


async def load_and_build(
    sessions,
    round_id: str,
    min_count: int,
    caution_below: int,
    compute: Callable | None = None,
    held: HeldCounts | None = None,
    baseline: dict | None = None,
    scope: str = "all",
) -> BuildResult:
    """Snapshot the round and build its publication with ``baseline`` (the previous release's,
    None for the first). ``compute`` runs the pure build (default: here); the in-thread
    fallback passes ``asyncio.to_thread``. ``held``: see snapshot_inputs."""
    started = time.perf_counter()
    info, inputs = await snapshot_inputs(sessions, round_id, held)
    if info is None:
        return BuildResult(None, None)
    loaded = time.perf_counter()
    strata, answers, rates, calibration = inputs
    cpu = time.process_time()
    if compute is None:
        publication, following = _build(info, strata, answers, rates, min_count, caution_below, baseline, scope, calibration)
    else:
        publication, following = await compute(
            lambda: _build(info, strata, answers, rates, min_count, caution_below, baseline, scope, calibration)
        )
    return BuildResult(info, publication, following, loaded - started, time.process_time() - cpu)


# -- the worker process -----------------------------------------------------------------------------

_worker: dict = {}


def _worker_init(database_url: str) -> None:
    """Runs once in the worker: its own event loop and a one-connection engine (the service's
    engine and loop cannot cross a process boundary)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from shared.db import make_engine
    from shared.infra import exit_with_parent

    exit_with_parent()  # a killed service leaves no build running
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # A build allocates ~10^5 short-lived objects, nearly all freed by reference counting; with
    # the default thresholds the cyclic collector's passes over them cost ~7 % of a build's CPU
    # (measured). The imports stay out of its way for good (freeze), and collections come ten
    # times less often: cycles (asyncio, SQLAlchemy) are still collected.
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(threshold[0] * 10, *threshold[1:])
    # The worker's loop runs only while it builds, so it never sees an idle connection closed
    # (a PostgreSQL restart) the way the service's loop does (make_engine): a build pings first,
    # three round trips against seconds of work.
    engine = make_engine(database_url, pool_size=1, max_overflow=1, pool_pre_ping=True)
    _worker.update(loop=loop, engine=engine, sessionmaker=async_sessionmaker(engine, expire_on_commit=False), held=HeldCounts())


def _worker_ready() -> bool:
    return True


def _worker_build(round_id: str, min_count: int, caution_below: int, baseline: dict | None, scope: str = "all") -> BuildResult:
    return _worker["loop"].run_until_complete(
        load_and_build(_worker["sessionmaker"], round_id, min_count, caution_below, held=_worker["held"], baseline=baseline, scope=scope)
    )


class ProcessBuilder:
    """Builds publications in one long-lived worker process (spawned by :meth:`start`, which the
    service calls at start-up, or on first use; respawned after it died). One worker: builds of
    different rounds queue rather than take the machine's other core from PostgreSQL and the
    service."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            # spawn, never fork: the service's process has an event loop, threads and open
            # connections that a forked child must not inherit.
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(self._database_url,),
            )
        return self._executor

    def start(self) -> None:
        """Spawn the worker now (its imports take a second or two), so the first build after
        start-up does not wait for it."""
        self._pool().submit(_worker_ready)

    async def build(
        self, round_id: str, min_count: int, caution_below: int, baseline: dict | None = None, scope: str = "all"
    ) -> BuildResult:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                return await loop.run_in_executor(self._pool(), _worker_build, round_id, min_count, caution_below, baseline, scope)
            except concurrent.futures.process.BrokenProcessPool:
                # The worker died (OOM kill, ...): a build is a pure read, so try once more on a
                # fresh worker rather than fail the release waiting for it.
                logger.warning("publication builder process died; starting a new one", extra={"fields": {"attempt": attempt}})
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class ThreadBuilder:
    """The same build on the service's own connection pool, computed in a thread (tests that
    need no process, or a deployment that disables it)."""

    def __init__(self, uow_factory) -> None:
        self._uow_factory = uow_factory
        self._held = HeldCounts()

    @contextlib.asynccontextmanager
    async def _session(self):
        async with self._uow_factory() as uow:
            yield uow.session

    def start(self) -> None:
        pass

    async def build(
        self, round_id: str, min_count: int, caution_below: int, baseline: dict | None = None, scope: str = "all"
    ) -> BuildResult:
        return await load_and_build(
            self._session, round_id, min_count, caution_below, compute=asyncio.to_thread, held=self._held, baseline=baseline,
            scope=scope
        )

    def close(self) -> None:
        pass
