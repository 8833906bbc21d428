"""Load the citizen's form and submit answers at a steady rate, against the running service.

Starts embedded PostgreSQL + Tansu and the responses service (uvicorn, its own process(es),
``--workers`` as in production), issues N links through the broker (link.issued, as dispatch
would), then runs an open-loop schedule from separate load-generator processes: citizen i is due
at t0 + i/rate whatever happened to earlier ones, so a slow server shows up as latency, not as a
politely reduced load. Each citizen is one token and its own browser: it loads the last form page
(GET /s/<token>/side/5, which fixes their questionnaire version and sets the CSRF cookie), then
sends it (POST with the CSRF cookie and field, the page's "shown" list and free text to scrub;
303 to /tak).

Latency is measured from the *scheduled* time, not from when the client got round to sending
(no coordinated omission): GET from the citizen's due time, POST from the GET's completion,
"whole submission" from the due time to the POST's answer. The generators are lean (uvloop, raw
HTTP/1.1 over keep-alive connections, a new connection whenever none is idle, never waiting for
one), and print their own send lag and CPU so a slow client cannot hide behind a slow server.

Beside wall-clock figures it prints CPU per submission of the service, PostgreSQL, the broker and
the generators (from /proc), and the load average: on a shared machine wall-clock latency is
distorted, CPU per submission much less.

    .venv/bin/python bench/responses_load.py [--rate 200] [--duration 60] [--workers 2] [--generators 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))

CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
SHOWN = re.compile(rb'name="shown" value="([^"]*)"')
FREE_TEXT = "Ring til mig på 20 30 40 50, hilsen Mette"
logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs URLs at INFO, and URLs carry tokens


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- the load generator (its own process) ---------------------------------------------------------


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection: a browser's, minus everything a browser does besides."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = False

    async def request(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                # Several Set-Cookie headers would be joined; the form sets one cookie.
                headers[name] = headers[name] + b"; " + value.strip() if name in headers else value.strip()
        length = headers.get(b"content-length")
        if length is None:
            raise HttpError("response without content-length")
        body = await self.reader.readexactly(int(length)) if int(length) else b""
        self.used = True
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
            self.reader = None  # type: ignore[assignment]
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle connections are reused; when none is idle a new one is opened (never queued)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Connection] = []
        self.opened = 0

    async def request(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        while self.idle:
            conn = self.idle.pop()
            try:
                result = await conn.request(raw)
            except (ConnectionError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection (as a browser, retry once on a
                # fresh one; uvicorn does this after its keep-alive timeout).
                conn.close()
                continue
            self._release(conn)
            return result
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        conn = Connection(reader, writer)
        result = await conn.request(raw)
        self._release(conn)
        return result

    def _release(self, conn: Connection) -> None:
        if conn.reader is not None:
            self.idle.append(conn)


async def generate(config: dict) -> dict:
    host, port = config["host"], config["port"]
    tokens: list[str] = config["tokens"]
    indices: list[int] = config["indices"]
    rate: float = config["rate"]
    pool = Pool(host, port)
    results: dict = {"get": [], "post": [], "submission": [], "errors": [], "send_lag": []}
    host_header = f"Host: {host}:{port}\r\n".encode()

    async def citizen(token: str, due: float, record: dict) -> None:
        try:
            async with asyncio.timeout(config["timeout"]):
                await visit(token, due, record)
        except TimeoutError:
            record["errors"].append("timeout")

    async def visit(token: str, due: float, record: dict) -> None:
        try:
            record["send_lag"].append(time.perf_counter() - due)
            status, headers, body = await pool.request(
                b"GET /s/" + token.encode() + b"/side/5 HTTP/1.1\r\n" + host_header + b"Accept: text/html\r\n\r\n"
            )
            loaded = time.perf_counter()
            record["get"].append(loaded - due)
            csrf, shown = CSRF.search(body), SHOWN.search(body)
            cookie = re.search(rb"bb_csrf=([^;]+)", headers.get(b"set-cookie", b""))
            if status != 200 or not csrf or not shown or not cookie:
                record["errors"].append(f"GET {status}")
                return
            form = urlencode(
                {"csrf_token": csrf.group(1).decode(), "shown": shown.group(1).decode(), "q15": FREE_TEXT, "action": "submit"}
            ).encode()
            status, headers, _ = await pool.request(
                b"POST /s/" + token.encode() + b"/side/5 HTTP/1.1\r\n" + host_header
                + b"Content-Type: application/x-www-form-urlencoded\r\nCookie: bb_csrf=" + cookie.group(1)
                + b"\r\nContent-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form
            )
            done = time.perf_counter()
            record["post"].append(done - loaded)
            if status != 303 or not headers.get(b"location", b"").endswith(b"/tak"):
                record["errors"].append(f"POST {status}")
                return
            record["submission"].append(done - due)
        except Exception as exc:  # noqa: BLE001 - every failure is an error in the report
            record["errors"].append(type(exc).__name__)

    # Warm-up citizens outside the measurement (connections, the service's caches).
    warm = {"get": [], "post": [], "submission": [], "errors": [], "send_lag": []}
    await asyncio.gather(*(citizen(t, time.perf_counter(), warm) for t in config["warmup_tokens"]))
    # The shared schedule: t0 is wall-clock time agreed with the other generators.
    t0 = time.perf_counter() + (config["t0"] - time.time())
    cpu0 = time.process_time()
    tasks = []
    for i in indices:
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(citizen(tokens[i], due, results)))
    await asyncio.gather(*tasks)
    results["cpu_seconds"] = time.process_time() - cpu0
    results["connections"] = pool.opened
    results["warmup_errors"] = warm["errors"]
    return results


def generator_main(config_file: str) -> None:
    import uvloop

    config = json.loads(Path(config_file).read_text())
    results = uvloop.run(generate(config))
    Path(config["out"]).write_text(json.dumps(results))


# --- CPU accounting from /proc --------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def cpu_seconds(root_pids: list[int]) -> float:
    """utime + stime of these processes and all their descendants (live ones)."""
    tree, total, stack, seen = _children(), 0, list(root_pids), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except OSError:
            continue
        stack.extend(tree.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


def postmaster_pid(pg_dir: Path) -> int | None:
    for pidfile in pg_dir.rglob("postmaster.pid"):
        return int(pidfile.read_text().split()[0])
    return None


# --- the bench ------------------------------------------------------------------------------------


async def issue_links(bootstrap: str, prefix: str, database_url: str, n: int) -> list[str]:
    import asyncpg

    from shared.bus import make_producer
    from shared.events import Envelope
    from tests.responses.integration.responses_helpers import link_issued, new_token

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


async def count_rows(database_url: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return {
            "submitted": await conn.fetchval("SELECT count(*) FROM responses.respondent WHERE status = 'submitted'"),
            "responses": await conn.fetchval("SELECT count(*) FROM responses.response"),
            "outbox_backlog": await conn.fetchval("SELECT count(*) FROM responses.outbox"),
        }
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="submissions per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (production: one per core)")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a citizen counts as an error")
    parser.add_argument("--generate", help=argparse.SUPPRESS)  # internal: run one generator
    args = parser.parse_args()
    if args.generate:
        generator_main(args.generate)
        return

    from shared.auth.dev_issuer import DevIssuer
    from shared.infra import TansuBroker, free_port, start_embedded_postgres
    from shared.testing.processes import ServiceProcess

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
        # uvicorn reads it as --workers: N processes accept on one port (SO_REUSEPORT-free: the
        # master's socket is shared), as the production image runs it.
        "WEB_CONCURRENCY": str(args.workers),
    }
    service = ServiceProcess("responses", free_port(), env, log_file=base / "responses.log")
    service.start()
    generators: list[subprocess.Popen] = []
    try:
        service.wait_healthy(90)
        total = int(args.rate * args.duration)
        warmup = 20 * args.generators
        print(f"issuing {total + warmup} links through the broker ...", flush=True)
        started = time.perf_counter()
        tokens = asyncio.run(issue_links(broker.bootstrap_servers, prefix, admin_url, total + warmup))
        print(f"  consumed in {time.perf_counter() - started:.1f} s", flush=True)
        print(
            f"load: {args.rate:.0f} submissions/s for {args.duration:.0f} s (open loop), {args.workers} service worker(s), "
            f"{args.generators} generator process(es), {os.cpu_count()} CPU(s); load average before: "
            + " ".join(f"{x:.2f}" for x in os.getloadavg()),
            flush=True,
        )
        t0 = time.time() + 3.0 + 0.5 * args.generators  # generators start and warm up before t0
        for g in range(args.generators):
            config = {
                "host": "127.0.0.1",
                "port": service.port,
                "rate": args.rate,
                "t0": t0,
                "tokens": tokens[:total],
                "indices": list(range(g, total, args.generators)),
                "warmup_tokens": tokens[total + 20 * g : total + 20 * (g + 1)],
                "out": str(base / f"gen{g}.json"),
                "timeout": args.timeout,
            }
            (base / f"gen{g}.config.json").write_text(json.dumps(config))
            generators.append(subprocess.Popen([sys.executable, str(HERE), "--generate", str(base / f"gen{g}.config.json")]))
        pg_pid = postmaster_pid(base / "pg")
        roots = {"service": [service.process.pid], "postgres": [pg_pid] if pg_pid else [], "broker": [broker._process.pid] if broker._process else []}
        time.sleep(max(0.0, t0 - time.time()))
        load_before = os.getloadavg()
        cpu_before = {name: cpu_seconds(pids) for name, pids in roots.items()}
        wall0 = time.perf_counter()
        for proc in generators:
            proc.wait()
        elapsed = time.perf_counter() - wall0
        cpu = {name: cpu_seconds(pids) - cpu_before[name] for name, pids in roots.items()}
        load_after = os.getloadavg()
        results: dict = {"get": [], "post": [], "submission": [], "errors": [], "send_lag": [], "cpu_seconds": 0.0, "connections": 0}
        for g in range(args.generators):
            part = json.loads((base / f"gen{g}.json").read_text())
            for key in ("get", "post", "submission", "errors", "send_lag"):
                results[key] += part[key]
            results["cpu_seconds"] += part["cpu_seconds"]
            results["connections"] += part["connections"]
        cpu["generators"] = results["cpu_seconds"]
        rows = asyncio.run(count_rows(admin_url))
        ok = len(results["submission"])
        # CPU is divided by the submissions the service completed (links spent, warm-up excluded),
        # which under overload includes those whose citizen gave up (timeout) before the answer.
        served = max(rows["submitted"] - warmup, 1)
        print(f"  {ok} submissions in {elapsed:.1f} s = {ok / elapsed:.1f}/s; errors: {len(results['errors'])}"
              + (f" {sorted(set(results['errors']))[:5]}" if results["errors"] else ""))
        print(f"  stored: {rows['submitted']} links spent, {rows['responses']} answers; outbox backlog now {rows['outbox_backlog']}")
        print(f"  generators: send lag p99 {pct(results['send_lag'], 99) * 1000:.1f} ms, max {max(results['send_lag']) * 1000:.1f} ms; "
              f"{results['connections']} connections opened")
        print(f"  {'latency from schedule (ms)':<28}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
        for key, label in (("get", "GET form page"), ("post", "POST send (spend + event)"), ("submission", "whole submission")):
            values = results[key]
            print(f"  {label:<28}" + "".join(f"{pct(values, p) * 1000:>8.1f}" for p in (50, 95, 99)) + f"{max(values) * 1000 if values else float('nan'):>8.1f}")
        print(f"  CPU per submission (ms, over {served} spent links): " + ", ".join(f"{name} {seconds / served * 1000:.2f}" for name, seconds in cpu.items())
              + f"; busy cores during the run: {sum(cpu.values()) / elapsed:.2f}")
        print("  load average after: " + " ".join(f"{x:.2f}" for x in load_after))
        p99 = pct(results["post"], 99) * 1000
        target = "MET" if p99 < 100 and pct(results["get"], 99) * 1000 < 100 and not results["errors"] else "NOT MET"
        print(f"  target (GET and POST p99 < 100 ms, zero errors): {target}")
        print(json.dumps({
            "rate": args.rate, "duration": args.duration, "workers": args.workers, "submissions": ok, "errors": len(results["errors"]),
            "get_p50_ms": round(pct(results["get"], 50) * 1000, 1), "get_p99_ms": round(pct(results["get"], 99) * 1000, 1),
            "post_p50_ms": round(pct(results["post"], 50) * 1000, 1), "post_p99_ms": round(p99, 1),
            "submission_p99_ms": round(pct(results["submission"], 99) * 1000, 1),
            "cpu_ms_per_submission": {name: round(seconds / served * 1000, 2) for name, seconds in cpu.items()},
            "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        }))
    finally:
        for proc in generators:
            if proc.poll() is None:
                proc.kill()
        service.stop()
        broker.stop()
        pg.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
