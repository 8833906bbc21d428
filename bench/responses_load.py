"""Load the citizen's form and submit answers at a steady rate, against the running service.

Starts embedded PostgreSQL + Tansu and the responses service (uvicorn, its own process), issues
N links through the broker (link.issued, as dispatch would), then runs an open-loop schedule:
citizen i starts at t0 + i/rate whatever happened to earlier ones (so a slow server shows up as
latency, not as a politely reduced load). Each citizen loads the last form page
(GET /s/<token>/side/5, which also fixes their questionnaire version and sets the CSRF cookie),
then sends it (POST with the CSRF token, a satisfaction answer and free text to scrub; 303 to
/tak). Reports p50/p95/p99/max per request and per submission, and errors.

    .venv/bin/python bench/responses_load.py [--rate 200] [--duration 60] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.auth.dev_issuer import DevIssuer  # noqa: E402
from shared.bus import make_producer  # noqa: E402
from shared.events import Envelope  # noqa: E402
from shared.infra import TansuBroker, free_port, start_embedded_postgres  # noqa: E402
from shared.testing.processes import ServiceProcess  # noqa: E402
from tests.responses.integration.responses_helpers import link_issued, new_token  # noqa: E402

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs URLs at INFO, and URLs carry tokens


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def issue_links(bootstrap: str, prefix: str, database_url: str, n: int) -> list[str]:
    tokens = [new_token() for _ in range(n)]
    producer = make_producer(bootstrap, "bench")
    await producer.start()
    try:
        for token in tokens:
            payload = link_issued(token, round_id="bench")
            envelope = Envelope.wrap(payload, source="bench", correlation_id="bench")
            await producer.send(f"{prefix}link.issued", envelope.model_dump_json().encode(), key=payload.key().encode())
        await producer.flush()
    finally:
        await producer.stop()
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        deadline = time.monotonic() + 300
        while (count := await conn.fetchval("SELECT count(*) FROM responses.respondent")) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {count} of {n} links consumed")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return tokens


async def citizen(client: httpx.AsyncClient, token: str, results: dict) -> None:
    started = time.perf_counter()
    try:
        page = await client.get(f"/s/{token}/side/5")
        loaded = time.perf_counter()
        results["get"].append(loaded - started)
        match = CSRF.search(page.text)
        if page.status_code != 200 or not match:
            results["errors"].append(f"GET {page.status_code}")
            return
        csrf = match.group(1)
        sent = await client.post(
            f"/s/{token}/side/5",
            data={"csrf_token": csrf, "shown": "q13,q15", "q15": "Ring til mig på 20 30 40 50, hilsen Mette", "action": "submit"},
            headers={"cookie": f"bb_csrf={csrf}"},
        )
        done = time.perf_counter()
        results["post"].append(done - loaded)
        if sent.status_code != 303 or not sent.headers.get("location", "").endswith("/tak"):
            results["errors"].append(f"POST {sent.status_code}")
            return
        results["submission"].append(done - started)
    except Exception as exc:  # noqa: BLE001 - every failure is an error in the report
        results["errors"].append(type(exc).__name__)


async def run_load(url: str, tokens: list[str], rate: float, duration: float) -> tuple[dict, float]:
    # No shared cookie jar: each citizen is their own browser (cookie sent by hand above).
    jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    results: dict = {"get": [], "post": [], "submission": [], "errors": []}
    total = int(rate * duration)
    async with httpx.AsyncClient(base_url=url, cookies=jar, limits=limits, timeout=30) as client:
        # Warm up connections and caches with a few citizens outside the measurement.
        await asyncio.gather(*(citizen(client, t, {"get": [], "post": [], "submission": [], "errors": []}) for t in tokens[total:total + 20]))
        tasks = []
        t0 = time.perf_counter()
        lag = []
        for i in range(total):
            due = t0 + i / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            lag.append(time.perf_counter() - due)
            tasks.append(asyncio.create_task(citizen(client, tokens[i], results)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    results["schedule_lag_p99"] = pct(lag, 99)
    return results, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="submissions per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bbbench-"))
    base.chmod(0o755)
    pg, admin_url = start_embedded_postgres(base / "pg", database="bench")
    broker = TansuBroker(log_file=base / "tansu.log").start()
    issuer = DevIssuer()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    env = {
        "DATABASE_URL": admin_url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": prefix,
        "AUTH_JWKS_JSON": issuer.jwks_json(),
        "LOG_LEVEL": "WARNING",
        "CONSUMER_BATCH_MAX_RECORDS": "1000",
    }
    service = ServiceProcess("responses", free_port(), env, log_file=base / "responses.log")
    if args.workers > 1:
        os.environ["WEB_CONCURRENCY"] = str(args.workers)  # uvicorn reads it as --workers
    service.start()
    try:
        service.wait_healthy(90)
        n = int(args.rate * args.duration) + 20
        print(f"issuing {n} links through the broker ...", flush=True)
        started = time.perf_counter()
        tokens = asyncio.run(issue_links(broker.bootstrap_servers, prefix, admin_url, n))
        print(f"  consumed in {time.perf_counter() - started:.1f} s", flush=True)
        print(f"load: {args.rate:.0f} submissions/s for {args.duration:.0f} s (open loop), {args.workers} worker(s), {os.cpu_count()} CPU(s)", flush=True)
        results, elapsed = asyncio.run(run_load(service.url, tokens, args.rate, args.duration))
        ok = len(results["submission"])
        print(f"  {ok} submissions in {elapsed:.1f} s = {ok / elapsed:.1f}/s; errors: {len(results['errors'])}"
              + (f" {sorted(set(results['errors']))[:5]}" if results["errors"] else ""))
        print(f"  client schedule lag p99: {results['schedule_lag_p99'] * 1000:.1f} ms")
        print(f"  {'':<28}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  (ms)")
        for key, label in (("get", "GET form page"), ("post", "POST send (spend + event)"), ("submission", "whole submission")):
            values = results[key]
            print(f"  {label:<28}" + "".join(f"{pct(values, p) * 1000:>8.1f}" for p in (50, 95, 99)) + f"{max(values) * 1000 if values else float('nan'):>8.1f}")
        p99 = pct(results["post"], 99) * 1000
        target = "MET" if p99 < 100 and not results["errors"] else "NOT MET"
        print(f"  target (POST p99 < 100 ms, zero errors): {target}")
        print(json.dumps({"rate": args.rate, "duration": args.duration, "submissions": ok, "errors": len(results["errors"]),
                          "post_p50_ms": round(pct(results["post"], 50) * 1000, 1), "post_p99_ms": round(p99, 1),
                          "submission_p99_ms": round(pct(results["submission"], 99) * 1000, 1)}))
    finally:
        service.stop()
        broker.stop()
        pg.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
