"""A whole round through the public APIs, phase by phase, with the books at the end.

The KL operator defines the round (ingest), 98 case-system deliveries in KMD Momentum's shape
arrive as files (ingest jobs), the operator previews, confirms and draws the allocation
(sampling) and confirms the send dates (ingest); the invitations go through the dev sink
(dispatch), citizens answer on an arrival curve (responses), the operator moves the two
reminder dates to "now" when the answers after the letter before have died down, ends fieldwork
and cuts the final release (analytics). The dashboard's data (the round overview) and the BI API
are read all along.

Each answering citizen loads the answer page (``GET /s/<token>``) and submits through the submit
API (``POST /api/survey/<token>/submission``). About 40 % of the sampled answer: half of them
after the invitation, 30 % after the first reminder, 20 % after the second; after each letter
the answers arrive fastest at once and die down linearly (``peak`` answers per second at first,
zero when the wave's share has answered), but never before the citizen's letter is in the sink.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

from bench.ingest_national import BIRTH_DAYS, FIRST_BIRTH_DAY, HEADER, PROFILE, YDELSER
from bench.rehearsal.stack import PhaseFigures, Sampler, Stack
from shared.app import DATABASE_RETRY_AFTER_SECONDS
from shared.testing.processes import REPO_ROOT
from shared.testing.round import survey_token

REFERENCE_DATE = "2023-08-01"
NATIONAL_CITIZENS = 1_000_000
ANSWER_SHARE = 0.40
WAVE_SHARES = (0.5, 0.3, 0.2)  # of those who answer: after the invitation, reminder 1, reminder 2
# The largest municipalities first (København, Aarhus, Odense, Aalborg, Esbjerg, ...), then the
# rest in kommunekode order; sizes fall off as rank^-0.75 (København ~9 %, Læsø-size ~0.3 %).
LARGEST = ["101", "751", "461", "851", "561", "147", "157", "621", "791", "607", "630", "740", "657", "615", "265"]
QUESTIONS = [f"q{i}" for i in range(1, 14)]
MAX_IN_FLIGHT = 100
MEMO_URL = re.compile(rb"<(?:[A-Za-z0-9]+:)?url>https?://[^<]*/s/([A-Za-z0-9_-]{20,100})</")


def municipalities() -> list[str]:
    with open(REPO_ROOT / "services/dispatch/domain/municipalities.csv", encoding="utf-8") as file:
        codes = [row["kommunekode"] for row in csv.DictReader(file)]
    return [c for c in LARGEST if c in codes] + [c for c in codes if c not in LARGEST]


def delivery_sizes(total: int) -> dict[str, int]:
    codes = municipalities()
    weights = [(rank + 1) ** -0.75 for rank in range(len(codes))]
    scale = total / sum(weights)
    return {code: max(5, round(w * scale)) for code, w in zip(codes, weights, strict=True)}


def write_delivery(path: Path, first: int, rows: int) -> None:
    """A Momentum-shaped extract (bench/ingest_national.py's columns and values) of citizens
    ``first`` .. ``first + rows - 1`` of the nation: CPR numbers unique across deliveries."""
    transitions = [(date(2019, 1, 1) + timedelta(days=d)).strftime("%d-%m-%Y") for d in range(1000)]
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(first, first + rows):
            born = (FIRST_BIRTH_DAY + timedelta(days=i % BIRTH_DAYS)).strftime("%d%m%y")
            passive = "ja" if i % 50 == 0 else "nej"
            phone = f"2{(i * 7919) % 10_000_000:07d}" if i % 10 else ""
            out.write(f"{born}-{i // BIRTH_DAYS:04d};{YDELSER[i % 5]};{transitions[i % 1000]};15-06-2023;nej;{phone};{passive};Testperson {i}\n")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class Latencies:
    """Per phase: latencies (ms) of successful requests and the count of errors, per kind."""

    ok: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    samples: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, phase: str, kind: str, ms: float) -> None:
        self.ok.setdefault((phase, kind), []).append(ms)

    def error(self, phase: str, kind: str, what: str) -> None:
        self.errors[(phase, kind)] += 1
        self.samples.setdefault((phase, kind), [])
        if len(self.samples[(phase, kind)]) < 5:
            self.samples[(phase, kind)].append(what)


@dataclass
class Fault:
    service: str  # a service name, "postgres" or "broker"
    when: str  # what the rehearsal was doing
    seconds: float | None = None
    note: str = ""


class Rehearsal:
    def __init__(self, stack: Stack, *, scale: float, peak: float, faults: set[str], seed: int = 2026,
                 round_id: str | None = None, municipalities: int = 98, release_timeout: float = 1800,
                 phase_timeout: float = 3600, log=print) -> None:
        self.stack = stack
        self.scale = scale
        self.peak = peak
        self.faults = faults  # which faults to inject: service names, "postgres", "broker"
        self.rng = random.Random(seed)
        self.round_id = round_id or f"rehearsal-{int(time.time())}"
        self.log = log
        self.release_timeout = release_timeout
        self.phase_timeout = phase_timeout  # a fieldwork phase waiting longer ends fieldwork early
        self.municipalities = municipalities  # the largest this many take part (a small test: fewer than 98)
        self.operator = stack.operator_token()
        self.bi = stack.bi_token()
        self.phase_name = "start"
        self.phases: list[PhaseFigures] = []
        self.latency = Latencies()
        self.sampler = Sampler(stack)
        self.faults_done: list[Fault] = []
        self.marks: dict[str, float] = {}
        # letters and answers
        self.sampled = 0
        self.seen_files: set[str] = set()
        self.sink_steps: Counter = Counter()
        self.tokens_by_wave: list[deque[str]] = [deque(), deque(), deque()]
        self.assigned: Counter = Counter()
        self.wave_started: list[float | None] = [None, None, None]
        self.launched: Counter = Counter()
        self.answered: set[str] = set()
        self.answered_by_wave: Counter = Counter()
        self.in_flight = 0
        self.rows_valid = 0
        self.dispatch_timeline: list[tuple[float, dict]] = []
        self.retried: set[str] = set()
        self.fault_claimed: set[str] = set()
        self._background: set[asyncio.Task] = set()
        self._last_progress = 0.0

    # --- HTTP --------------------------------------------------------------------------------------

    async def call(self, method: str, service: str, path: str, *, token: str | None = None, ok=(200, 201, 202),
                   attempts: int = 600, **kwargs) -> httpx.Response:
        """An operator's call: retried while the service is down or restarting (a fault), or
        answering 5xx because PostgreSQL is (a fault); any other answer is returned."""
        headers = {"Authorization": f"Bearer {token or self.operator}"}
        for attempt in range(attempts):
            try:
                r = await self.http.request(method, f"{self.stack.url(service)}{path}", headers=headers, **kwargs)
                if r.status_code < 500 or attempt == attempts - 1:
                    return r
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise
            await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def expect(self, method: str, service: str, path: str, status: tuple[int, ...] = (200, 201, 202), **kwargs) -> dict:
        r = await self.call(method, service, path, **kwargs)
        if r.status_code not in status:
            raise RuntimeError(f"{method} {service}{path}: {r.status_code} {r.text[:500]}")
        return r.json()

    async def until(self, check, what: str, timeout: float, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await check()
            if last:
                return last
            await asyncio.sleep(interval)
        raise TimeoutError(f"{what}: not within {timeout:.0f} s (last: {last!r})")

    def progress(self, line: str) -> None:
        """A progress line every 15 s at most (what a wait is waiting for)."""
        if time.monotonic() - self._last_progress >= 15:
            self._last_progress = time.monotonic()
            self.log(f"    {self.phase_name}: {line}")

    def phase(self, name: str) -> None:
        figures = self.sampler.phase(self.phase_name)
        self.phases.append(figures)
        self.log(f"  ... {self.phase_name}: {figures.wall:.1f} s")
        self.phase_name = name

    def fault_soon(self, target: str, when: str) -> None:
        if target in self.faults and target not in self.fault_claimed:
            self._background.add(task := asyncio.create_task(self.fault(target, when)))
            task.add_done_callback(self._background.discard)

    async def fault(self, target: str, when: str) -> None:
        if target not in self.faults or target in self.fault_claimed:
            return
        self.fault_claimed.add(target)
        fault = Fault(target, when)
        self.faults_done.append(fault)
        try:
            if target == "postgres":
                if not self.stack.can_restart_postgres:
                    fault.note = "not restartable here (an external server)"
                    return
                fault.seconds = await asyncio.to_thread(self.stack.restart_postgres)
            elif target == "broker":
                if not self.stack.can_restart_broker:
                    fault.note = "not restartable here (memory-only Tansu, or an external broker)"
                    return
                fault.seconds = await asyncio.to_thread(self.stack.restart_broker)
            else:
                fault.seconds = await asyncio.to_thread(self.stack.kill_and_restart, target)
        finally:
            self.log(f"  fault: {target} {'restarted' if target in ('postgres', 'broker') else 'kill -9, restarted'} "
                     f"({when}){f', healthy again after {fault.seconds:.1f} s' if fault.seconds else ''} {fault.note}")

    # --- the round ----------------------------------------------------------------------------------

    async def run(self) -> dict:
        logging_quiet()
        self.sampler.start()
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10), limits=limits) as self.http:
            try:
                await self._define_and_deliver()
                await self._draw()
                try:
                    await self._fieldwork()
                except TimeoutError as exc:
                    # Something did not happen (a lost event, a stuck sender): end the round anyway
                    # and let the books show what is missing.
                    self.log(f"  fieldwork: {exc}; ending fieldwork now")
                    self.marks["fieldwork_timed_out"] = str(exc)
                await self._end()
                books = await self._books()
            finally:
                self.phase("done")
                self.sampler.stop()
        return books

    async def _define_and_deliver(self) -> None:
        self.phase("deliveries")
        sizes = delivery_sizes(round(NATIONAL_CITIZENS * self.scale))
        sizes = dict(list(sizes.items())[: self.municipalities])
        self.sizes = sizes
        self.log(f"round {self.round_id}: {len(sizes)} municipalities, {sum(sizes.values()):,} citizens in the extracts")
        await self.expect("POST", "ingest", "/rounds", json={
            "round_id": self.round_id, "name": f"Generalprøve {self.round_id}", "reference_date": REFERENCE_DATE,
            "kommuner": [] if len(sizes) == 98 else list(sizes),  # empty: all 98
            # The draw waits for all 98: no deadline. Letters at any hour (the rehearsal may run at night).
            "sending_window": {"start": "00:00:00", "end": "23:59:59.999999"},
        })
        folder = self.stack.work / "extracts"
        folder.mkdir(exist_ok=True)
        first = 0
        files = {}
        for code, rows in sizes.items():
            files[code] = folder / f"{code}.csv"
            write_delivery(files[code], first, rows)
            first += rows
        vendor = self.stack.vendor_token(list(sizes))
        jobs = {}
        for i, (code, path) in enumerate(files.items()):
            if i == len(files) // 2:
                await self.fault("ingest", "deliveries: half the files uploaded, their jobs running")
            jobs[code] = await self._upload(vendor, code, path)
        reports = {}
        while len(reports) < len(jobs):
            for code, job_url in jobs.items():
                if code in reports:
                    continue
                r = await self.call("GET", "ingest", job_url.removeprefix(self.stack.url("ingest")), token=vendor)
                job = r.json() if r.status_code == 200 else None
                if job and job["status"] == "succeeded":
                    reports[code] = job
                elif job and job["status"] not in ("queued", "running"):
                    self.log(f"  delivery {code}: job {job['status']} ({job.get('error')}); uploading again")
                    jobs[code] = await self._upload(vendor, code, files[code])
            if len(reports) >= len(jobs) * 3 // 4:
                await self.fault("sampling", "deliveries: three quarters delivered, the frame being built")
            await asyncio.sleep(1)
        self.rows_valid = sum(job["progress"]["rows_valid"] for job in reports.values())
        rejected = sum(job["progress"]["rows_rejected"] for job in reports.values())
        self.log(f"  ingest: {len(reports)} deliveries, {self.rows_valid:,} rows valid, {rejected} rejected")

        async def frame_complete():
            r = await self.call("GET", "sampling", f"/rounds/{self.round_id}/frame")
            return r.status_code == 200 and r.json()["municipalities"] == len(sizes) and r.json()

        frame = await self.until(frame_complete, "the sampling frame of every municipality", 1800)
        self.log(f"  sampling: frame of {frame['municipalities']} municipalities, "
                 f"{sum(s['population'] for s in frame['strata']):,} eligible")

    async def _upload(self, vendor: str, code: str, path: Path) -> str:
        for _ in range(300):
            try:
                r = await self.http.post(
                    f"{self.stack.url('ingest')}/rounds/{self.round_id}/extracts/{code}/files",
                    params={"reference_date": REFERENCE_DATE, "profile": PROFILE},
                    content=path.read_bytes(),
                    headers={"Authorization": f"Bearer {vendor}", "Content-Type": "text/csv"},
                )
                if r.status_code == 202:
                    return r.json()["status_url"]
                if r.status_code < 500:
                    raise RuntimeError(f"delivery {code}: {r.status_code} {r.text[:300]}")
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"delivery {code}: ingest did not take it")

    async def _draw(self) -> None:
        self.phase("allocation and draw")
        preview = await self.expect("POST", "sampling", f"/rounds/{self.round_id}/allocation", json={})
        await self.expect("POST", "sampling", f"/rounds/{self.round_id}/allocation/confirm")
        await self.fault("sampling", "the draw")  # if the deliveries did not give it its turn
        drawn = await self.expect("POST", "sampling", f"/rounds/{self.round_id}/draws", json={"seed": 2026})
        self.sampled = drawn["sampled"]
        self.log(f"  sampling: allocation of {len(preview.get('strata', []))} strata, drew {self.sampled:,} citizens")

        async def seen_by_ingest():
            r = await self.call("GET", "ingest", f"/rounds/{self.round_id}")
            return r.status_code == 200 and r.json()["phase"] == "sample_drawn"

        await self.until(seen_by_ingest, "ingest to see the draw", 600)

        async def all_planned():
            status = await self.dispatch_status()
            waiting = sum(s["count"] for s in status["steps"] if s["step"] == "invitation")
            return waiting == self.sampled and status.get("invitations_waiting_for_contact", 0) == 0

        await self.until(all_planned, "dispatch to plan every invitation with its contact", 1800)

    async def dispatch_status(self) -> dict:
        return await self.expect("GET", "dispatch", f"/rounds/{self.round_id}/status")

    def steps(self, status: dict) -> Counter:
        counts: Counter = Counter()
        for s in status["steps"]:
            counts[(s["step"], s["status"])] += s["count"]
        return counts

    async def _fieldwork(self) -> None:
        self.phase("invitation wave")
        now = datetime.now(UTC)
        # The reminders far ahead: the operator moves each to "now" once the answers after the
        # letter before have died down (PATCH /rounds/{id}, allowed in fieldwork).
        self.reminders_at = [now + timedelta(days=5), now + timedelta(days=6)]
        await self.expect("POST", "ingest", f"/rounds/{self.round_id}/schedule", json={
            "invitation_at": now.isoformat(), "reminders_at": [t.isoformat() for t in self.reminders_at],
            "fieldwork_ends_at": (now + timedelta(days=14)).isoformat(),
        })
        self.marks["scheduled"] = time.monotonic()
        self.wave_started[0] = time.monotonic()
        self.expected = [max(1, round(self.sampled * ANSWER_SHARE * share)) for share in WAVE_SHARES]
        tasks = [asyncio.create_task(coro) for coro in (self._scan_sink(), self._answers(), self._readers())]
        try:
            await self._invitations()
            self.phase("answers after the invitation")
            await self._wave_done(0)
            await self.fault("responses", "the end of the answers after the invitation")
            for k in (1, 2):
                self.phase(f"reminder {k}")
                reminders = list(self.reminders_at)
                reminders[k - 1] = datetime.now(UTC) + timedelta(seconds=2)
                self.reminders_at = reminders
                await self.expect("PATCH", "ingest", f"/rounds/{self.round_id}",
                                  json={"reminders_at": [t.isoformat() for t in reminders]})
                self.marks[f"reminder_{k}_at"] = time.monotonic()
                self.wave_started[k] = time.monotonic()
                if k == 2:
                    await self.fault("postgres", "reminder 2: letters and answers under way")
                await self._reminders(k)
                await self._wave_done(k)
        finally:
            self.fieldwork_over = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _invitations(self) -> None:
        first_sent = None

        async def all_sent():
            nonlocal first_sent
            status = await self.dispatch_status()
            counts = self.steps(status)
            self.dispatch_timeline.append((time.monotonic(), dict(counts)))
            sent = counts[("invitation", "sent")]
            self.progress(f"invitations {dict((k[1], n) for k, n in counts.items() if k[0] == 'invitation')}, "
                          f"in the sink {self.sink_steps['invitation']}, answered {len(self.answered)}")
            if sent and first_sent is None:
                first_sent = time.monotonic()
            if sent >= self.sampled * 0.3:
                self.fault_soon("dispatch", "invitation wave: 30 % of the letters sent")
            if sent >= self.sampled * 0.5:
                self.fault_soon("broker", "invitation wave: half the letters sent")
            if sent >= self.sampled * 0.6:
                self.fault_soon("analytics", "invitation wave: 60 % of the letters sent, answers arriving")
            # A letter that failed for good is in the books, not waited for.
            ended = sent + counts[("invitation", "failed")] + counts[("invitation", "skipped")]
            return ended >= self.sampled and self.sink_steps["invitation"] >= sent

        await self.until(all_sent, "every invitation sent and in the sink", self.phase_timeout, interval=0.5)
        # A wave quicker than the status polls: the faults due in it come at its end.
        await self.fault("dispatch", "the end of the invitation wave")
        await self.fault("broker", "the end of the invitation wave")
        self.marks["invitations_first"] = first_sent or time.monotonic()
        self.marks["invitations_done"] = time.monotonic()

    async def _reminders(self, k: int) -> None:
        step = f"reminder_{k}"

        async def all_done():
            counts = self.steps(await self.dispatch_status())
            done = sum(counts[(step, status)] for status in ("sent", "skipped", "cancelled", "failed"))
            self.progress(f"{step} {dict((k[1], n) for k, n in counts.items() if k[0] == step)}, in the sink {self.sink_steps[step]}")
            return done >= self.sampled and self.sink_steps[step] >= counts[(step, "sent")]

        await self.until(all_done, f"every {step} sent or skipped", self.phase_timeout, interval=0.5)
        self.marks[f"{step}_done"] = time.monotonic()

    async def _wave_done(self, w: int) -> None:
        async def done():
            self.progress(f"wave {w + 1}: {self.answered_by_wave[w]} of {self.assigned[w]} answered, "
                          f"{len(self.tokens_by_wave[w])} waiting, {self.in_flight} in flight")
            return self.marks.get("invitations_done") and not self.tokens_by_wave[w] and \
                self.answered_by_wave[w] >= self.assigned[w] and not self.in_flight

        await self.until(done, f"the answers after letter {w + 1}", self.phase_timeout, interval=0.5)

    # --- the sink: letters as citizens receive them -------------------------------------------------

    async def _scan_sink(self) -> None:
        folder = self.stack.sink / self.round_id
        while True:
            new = await asyncio.to_thread(self._new_letters, folder)
            for step, token in new:
                self.sink_steps[step] += 1
                if step == "invitation":
                    draw = self.rng.random()
                    if draw < ANSWER_SHARE:
                        wave = 0 if draw < ANSWER_SHARE * WAVE_SHARES[0] else 1 if draw < ANSWER_SHARE * sum(WAVE_SHARES[:2]) else 2
                        self.tokens_by_wave[wave].append(token)
                        self.assigned[wave] += 1
            await asyncio.sleep(1.0)

    def _new_letters(self, folder: Path) -> list[tuple[str, str | None]]:
        """(step, link token) of each new message; the token from an invitation's MeMo action URL."""
        found = []
        for path, step in self._new_files(folder):
            token = None
            if step == "invitation":
                data = path.read_bytes()
                # The action's URL element: "<...url>http://.../s/<token></...url>". Neither "<" nor
                # ":" occurs in the base64 PDF beside it, so this cannot match inside it.
                match = MEMO_URL.search(data)
                token = match.group(1).decode() if match else survey_token(data)
            found.append((step, token))
        return found

    def _new_files(self, folder: Path) -> list[tuple[Path, str]]:
        found = []
        if not folder.exists():
            return found
        for kommune in os.scandir(folder):
            if not kommune.is_dir():
                continue
            for entry in os.scandir(kommune.path):
                if entry.name.startswith(".") or entry.name in self.seen_files:
                    continue
                self.seen_files.add(entry.name)
                parts = entry.name.split(".")  # <invitation>.<step>.<channel>.<ext>
                found.append((Path(entry.path), parts[1] if len(parts) >= 3 else "?"))
        return found

    # --- citizens answering --------------------------------------------------------------------------

    async def _answers(self) -> None:
        running = set()
        while True:
            now = time.monotonic()
            for w in range(3):
                started = self.wave_started[w]
                if started is None:
                    continue
                n = self.expected[w]
                span = 2 * n / self.peak  # the rate falls linearly from peak to zero: n = peak * span / 2
                x = min((now - started) / span, 1.0)
                due = round(n * (1 - (1 - x) ** 2)) if x < 1 else 10**9
                # At most MAX_IN_FLIGHT citizens at once: beyond that the client's own connection
                # pool (httpcore: quadratic in waiting requests) would be what is measured.
                while self.launched[w] < due and self.tokens_by_wave[w] and self.in_flight < MAX_IN_FLIGHT:
                    token = self.tokens_by_wave[w].popleft()
                    self.launched[w] += 1
                    self.in_flight += 1
                    task = asyncio.create_task(self._answer(token, w))
                    running.add(task)
                    task.add_done_callback(running.discard)
            if self.answered_by_wave[0] >= self.expected[0] * 0.3:
                self.fault_soon("responses", "answers after the invitation: 30 % of them in")
            if self.answered_by_wave[1] >= self.expected[1] * 0.5:
                self.fault_soon("analytics", "answers after reminder 1: half of them in")
            await asyncio.sleep(0.02)

    async def _answer(self, token: str, wave: int) -> None:
        """One citizen: the answer page, then the answers. A failure (an error or a service
        down) is counted against the phase and the citizen tries again a little later."""
        phase = self.phase_name
        try:
            t0 = time.perf_counter()
            try:
                page = await self.http.get(f"{self.stack.url('responses')}/s/{token}")
            except httpx.HTTPError as exc:
                return self._retry(token, wave, phase, "page", type(exc).__name__)
            t1 = time.perf_counter()
            if page.status_code == 503 and page.headers.get("retry-after") == str(DATABASE_RETRY_AFTER_SECONDS):
                # "Prøv igen om lidt": the database out of reach (a PostgreSQL restart).
                return self._retry(token, wave, phase, "page", "503 database")
            if page.status_code == 503 and "retry-after" in page.headers:
                # "Your link is being prepared": the letter outran link.issued; told apart from errors.
                return self._retry(token, wave, phase, "page_pending", "503")
            if page.status_code != 200:
                return self._retry(token, wave, phase, "page", str(page.status_code))
            self.latency.add(phase, "page", (t1 - t0) * 1000)
            answers = {q: self.rng.randint(1, 5) for q in QUESTIONS}
            try:
                r = await self.http.post(f"{self.stack.url('responses')}/api/survey/{token}/submission", json={"answers": answers})
            except httpx.HTTPError as exc:
                return self._retry(token, wave, phase, "submit", type(exc).__name__)
            t2 = time.perf_counter()
            if r.status_code == 201 or (r.status_code == 409 and token in self.retried):
                if r.status_code == 201:
                    self.latency.add(phase, "submit", (t2 - t1) * 1000)
                self.answered.add(token)
                self.answered_by_wave[wave] += 1
            else:
                self._retry(token, wave, phase, "submit", f"{r.status_code} {r.text[:120]}")
        finally:
            self.in_flight -= 1

    def _retry(self, token: str, wave: int, phase: str, kind: str, what: str) -> None:
        self.latency.error(phase, kind, what)
        self.retried.add(token)

        async def later():
            await asyncio.sleep(1.0)
            self.tokens_by_wave[wave].appendleft(token)
            self.launched[wave] -= 1

        asyncio.create_task(later())

    # --- the operator's dashboard and the BI tools, read all along ------------------------------------

    async def _readers(self) -> None:
        await asyncio.gather(self._read_overview(), self._read_bi())

    async def _read_overview(self) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                r = await self.http.get(f"{self.stack.url('analytics')}/rounds/{self.round_id}/overview",
                                        headers={"Authorization": f"Bearer {self.operator}"})
                if r.status_code == 200:
                    self.latency.add(self.phase_name, "overview", (time.perf_counter() - t0) * 1000)
                else:
                    self.latency.error(self.phase_name, "overview", str(r.status_code))
            except httpx.HTTPError as exc:
                self.latency.error(self.phase_name, "overview", type(exc).__name__)
            await asyncio.sleep(1.0)

    async def _read_bi(self) -> None:
        kommuner = list(self.sizes)
        paths = [f"/rounds/{self.round_id}/response-rates", f"/rounds/{self.round_id}/indicators?question=q13",
                 f"/rounds/{self.round_id}/indicators?kommunekode={{k}}", f"/rounds/{self.round_id}/response-rates?kommunekode={{k}}"]
        i = 0
        while True:
            path = paths[i % len(paths)].format(k=kommuner[i % len(kommuner)])
            i += 1
            t0 = time.perf_counter()
            try:
                r = await self.http.get(f"{self.stack.url('analytics')}{path}", headers={"Authorization": f"Bearer {self.bi}"})
                if r.status_code == 200:
                    self.latency.add(self.phase_name, "bi", (time.perf_counter() - t0) * 1000)
                    self.marks.setdefault("first_release_read", time.monotonic())
                elif r.status_code == 404:
                    self.latency.add(self.phase_name, "bi_no_release", (time.perf_counter() - t0) * 1000)
                else:
                    self.latency.error(self.phase_name, "bi", f"{r.status_code} {r.text[:120]}")
            except httpx.HTTPError as exc:
                self.latency.error(self.phase_name, "bi", type(exc).__name__)
            await asyncio.sleep(0.1)

    # --- the end ---------------------------------------------------------------------------------------

    async def _end(self) -> None:
        self.phase("end of fieldwork and final release")
        await self.fault("analytics", "the end of fieldwork")
        await self.expect("POST", "ingest", f"/rounds/{self.round_id}/end-fieldwork")

        sent = self.steps(await self.dispatch_status())[("invitation", "sent")]

        async def counted():
            r = await self.call("GET", "analytics", f"/rounds/{self.round_id}/overview")
            total = r.json()["total"] if r.status_code == 200 else None
            self.progress(f"analytics counts {total and total['answers']} answers of {len(self.answered)}, "
                          f"{total and total['invited']} invited of {sent} sent")
            return total if total and total["answers"] >= len(self.answered) and total["invited"] >= sent else None

        try:
            await self.until(counted, "analytics to count every answer and invitation", 600)
        except TimeoutError as exc:
            self.log(f"  {exc}; the books will tell")
        await asyncio.sleep(2.0)  # anything counted twice would show now
        # One call, however long the build takes (a repeated POST would cut another release).
        started = time.monotonic()
        self.release = None
        try:
            for _attempt in range(10):
                r = await self.http.post(f"{self.stack.url('analytics')}/rounds/{self.round_id}/releases", json={"phase": "final"},
                                         headers={"Authorization": f"Bearer {self.operator}"}, timeout=self.release_timeout)
                if r.status_code != 503 or "retry-after" not in r.headers:
                    break
                # Nothing was cut (its database out of reach): again after the time it asks for.
                self.log(f"  analytics: the final release answered 503 ({r.json().get('detail')}); again in {r.headers['retry-after']} s")
                self.marks["final_release_503"] = self.marks.get("final_release_503", 0) + 1
                await asyncio.sleep(float(r.headers["retry-after"]))
        except httpx.TimeoutException:
            self.log(f"  analytics: the final release was not cut within {self.release_timeout:.0f} s")
            return
        if r.status_code != 201:
            raise RuntimeError(f"the final release: {r.status_code} {r.text[:500]}")
        self.release = r.json()
        self.marks["final_release_seconds"] = time.monotonic() - started
        self.log(f"  analytics: final release {self.release['release']} cut in {self.marks['final_release_seconds']:.1f} s")
        if len(self.stack.urls("analytics")) > 1:
            # The other replicas learn of it at their release loop's next look (a build of their
            # own in progress delays that look).
            started = time.monotonic()

            async def everywhere():
                served = [rates.get("release") for rates in await self._rates_per_replica()]
                self.progress(f"analytics replicas serve releases {served}")
                return all(n == self.release["release"] for n in served)

            try:
                await self.until(everywhere, "every analytics replica to serve the final release", 300)
                self.marks["final_release_everywhere_seconds"] = time.monotonic() - started
            except TimeoutError as exc:
                self.log(f"  {exc}; the books will tell")

    async def _rates_per_replica(self) -> list[dict]:
        """``/response-rates`` as each analytics replica serves it."""
        found = []
        for url in self.stack.urls("analytics"):
            try:
                r = await self.http.get(f"{url}/rounds/{self.round_id}/response-rates", headers={"Authorization": f"Bearer {self.bi}"})
                found.append(r.json() if r.status_code == 200 else {})
            except httpx.TransportError:
                found.append({})
        return found

    async def _books(self) -> dict:
        self.phase("books")
        counts = self.steps(await self.dispatch_status())
        overview = (await self.call("GET", "analytics", f"/rounds/{self.round_id}/overview")).json()
        rates = (await self.call("GET", "analytics", f"/rounds/{self.round_id}/response-rates", token=self.bi)).json()
        served = [r.get("release") for r in await self._rates_per_replica()]
        sink_steps = Counter(self.sink_steps)
        for path, step in await asyncio.to_thread(self._new_files, self.stack.sink / self.round_id):
            sink_steps[step] += 1
        double_sends = await asyncio.to_thread(self._double_deliveries)
        dead = await self.stack.dead_letters()
        rows = rates.get("rows", [])
        national = next((row for row in rows if row["kommunekode"] == "national"),
                        {"suppressed": True, "answers": None, "invited": None})
        published = [row for row in rows if row["kommunekode"] != "national" and not row["suppressed"]]
        checks = []

        def check(what: str, held: bool, detail: str) -> None:
            checks.append({"what": what, "held": bool(held), "detail": detail})

        check("every sampled citizen invited exactly once",
              counts[("invitation", "sent")] == self.sampled == sink_steps["invitation"],
              f"sampled {self.sampled:,}, dispatch sent {counts[('invitation', 'sent')]:,}, sink {sink_steps['invitation']:,}")
        for k in (1, 2):
            step = f"reminder_{k}"
            sent, skipped = counts[(step, "sent")], counts[(step, "skipped")]
            check(f"{step}: each citizen once, sent or skipped (answered)",
                  sent + skipped == self.sampled and sent == sink_steps[step],
                  f"sent {sent:,} + skipped {skipped:,} = {sent + skipped:,} of {self.sampled:,}; sink {sink_steps[step]:,}")
        failed = {k: v for k, v in counts.items() if k[1] in ("failed", "sending", "planned", "waiting", "waiting_for_schedule")}
        check("no message failed or left unsent", not failed, f"{failed or 'none'}")
        # A resend after a crash keeps its key (the sink keeps the first file, as Digital Post keeps
        # one message per id): told, not a failure; the counts above are what the citizens got.
        check("messages handed to the sink twice with the same key (a resend after a kill; one file kept)", True,
              f"{len(double_sends)}")
        check("every answer counted exactly once (analytics overview)",
              overview["total"]["answers"] == len(self.answered),
              f"submitted {len(self.answered):,}, overview {overview['total']['answers']:,}")
        check("every invitation counted exactly once (analytics overview)", overview["total"]["invited"] == self.sampled,
              f"sampled {self.sampled:,}, overview invited {overview['total']['invited']:,}")
        check("final release: national row agrees with the answers",
              self.release is not None and rates.get("release") == self.release["release"]
              and all(n == self.release["release"] for n in served) and (national["suppressed"] or (
                  national["answers"] == len(self.answered) and national["invited"] == self.sampled)),
              f"{'no final release; ' if self.release is None else ''}"
              f"release {rates.get('release')} ({rates.get('phase')}"
              f"{f'; served by the replicas: {served}' if len(served) > 1 else ''}), national answers {national['answers']} "
              f"invited {national['invited']}{' (suppressed)' if national['suppressed'] else ''}")
        check("final release: municipalities published add up to no more than the answers, each ≥ 5",
              all(row["answers"] >= 5 for row in published) and sum(row["answers"] for row in published) <= len(self.answered),
              f"{len(published)} municipalities published, {sum(row['answers'] for row in published):,} answers in them")
        check("nothing in a dead-letter topic", not any(dead.values()),
              ", ".join(f"{t} {n}" for t, n in dead.items() if n) or f"{len(dead)} dead-letter topics, all empty")
        return {"checks": checks, "dead_letters": dead, "steps": {f"{a}/{b}": n for (a, b), n in counts.items()}}

    def _double_deliveries(self) -> list[str]:
        """Idempotency keys the dev sink logged as sent more than once, by any dispatch replica
        (the sink keeps the first file, so only the logs tell a second delivery)."""
        sent: Counter = Counter()
        for replica in self.stack.replicas["dispatch"]:
            with open(replica.log_file, encoding="utf-8", errors="replace") as file:
                for line in file:
                    if "dev_sink send key=" in line and "status=sent" in line:
                        sent[line.split("key=", 1)[1].split()[0]] += 1
        return [key for key, n in sent.items() if n > 1]


def logging_quiet() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs URLs at INFO, and URLs carry tokens
