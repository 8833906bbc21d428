"""Analytics bench: rebuild from the topics, freshness under load, read latency.

Starts its own embedded PostgreSQL and Tansu, produces a round of 100,000 response.submitted
events (plus sample.drawn strata and invitation.sent), starts the analytics service on a fresh
database and measures:

* replay: the whole round is on the topics first; then the service starts on a fresh database
  and the time until every event is counted is the rebuild (events/s);
* reads: p50/p99 of ``GET /rounds/{id}/indicators`` (one question x dimension) once computed,
  and the time of the first read after a change (the recompute of the round's publication);
* freshness: answers produced at ~200/s for ~30 s into a live round; time from producing a
  response.submitted until the API's response count includes it (p50/p99), and until the
  indicator table's national number of answers to q1 includes it (the rebuilt tables).

The HTTP client runs in the same process and event loop as the service (httpx's ASGI
transport), so read latencies include the client's own cost.

Run: ``.venv/bin/python bench/analytics_replay.py [--responses 100000] [--kommuner 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from services.analytics.config import AnalyticsSettings  # noqa: E402
from services.analytics.domain.answers import answer_code  # noqa: E402
from services.analytics.main import create_app  # noqa: E402
from services.analytics.synthetic import synthetic_round  # noqa: E402
from shared.auth.dev_issuer import DevIssuer  # noqa: E402
from shared.bus import ensure_topics, make_producer, topic_name  # noqa: E402
from shared.db import to_async_url  # noqa: E402
from shared.events import TOPICS, Envelope  # noqa: E402
from shared.testing.local_infra import LocalInfra, local_infra  # noqa: E402
from shared.testing.fixtures import bearer, running_app  # noqa: E402


# httpx's ASGI transport tries ``import sniffio`` on every request; it is not installed, and a
# failed import searches sys.path each time (~1 ms a request here): not the service's cost.
sys.modules.setdefault("sniffio", None)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu() -> float:
    """CPU seconds of this process (service and bench client, all threads; not PostgreSQL's).
    On a shared machine wall-clock figures stretch with the load; CPU seconds do much less."""
    return time.process_time()


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds so far of this process and of its descendants by kind: the publication
    builder (a multiprocessing worker) and the broker. Processes that ended are not counted,
    so take differences over a phase in which none ends. PostgreSQL is not a descendant (the
    embedded server daemonises), so its CPU is not here."""
    import psutil

    out = {"service": 0.0, "builder": 0.0, "broker": 0.0}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            name, cmdline = proc.name(), " ".join(proc.cmdline())
        except psutil.Error:
            continue
        kind = ("service" if proc.pid == me.pid else "builder" if "multiprocessing" in cmdline
                else "broker" if "tansu" in cmdline or "kafka" in name else None)
        if kind:
            out[kind] += times.user + times.system
    return out


def cpu_report(before: dict[str, float], seconds: float) -> str:
    after = cpu_by_kind()
    return ", ".join(f"{k} {(after[k] - before[k]) / seconds:.2f}" for k in after) + " CPU s per s"


async def produce_all(producer, prefix: str, payloads) -> None:
    futures = []
    for p in payloads:
        value = Envelope.wrap(p, source="bench", correlation_id="bench").model_dump_json().encode()
        futures.append(await producer.send(f"{prefix}{p.event_type}", value, key=p.key().encode()))
    await asyncio.gather(*futures)


async def main(args, infra: LocalInfra) -> None:
    issuer = DevIssuer()
    prefix = "bench."
    database_url = infra.database_url
    settings = AnalyticsSettings(
        database_url=database_url, kafka_bootstrap_servers=infra.bootstrap_servers, kafka_topic_prefix=prefix,
        auth_jwks_json=issuer.jwks_json(), log_level="WARNING",
    )
    kommuner = [str(101 + 4 * i) for i in range(args.kommuner)]
    t0 = time.perf_counter()
    # --only-freshness: a token round stands in for the big one (the freshness phase never
    # touches it), so the live-round figures come in a minute instead of three.
    big = synthetic_round("bench-1", kommuner, respondents=200 if args.only_freshness else args.responses, seed=5, invite_factor=(1, 2))
    print(f"generated {len(big.responses)} responses, {len(big.invitations)} invitations, "
          f"{len(big.samples)} strata in {time.perf_counter() - t0:.1f} s", flush=True)

    producer = make_producer(infra.bootstrap_servers, "bench")
    await producer.start()
    token = issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    engine = create_async_engine(to_async_url(database_url))
    # The round is on the topics before the service starts: what follows is a rebuild from them.
    await ensure_topics(infra.bootstrap_servers, [topic_name(prefix, t) for t in TOPICS], partitions=settings.kafka_topic_partitions,
                        replication_factor=settings.kafka_replication_factor)
    t0 = time.perf_counter()
    await produce_all(producer, prefix, big.samples + big.invitations + big.responses)
    total_events = len(big.samples) + len(big.invitations) + len(big.responses)
    print(f"produced {total_events} events in {time.perf_counter() - t0:.1f} s (load average {load()})", flush=True)
    t0 = time.perf_counter()
    async with running_app(create_app(settings)) as client:
        started_in = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), cpu()
        async with engine.connect() as conn:
            while True:
                n = (await conn.execute(sa.text("SELECT coalesce(sum(answered), 0), coalesce(sum(invited), 0) FROM analytics.rate_tally"))).one()
                await conn.commit()
                if n[0] >= len(big.responses) and n[1] >= len(big.invitations):
                    break
                await asyncio.sleep(0.25)
        replay_s, replay_cpu = time.perf_counter() - t0, cpu() - c0
        print(f"replay: {total_events} events ({len(big.responses)} responses) in {replay_s:.1f} s "
              f"= {total_events / replay_s:.0f} events/s, after {started_in:.1f} s start-up; {replay_cpu:.1f} CPU s in this "
              f"process = {total_events / replay_cpu:.0f} events per CPU s (load average {load()})", flush=True)

        if not args.only_freshness:
            await reads(client, token, kommuner=kommuner, n=len(big.responses), count=args.reads)

        await freshness(client, producer, prefix, token, kommuner, args)
    await producer.stop()
    await engine.dispose()


async def reads(client, token: str, *, kommuner: list[str], n: int, count: int) -> None:
    # Reads of a computed publication, and the cost of the first read after a change.
    t0, c0 = time.perf_counter(), cpu()
    r = await client.get("/rounds/bench-1/indicators", params={"question": "q13", "dimension": "maalgruppe"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    recompute, recompute_cpu = time.perf_counter() - t0, cpu() - c0
    lat = []
    c0 = cpu()
    params = [{"question": f"q{1 + i % 13}", "dimension": ("maalgruppe", "gender", "age_band", "duration_band")[i % 4],
               "kommunekode": kommuner[i % len(kommuner)]} for i in range(count)]
    for p in params:
        t = time.perf_counter()
        r = await client.get("/rounds/bench-1/indicators", params=p, headers=bearer(token))
        lat.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200
    reads_cpu = cpu() - c0
    print(f"first read after change (build of the {n}-response round's tables): {recompute * 1000:.0f} ms, "
          f"{recompute_cpu * 1000:.0f} ms CPU", flush=True)
    print(f"aggregate reads ({len(lat)}): p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms; "
          f"{reads_cpu / len(lat) * 1000:.2f} ms CPU per read incl. the client (load average {load()})", flush=True)


async def freshness(client, producer, prefix: str, token: str, kommuner: list[str], args) -> None:
    # Freshness: a live round receiving ~200 answers/s.
    live = synthetic_round("bench-live", kommuner, respondents=int(args.rate * args.seconds), seed=9, invite_factor=(1, 1))
    await produce_all(producer, prefix, live.samples)
    sent_at: list[float] = []
    seen_at: dict[int, float] = {}
    done = asyncio.Event()

    async def send() -> None:
        start = time.perf_counter()
        for i, p in enumerate(live.responses):
            target = start + i / args.rate
            if (delay := target - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            value = Envelope.wrap(p, source="bench", correlation_id="bench").model_dump_json().encode()
            sent_at.append(time.perf_counter())
            await producer.send(f"{prefix}{p.event_type}", value, key=p.key().encode())
        done.set()

    async def poll() -> None:
        last = 0
        while True:
            r = await client.get("/rounds/bench-live/response-rates", headers=bearer(token))
            now = time.perf_counter()
            rows = r.json()["rows"]
            count = (rows[0]["answers"] or 0) if rows else 0
            for i in range(last, count):
                seen_at.setdefault(i, now)
            last = max(last, count)
            if done.is_set() and last >= len(live.responses):
                return
            await asyncio.sleep(0.01)

    # The indicator tables: the national number of answers to q1 (answered, incl. "ved ikke").
    q1_answered = [i for i, p in enumerate(live.responses) if answer_code(p.answers.get("q1")) is not None]
    table_seen_at: dict[int, float] = {}

    async def poll_tables() -> None:
        last = 0
        while True:
            r = await client.get("/rounds/bench-live/indicators", headers=bearer(token),
                                 params={"question": "q1", "dimension": "maalgruppe", "kommunekode": "national", "level": "total"})
            now = time.perf_counter()
            rows = r.json()["rows"] if r.status_code == 200 else []
            count = (rows[0]["n_answers"] or 0) if rows else 0
            for i in range(last, count):
                table_seen_at.setdefault(i, now)
            last = max(last, count)
            if done.is_set() and last >= len(q1_answered):
                return
            await asyncio.sleep(0.05)

    t0, c0, kinds0, load0 = time.perf_counter(), cpu(), cpu_by_kind(), load()
    await asyncio.gather(send(), asyncio.wait_for(poll(), args.seconds + 120), asyncio.wait_for(poll_tables(), args.seconds + 120))
    elapsed, live_cpu = time.perf_counter() - t0, cpu() - c0
    print(f"live phase: {cpu_report(kinds0, elapsed)} (load average before {load0}, after {load()})", flush=True)
    # Responses are counted in whatever order partitions deliver; the k-th counted answer
    # is matched with the k-th sent, which is the fair pairing for a count.
    fresh = [(seen_at[i] - sent_at[i]) * 1000 for i in range(len(sent_at)) if i in seen_at]
    print(f"freshness of the answer count ({len(fresh)} answers at {len(live.responses) / (sent_at[-1] - sent_at[0]):.0f}/s over {elapsed:.0f} s): "
          f"p50 {pct(fresh, 50):.0f} ms, p99 {pct(fresh, 99):.0f} ms; {live_cpu / elapsed:.2f} CPU s per s (load average {load()})", flush=True)
    fresh = [(table_seen_at[k] - sent_at[i]) * 1000 for k, i in enumerate(q1_answered) if k in table_seen_at]
    print(f"freshness of the indicator tables (national q1 answers, polled every 50 ms): "
          f"p50 {pct(fresh, 50):.0f} ms, p99 {pct(fresh, 99):.0f} ms", flush=True)
    stats = getattr(client._transport.app.state.publications, "stats", None)  # noqa: SLF001 - the bench's own app
    if stats:
        print(f"publication builds: {stats}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--kommuner", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--only-freshness", action="store_true",
                        help="skip the 100k replay and the read latencies: a token round, then the live-round freshness")
    os.environ.setdefault("LOG_JSON", "false")
    with local_infra() as infra:
        asyncio.run(main(parser.parse_args(), infra))
