"""Plan and send a national round through the dispatch service, to the dev sink.

Starts its own embedded PostgreSQL and Tansu, runs the dispatch app in-process (render pool of
2 processes, MeMo validated once per letter shape), produces the sample as sampling and ingest
now do (98 municipalities): each sample.drawn v2 chunk (no contacts) followed by the
contacts.released that ingest answers it with, and reports planning time, the invitation wave's
messages/s and the reminders'. The sink is emptied as it fills (600,000 MeMo files would be
~40 GB), by a thread that counts the files first.

Where the time goes, two views (the machine may be shared, so wall-clock alone says little):

* per stage, wall seconds summed over batches (the sender's stages overlap: one batch is rendered
  while the previous is sent and recorded);
* CPU seconds per process group (this process: event loop, asyncpg, aiokafka, relay, consumer;
  the render pool; PostgreSQL; Tansu), with the load average next to every figure.

    .venv/bin/python bench/dispatch_national.py [CITIZENS=200000] [REMINDER_INTERVAL_SECONDS=60]
        [--invitations-only] [--render-processes N] [--batch N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dispatch" / "integration"))

from dispatch_harness import make_settings, produce, round_defined, sample, step_statuses  # noqa: E402

from services.dispatch.domain.municipalities import municipalities  # noqa: E402
from services.dispatch.main import create_app  # noqa: E402
from shared.auth.dev_issuer import DevIssuer  # noqa: E402
from shared.crypto import new_key  # noqa: E402
from shared.infra import TansuBroker, start_embedded_postgres  # noqa: E402
from shared.testing.fixtures import running_app  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command, CPU seconds incl. waited-for children) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
        out[int(entry)] = (int(fields[1]), comm, (utime + stime + cutime + cstime) / _TICK)
    return out


def cpu_by_group(pg_data: Path) -> dict[str, float]:
    """CPU seconds so far: this process, its render workers, PostgreSQL (postmaster + backends),
    Tansu."""
    procs = _processes()
    me = os.getpid()
    roots = {me: "dispatch process"}
    pid_file = next(pg_data.rglob("postmaster.pid"), None)
    if pid_file is not None:
        roots[int(pid_file.read_text().split()[0])] = "postgresql"
    groups: dict[str, float] = {}

    def group_of(pid: int) -> str | None:
        seen = 0
        while pid in procs and seen < 50:
            if pid in roots:
                return roots[pid]
            pid, seen = procs[pid][0], seen + 1
        return None

    for pid, (_ppid, comm, cpu) in procs.items():
        group = group_of(pid)
        if group is None:
            continue
        if pid == me:
            cpu = (lambda t: t.user + t.system)(os.times())  # excludes exited children (counted below)
        elif group == "dispatch process":
            group = "tansu" if "tansu" in comm else ("postgresql" if "postgres" in comm else "render pool")
        groups[group] = groups.get(group, 0.0) + cpu
    return groups


class Drain(threading.Thread):
    """Deletes what the sink writes, off the event loop (its own CPU time is reported apart)."""

    def __init__(self, sink: Path) -> None:
        super().__init__(daemon=True)
        self.sink, self.seen, self.cpu = sink, 0, 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sweep()
            self.stopping.wait(1.0)
        self.sweep()

    def sweep(self) -> None:
        t0 = time.thread_time()
        if self.sink.exists():
            # The sink keeps one folder per round and municipality.
            for folder, _dirs, files in os.walk(self.sink):
                for name in files:
                    if not name.startswith("."):
                        try:
                            os.unlink(os.path.join(folder, name))
                            self.seen += 1
                        except FileNotFoundError:
                            pass
        self.cpu += time.thread_time() - t0


def print_breakdown(title: str, stages: dict, cpu: dict[str, float], letters: int, drain_cpu: float) -> None:
    print(f"  {title} ({load()})")
    print("    stage      wall s    items   per item   (sender stages overlap: claim+render run ahead)")
    for stage in ("plan", "release", "claim", "render", "recheck", "send", "record"):
        if stage in stages:
            seconds, items, _calls = stages[stage]
            per = f"{seconds / items * 1e3:7.3f} ms" if items else "        -"
            print(f"    {stage:<8} {seconds:8.1f} {items:9d}  {per}")
    total = sum(cpu.values())
    print(f"    CPU s by process (drain thread {drain_cpu:.1f} s subtracted from this process):")
    for group, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        if group == "dispatch process":
            seconds -= drain_cpu
        print(f"      {group:<18} {seconds:8.1f} s  {seconds / max(letters, 1) * 1e3:6.3f} ms per letter")
    print(f"      {'all':<18} {total - drain_cpu:8.1f} s  {(total - drain_cpu) / max(letters, 1) * 1e3:6.3f} ms per letter"
          f"  (2 cores: {2e3 / max((total - drain_cpu) / max(letters, 1) * 1e3, 1e-9):.0f} letters/s if CPU-bound)")


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


async def main(args) -> None:
    citizens, interval = args.citizens, args.interval
    logging.disable(logging.INFO)
    base = Path(tempfile.mkdtemp(prefix="bbdisp-"))
    base.chmod(0o755)
    server, url = start_embedded_postgres(base / "pg", database="bench")
    broker = TansuBroker(log_file=base / "tansu.log").start()
    env = {
        "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "KAFKA_TOPIC_PREFIX": "bench.",
        "CONTACT_KEYS": f'{{"contact-1": "{new_key()}"}}', "CONTACT_ACTIVE_KEY_ID": "contact-1", "LINK_KEY": new_key(),
        "DEV_SINK_DIR": str(Path(args.sink_dir or base) / f"sink-{os.getpid()}"), "LOG_JSON": "true", "AUTH_JWKS_JSON": DevIssuer().jwks_json(),
    }
    reminder_count = 0 if args.invitations_only else 2
    settings = make_settings(env, render_processes=args.render_processes, memo_validate_all=False,
                             sender_batch_size=args.batch, send_concurrency=64, reminder_count=reminder_count,
                             reminder_interval_days=interval / 86400, sender_interval_seconds=0.05,
                             survey_base_url="https://svar.borgerblik.dk/s/", log_level="WARNING")
    codes = list(municipalities())
    per = citizens // len(codes)
    sizes = [per + (1 if i < citizens - per * len(codes) else 0) for i in range(len(codes))]
    t0 = time.perf_counter()
    events = []
    for code, size in zip(codes, sizes, strict=True):
        draw_id, starts = uuid.uuid4(), range(0, size, 1000)
        for chunk_no, start in enumerate(starts):
            chunk = sample(env, "national", code, min(1000, size - start), draw_id=draw_id, chunk_no=chunk_no,
                           chunk_count=len(starts))
            events.extend(chunk.events)  # the chunk, then ingest's answer (dispatch may read them either way round)
    print(f"synthetic sample: {citizens} citizens in {len(events) // 2} chunks, each with its contacts.released "
          f"({time.perf_counter() - t0:.1f} s); "
          f"batch {args.batch}, render processes {args.render_processes}; {load()}")

    app = create_app(settings)
    drain = Drain(Path(env["DEV_SINK_DIR"]))
    marks: dict[str, float] = {}
    steps = ["invitation"] + ([] if args.invitations_only else ["reminder_1", "reminder_2"])
    try:
        async with running_app(app):
            drain.start()
            cpu0 = cpu_by_group(base / "pg")
            t_start = time.perf_counter()
            producer = asyncio.create_task(produce(env, round_defined("national"), *events))
            stages = app.state.stages
            # Progress from the service's own counters (committed results; a query over 600,000
            # steps every half second would cost PostgreSQL more than the bench measures).
            next_report = 30.0
            while len(marks) < len(steps) + 2:
                now = time.perf_counter() - t_start
                if now >= next_report:  # progress, so a run cut short still says something
                    next_report += 30.0
                    sent = stages.counts.get("sent.invitation.letter", 0)
                    cpu = sum(diff(cpu_by_group(base / "pg"), cpu0).values()) - drain.cpu
                    print(f"  {now:6.0f} s: planned {stages.items.get('plan', 0)}, contacts released "
                          f"{stages.items.get('release', 0)}, invitations sent {sent} "
                          f"({sent / now:.0f}/s), CPU {cpu:.0f} s ({cpu / max(sent, 1) * 1e3:.2f} ms per letter sent); "
                          f"{load()}", flush=True)
                if "planned" not in marks and stages.items.get("plan", 0) >= citizens:
                    marks["planned"] = now
                if "released" not in marks and stages.items.get("release", 0) >= citizens:
                    marks["released"] = now
                for step in steps:
                    if step not in marks and stages.counts.get(f"sent.{step}.letter", 0) >= citizens:
                        marks[step] = now
                        print(f"  {step}: all {citizens} sent at {now:.1f} s ({load()})")
                        if step == "invitation":
                            wave_stages = stages.snapshot()
                            wave_cpu = diff(cpu_by_group(base / "pg"), cpu0)
                            wave_drain = drain.cpu
                await asyncio.sleep(0.25)
            counts = await step_statuses(app, "national")  # what the database says, once
            for step in steps:
                assert counts[(step, "letter", "sent")] == citizens, counts
            failed = sum(v for (s, c, st), v in counts.items() if st == "failed")
            if failed:
                raise SystemExit(f"{failed} failed steps")
            await producer
            all_cpu = diff(cpu_by_group(base / "pg"), cpu0)
            all_stages = app.state.stages.snapshot()
        drain.stopping.set()
        drain.join()
    finally:
        broker.stop()
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(env["DEV_SINK_DIR"], ignore_errors=True)
    wave = marks["invitation"]
    print(f"planned {len(steps) * citizens} steps (all chunks consumed) by {marks['planned']:.1f} s, "
          f"every contact released by {marks['released']:.1f} s")
    print(f"invitation wave: {citizens} letters in {wave:.1f} s from the first sample.drawn = {citizens / wave:.0f} messages/s"
          f" (target: 200,000 in < 300 s, i.e. >= 667/s); {load()}")
    print_breakdown("invitation wave, planning included", wave_stages, wave_cpu, citizens, wave_drain)
    if not args.invitations_only:
        end = marks["reminder_2"]
        print(f"reminder_1 wave finished {marks['reminder_1']:.1f} s, reminder_2 {end:.1f} s; "
              f"{3 * citizens} messages total, {3 * citizens / end:.0f} messages/s overall; sink files {drain.seen}")
        print_breakdown("all three waves", all_stages, all_cpu, 3 * citizens, drain.cpu)
    else:
        print(f"sink files {drain.seen}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("citizens", type=int, nargs="?", default=200_000)
    parser.add_argument("interval", type=float, nargs="?", default=60.0, help="seconds between reminders")
    parser.add_argument("--invitations-only", action="store_true", help="plan no reminders")
    parser.add_argument("--render-processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000, help="sender batch size")
    parser.add_argument("--sink-dir", help="where the dev sink's directory goes (default: the bench's temporary "
                        "directory; /dev/shm takes file creation on ext4, ~0.4 ms of kernel CPU per file here, out)")
    asyncio.run(main(parser.parse_args()))
