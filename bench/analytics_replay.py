"""Analytics bench: rebuild from the topics, cutting a release, read latency, a live round.

Starts its own embedded PostgreSQL and Tansu, produces a round of 100,000 response.submitted
events (plus sample.drawn strata and invitation.sent), starts the analytics service on a fresh
database and measures:

* replay: the whole round is on the topics first; then the service starts on a fresh database
  and the time until every event is counted is the rebuild (events/s);
* release: the KL operator's ``POST /rounds/{id}/releases`` of the whole round (build in the
  worker process, compress, store) and the size of the stored release;
* reads: p50/p99 of ``GET /rounds/{id}/indicators`` (one question x dimension) of the release;
* live round: answers produced at ~200/s for ~30 s, with the release loop set to ``--quiet``
  and ``--interval`` seconds: the service's CPU while answers arrive, the releases cut, and the
  time from the last answer until a release has every answer (the quiet time plus a build).

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
        # No automatic release during the replay (the replay is measured alone); the live phase
        # sets --quiet and --interval.
        publication_release_quiet_seconds=1e9, publication_release_interval_seconds=1e9,
    )
    kommuner = [str(101 + 4 * i) for i in range(args.kommuner)]
    t0 = time.perf_counter()
    # --only-live: a token round stands in for the big one (the live phase never touches it),
    # so the live-round figures come in a minute instead of three.
    big = synthetic_round("bench-1", kommuner, respondents=200 if args.only_live else args.responses, seed=5, invite_factor=(1, 2))
    print(f"generated {len(big.responses)} responses, {len(big.invitations)} invitations, "
          f"{len(big.samples)} strata in {time.perf_counter() - t0:.1f} s", flush=True)

    producer = make_producer(infra.bootstrap_servers, "bench")
    await producer.start()
    token = issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    operator = issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
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

        if not args.only_live:
            await release_and_reads(client, operator, token, engine, kommuner=kommuner, n=len(big.responses), count=args.reads)

        await live_round(client, producer, prefix, token, engine, kommuner, args)
    await producer.stop()
    await engine.dispose()


async def release_and_reads(client, operator: str, token: str, engine, *, kommuner: list[str], n: int, count: int) -> None:
    # The operator's release of the whole round, then reads of it.
    t0, c0 = time.perf_counter(), cpu()
    r = await client.post("/rounds/bench-1/releases", json={"phase": "preliminary"}, headers=bearer(operator))
    assert r.status_code == 201, r.text
    release_s, release_cpu = time.perf_counter() - t0, cpu() - c0
    async with engine.connect() as conn:
        size = (await conn.execute(sa.text("SELECT length(publication), pg_column_size(baseline) FROM analytics.publication_release "
                                           "WHERE round_id = 'bench-1' AND release = :n"), {"n": r.json()["release"]})).one()
    print(f"release of the {n}-response round: {release_s * 1000:.0f} ms, {release_cpu * 1000:.0f} ms CPU in this process "
          f"(the build runs in the worker); stored {size[0] / 1e6:.2f} MB publication, {(size[1] or 0) / 1e3:.0f} kB baseline", flush=True)
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
    print(f"aggregate reads ({len(lat)}): p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms; "
          f"{reads_cpu / len(lat) * 1000:.2f} ms CPU per read incl. the client (load average {load()})", flush=True)


async def live_round(client, producer, prefix: str, token: str, engine, kommuner: list[str], args) -> None:
    # A live round receiving ~200 answers/s; releases as the release loop cuts them.
    live = synthetic_round("bench-live", kommuner, respondents=int(args.rate * args.seconds), seed=9, invite_factor=(1, 1))
    await produce_all(producer, prefix, live.samples)
    sent_at: list[float] = []
    releases = client._transport.app.state.releases  # noqa: SLF001 - the bench's own app
    releases.quiet, releases.interval = args.quiet, args.interval
    before = dict(releases.stats)

    async def send() -> None:
        start = time.perf_counter()
        for i, p in enumerate(live.responses):
            target = start + i / args.rate
            if (delay := target - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            value = Envelope.wrap(p, source="bench", correlation_id="bench").model_dump_json().encode()
            sent_at.append(time.perf_counter())
            await producer.send(f"{prefix}{p.event_type}", value, key=p.key().encode())

    t0, c0, kinds0, load0 = time.perf_counter(), cpu(), cpu_by_kind(), load()
    await send()
    elapsed, live_cpu = time.perf_counter() - t0, cpu() - c0
    print(f"live phase: {cpu_report(kinds0, elapsed)} (load average before {load0}, after {load()})", flush=True)
    print(f"{len(live.responses)} answers at {len(live.responses) / (sent_at[-1] - sent_at[0]):.0f}/s over {elapsed:.0f} s: "
          f"{live_cpu / elapsed:.2f} CPU s per s in this process; releases cut meanwhile: {releases.stats['releases'] - before['releases']:.0f}",
          flush=True)

    async def released_all() -> None:
        # Every answer counted, and a release at the round's version.
        while True:
            async with engine.connect() as conn:
                answered, version = (await conn.execute(sa.text(
                    "SELECT (SELECT coalesce(sum(answered), 0) FROM analytics.rate_tally WHERE round_id = 'bench-live'), "
                    "(SELECT version FROM analytics.round_state WHERE round_id = 'bench-live')"))).one()
            listed = (await client.get("/rounds/bench-live/releases", headers=bearer(token))).json()
            if answered == len(live.responses) and listed and listed[-1]["version"] == version:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(released_all(), args.quiet + args.seconds + 120)
    print(f"last answer to a release with every answer: {(time.perf_counter() - sent_at[-1]) * 1000:.0f} ms "
          f"(quiet {args.quiet:g} s); release builds so far: {releases.stats}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--kommuner", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--quiet", type=float, default=2.0, help="publication_release_quiet_seconds of the service")
    parser.add_argument("--interval", type=float, default=10.0, help="publication_release_interval_seconds of the service")
    parser.add_argument("--only-live", action="store_true",
                        help="skip the 100k replay, the release and the read latencies: a token round, then the live round")
    os.environ.setdefault("LOG_JSON", "false")
    with local_infra() as infra:
        asyncio.run(main(parser.parse_args(), infra))
