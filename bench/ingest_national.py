"""Ingest a synthetic national extract, shaped as KMD Momentum exports it, end to end and compare
with a bare PostgreSQL COPY.

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
import os
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

# KMD Momentum's shape: its Danish headers, the visitation category in a column of its own next
# to the benefit (uploaded with profile=momentum, classified with the v2 mapping).
PROFILE = "momentum"
HEADER = "CPR-nummer;Ydelse;Visitationskategori;Startdato ydelse;Seneste samtale;Forløb afsluttet;Mobilnummer;Passiv;Navn\n"
YDELSER = [
    "Dagpenge;",
    "Sygedagpenge;",
    "Kontanthjælp;Jobparat",
    "Kontanthjælp;Aktivitetsparat",
    "Ressourceforløbsydelse;Jobafklaringsforløb",
]
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
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    """The service's worker processes (they live only while a job runs)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
    except OSError:
        pass
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, with_children: bool = True) -> float:
    """CPU time of a process, of its reaped children and of its live children (load-independent,
    unlike wall-clock time on a shared machine)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    total = (utime + stime + (cutime + cstime if with_children else 0)) / _TICKS
    if with_children:
        total += sum(cpu_seconds(child) for child in children(pid))
    return total


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg()) + f" on {os.cpu_count()} cores"


def job_timings(log_file: Path) -> dict:
    """The stage timings the service logs when the job ends (JSON log lines)."""
    timings: dict = {}
    with open(log_file, encoding="utf-8", errors="replace") as log:
        for line in log:
            if '"extract job ended"' in line and '"timings"' in line:
                timings = json.loads(line).get("timings", {})
    return timings


async def scalar(url: str, query: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def bare_copy(url: str, path: Path) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (cpr text, ydelse text, visitationskategori text,"
            " overgangsdato text, seneste_samtale text, forloeb_afsluttet text, telefon text, passiv text, navn text)"
        )
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        cpu_before = cpu_seconds(backend, with_children=False)
        started = time.perf_counter()
        await conn.copy_to_table("bench_copy", source=str(path), format="csv", header=True, delimiter=";")
        return time.perf_counter() - started, cpu_seconds(backend, with_children=False) - cpu_before
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
    parser.add_argument("--profile", metavar="SVG", help="record the service and its workers with py-spy (if installed) into SVG")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bb-ingest-bench-"))
    work.chmod(0o755)  # embedded-postgres may run as another OS user
    extract = work / "national.csv"
    broker = service = server = None
    try:
        started = time.perf_counter()
        write_extract(extract, args.rows)
        size_mb = extract.stat().st_size / 1e6
        print(f"extract     {args.rows:,} rows, {size_mb:,.0f} MB, written in {time.perf_counter() - started:.1f} s; {load_average()}")

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

        postmaster = postmaster_pid(work / "pg")
        broker_pid = broker._process.pid if broker._process else 0
        cpu_before = {
            "main": cpu_seconds(service.process.pid, with_children=False),
            "service": cpu_seconds(service.process.pid),
            "postgres": cpu_seconds(postmaster) if postmaster else 0.0,
            "broker": cpu_seconds(broker_pid),
        }
        profiler = None
        if args.profile:
            import subprocess

            profiler = subprocess.Popen(
                ["py-spy", "record", "--subprocesses", "--format", "raw", "-o", args.profile, "--pid", str(service.process.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        with httpx.Client(base_url=service.url, timeout=600) as client:
            # KL's operator defines the round first: ingest takes deliveries only for a defined round.
            operator = issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])
            defined = client.post(
                "/rounds",
                json={"round_id": "bench-1", "name": "Bench", "reference_date": "2023-08-01"},
                headers={"Authorization": f"Bearer {operator}"},
            )
            defined.raise_for_status()
            t0 = time.perf_counter()
            response = client.post(
                "/rounds/bench-1/extracts/101/files",
                params={"reference_date": "2023-08-01", "profile": PROFILE},
                content=stream_file(extract),
                headers=headers,
            )
            response.raise_for_status()
            t_uploaded = time.perf_counter()
            job_url = response.json()["status_url"]
            worker_peaks: dict[int, float] = {}
            while (job := client.get(job_url, headers=headers).json())["status"] in ("queued", "running"):
                for child in children(service.process.pid):
                    worker_peaks[child] = max(worker_peaks.get(child, 0.0), peak_rss_mb(child))
                time.sleep(0.5)  # each status request costs the service CPU (auth, database)
            for child in children(service.process.pid):
                worker_peaks[child] = max(worker_peaks.get(child, 0.0), peak_rss_mb(child))
            t_job = time.perf_counter()
        if job["status"] != "succeeded":
            sys.exit(f"job ended {job['status']}: {job.get('error')}")
        if job["progress"]["rows_rejected"]:
            sys.exit(f"{job['progress']['rows_rejected']} rows rejected: {job['errors'][:3]}")
        outbox = "SELECT (SELECT count(*) FROM ingest.outbox) + (SELECT count(*) FROM ingest.bulk_outbox)"
        while asyncio.run(scalar(url, outbox)):
            time.sleep(0.1)
        t_done = time.perf_counter()
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its file
            profiler.wait(60)
        cpu_main = cpu_seconds(service.process.pid, with_children=False) - cpu_before["main"]
        cpu_ingest = {
            "service": cpu_seconds(service.process.pid) - cpu_before["service"],
            "postgres": (cpu_seconds(postmaster) if postmaster else 0.0) - cpu_before["postgres"],
            "broker": cpu_seconds(broker_pid) - cpu_before["broker"],
        }
        rss = peak_rss_mb(service.process.pid)
        citizens = asyncio.run(scalar(url, "SELECT count(*) FROM ingest.citizen"))

        load_after_ingest = load_average()

        copy_seconds, cpu_copy = asyncio.run(bare_copy(url, extract))  # CPU: the COPY's own backend
        total = t_done - t0
        stages = job_timings(work / "ingest.log")
        workers = [f"{mb:,.0f}" for mb in worker_peaks.values() if mb == mb]
        print(f"ingest      upload+check {t_uploaded - t0:.1f} s, job {t_job - t_uploaded:.1f} s, outbox drained {t_done - t_job:.1f} s")
        if stages:
            seconds = ", ".join(f"{name} {value:.1f}" for name, value in stages.items() if name not in ("events", "event_bytes"))
            print(f"  job stages (s, service side): {seconds}")
            print(
                f"  events    {stages.get('events', 0):,} population.received chunks, "
                f"{stages.get('event_bytes', 0) / 1e6:,.0f} MB of JSON, relayed in {t_done - t_job:.1f} s"
            )
        print(f"            {job['progress']}  stored citizens {citizens:,}")
        print(f"            {job['maalgrupper']}")
        print(f"end to end  {total:.1f} s = {args.rows / total:,.0f} rows/s")
        print(f"memory      service peak RSS {rss:,.0f} MB; worker processes' peak RSS {', '.join(workers) or '-'} MB")
        print(f"bare COPY   {copy_seconds:.1f} s = {args.rows / copy_seconds:,.0f} rows/s")
        print(f"ratio       {total / copy_seconds:.1f}x the bare COPY (target <= 3x)")
        cpu_total = sum(cpu_ingest.values())
        print(
            f"CPU time    ingest {cpu_total:.1f} s (service + workers {cpu_ingest['service']:.1f} of which the "
            f"service's own process {cpu_main:.1f}, PostgreSQL "
            f"{cpu_ingest['postgres']:.1f}, broker {cpu_ingest['broker']:.1f}); bare COPY {cpu_copy:.1f} s "
            f"(its backend); ratio {cpu_total / cpu_copy if cpu_copy else float('nan'):.1f}x, so at best "
            f"{cpu_total / (os.cpu_count() or 1) / cpu_copy if cpu_copy else float('nan'):.1f}x in wall time "
            f"on {os.cpu_count()} idle cores"
        )
        print(f"machine     {load_after_ingest} after the ingest, {load_average()} after the COPY")
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
