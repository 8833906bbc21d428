"""Ingest a synthetic national extract end to end and compare with a bare PostgreSQL COPY.

    .venv/bin/python bench/ingest_national.py              # 1,000,000 rows
    .venv/bin/python bench/ingest_national.py --rows 100000

Starts its own embedded PostgreSQL and Tansu broker, runs the ingest service as a process
(uvicorn, as in production), uploads the CSV, waits until the job has succeeded and the outbox
is empty (every population.received event is on the broker), then COPYs the same file into a
plain table in the same database. Prints rows/s, the service's peak RSS and the ratio to COPY.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.auth.dev_issuer import DevIssuer  # noqa: E402
from shared.crypto import new_key  # noqa: E402
from shared.infra import TansuBroker, free_port, start_embedded_postgres  # noqa: E402
from shared.testing.processes import ServiceProcess  # noqa: E402

HEADER = "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn\n"
YDELSER = ["Dagpenge", "Sygedagpenge", "Kontanthjælp - jobparat", "Kontanthjælp - aktivitetsparat", "Ressourceforløbsydelse - jobafklaringsforløb"]
FIRST_BIRTH_DAY = date(1950, 1, 1)
BIRTH_DAYS = 365 * 40  # born 1950-1989: serials 0000-3999 all mean the 1900s under the century rule


def write_extract(path: Path, rows: int) -> None:
    """Valid synthetic CPR numbers, unique by construction (day of birth x serial)."""
    birth_days = [(FIRST_BIRTH_DAY + timedelta(days=d)).strftime("%d%m%y") for d in range(BIRTH_DAYS)]
    transitions = [(date(2019, 1, 1) + timedelta(days=d)).strftime("%d-%m-%Y") for d in range(1000)]
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        lines = []
        for i in range(rows):
            serial = i // BIRTH_DAYS
            cpr = f"{birth_days[i % BIRTH_DAYS]}-{serial:04d}"
            passive = "ja" if i % 50 == 0 else "nej"
            phone = f"2{(i * 7919) % 10_000_000:07d}" if i % 10 else ""
            lines.append(
                f"{cpr};{YDELSER[i % 5]};{transitions[i % 1000]};15-06-2023;nej;{phone};{passive};Testperson {i}\n"
            )
            if len(lines) == 10_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def scalar(url: str, query: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def bare_copy(url: str, path: Path) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (cpr text, ydelse text, overgangsdato text,"
            " seneste_samtale text, forloeb_afsluttet text, telefon text, passiv text, navn text)"
        )
        started = time.perf_counter()
        await conn.copy_to_table("bench_copy", source=str(path), format="csv", header=True, delimiter=";")
        return time.perf_counter() - started
    finally:
        await conn.close()


def stream_file(path: Path):
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            yield chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bb-ingest-bench-"))
    work.chmod(0o755)  # embedded-postgres may run as another OS user
    extract = work / "national.csv"
    broker = service = server = None
    try:
        started = time.perf_counter()
        write_extract(extract, args.rows)
        size_mb = extract.stat().st_size / 1e6
        print(f"extract     {args.rows:,} rows, {size_mb:,.0f} MB, written in {time.perf_counter() - started:.1f} s")

        server, url = start_embedded_postgres(work / "pg", database="bench")
        broker = TansuBroker(log_file=work / "tansu.log").start()
        issuer = DevIssuer()
        port = free_port()
        env = {
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": "bench.",
            "AUTH_JWKS_JSON": issuer.jwks_json(),
            "PSEUDONYM_KEY": new_key(),
            "CPR_KEYS": json.dumps({"cpr-1": new_key()}),
            "CPR_ACTIVE_KEY_ID": "cpr-1",
            "CONTACT_KEYS": json.dumps({"contact-1": new_key()}),
            "CONTACT_ACTIVE_KEY_ID": "contact-1",
            "UPLOAD_DIR": str(work / "uploads"),
            "JOB_POLL_INTERVAL_SECONDS": "0.1",
            "OUTBOX_POLL_INTERVAL_SECONDS": "0.05",
            "LOG_JSON": "true",
        }
        service = ServiceProcess("ingest", port, env, log_file=work / "ingest.log").start()
        service.wait_healthy(120)
        token = issuer.mint("momentum-dev", ["extracts:write"], ["101"])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}

        with httpx.Client(base_url=service.url, timeout=600) as client:
            t0 = time.perf_counter()
            response = client.post(
                "/rounds/bench-1/extracts/101/files",
                params={"reference_date": "2023-08-01"},
                content=stream_file(extract),
                headers=headers,
            )
            response.raise_for_status()
            t_uploaded = time.perf_counter()
            job_url = response.json()["status_url"]
            while (job := client.get(job_url, headers=headers).json())["status"] in ("queued", "running"):
                time.sleep(0.2)
            t_job = time.perf_counter()
        if job["status"] != "succeeded":
            sys.exit(f"job ended {job['status']}: {job.get('error')}")
        while asyncio.run(scalar(url, "SELECT count(*) FROM ingest.outbox")):
            time.sleep(0.1)
        t_done = time.perf_counter()
        rss = peak_rss_mb(service.process.pid)
        citizens = asyncio.run(scalar(url, "SELECT count(*) FROM ingest.citizen"))

        copy_seconds = asyncio.run(bare_copy(url, extract))
        total = t_done - t0
        print(f"ingest      upload+check {t_uploaded - t0:.1f} s, job {t_job - t_uploaded:.1f} s, outbox drained {t_done - t_job:.1f} s")
        print(f"            {job['progress']}  stored citizens {citizens:,}")
        print(f"end to end  {total:.1f} s = {args.rows / total:,.0f} rows/s; service peak RSS {rss:,.0f} MB")
        print(f"bare COPY   {copy_seconds:.1f} s = {args.rows / copy_seconds:,.0f} rows/s")
        print(f"ratio       {total / copy_seconds:.1f}x the bare COPY (target <= 3x)")
    finally:
        if service is not None:
            service.stop()
        if broker is not None:
            broker.stop()
        if server is not None:
            server.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
