"""Plan and send a national round through the dispatch service, to the dev sink.

Starts its own embedded PostgreSQL and Tansu, runs the dispatch app in-process (render pool of
2 processes, MeMo validated once per letter shape), produces the sample as sample.drawn chunks
(98 municipalities), and reports planning time, the invitation wave's messages/s and the
reminders'. The sink is emptied as it fills (600,000 MeMo files would be ~40 GB); files are
counted first.

    .venv/bin/python bench/dispatch_national.py [CITIZENS=200000] [REMINDER_INTERVAL_SECONDS=60]
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dispatch" / "integration"))

from dispatch_harness import make_settings, produce, sample, step_statuses  # noqa: E402

from services.dispatch.domain.municipalities import municipalities  # noqa: E402
from services.dispatch.main import create_app  # noqa: E402
from shared.auth.dev_issuer import DevIssuer  # noqa: E402
from shared.crypto import new_key  # noqa: E402
from shared.infra import TansuBroker, start_embedded_postgres  # noqa: E402
from shared.testing.fixtures import running_app  # noqa: E402


async def drain(sink: Path, seen: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for path in list(sink.iterdir()):
            if not path.name.startswith("."):
                path.unlink(missing_ok=True)
                seen[0] += 1
        await asyncio.sleep(1.0)


async def main(citizens: int, interval: float) -> None:
    logging.disable(logging.INFO)
    base = Path(tempfile.mkdtemp(prefix="bbdisp-"))
    base.chmod(0o755)
    server, url = start_embedded_postgres(base / "pg", database="bench")
    broker = TansuBroker(log_file=base / "tansu.log").start()
    env = {
        "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "KAFKA_TOPIC_PREFIX": "bench.",
        "CONTACT_KEYS": f'{{"contact-1": "{new_key()}"}}', "CONTACT_ACTIVE_KEY_ID": "contact-1", "LINK_KEY": new_key(),
        "DEV_SINK_DIR": str(base / "sink"), "LOG_JSON": "true", "AUTH_JWKS_JSON": DevIssuer().jwks_json(),
    }
    settings = make_settings(env, render_processes=2, memo_validate_all=False, sender_batch_size=1000,
                             send_concurrency=64, reminder_interval_days=interval / 86400,
                             survey_base_url="https://svar.borgerblik.dk/s/", log_level="WARNING")
    codes = list(municipalities())
    per = citizens // len(codes)
    sizes = [per + (1 if i < citizens - per * len(codes) else 0) for i in range(len(codes))]
    t0 = time.perf_counter()
    events = []
    for code, size in zip(codes, sizes, strict=True):
        for chunk_no, start in enumerate(range(0, size, 1000)):
            events.append(sample(env, "national", code, min(1000, size - start), seed=chunk_no))
    print(f"synthetic sample: {citizens} citizens in {len(events)} chunks ({time.perf_counter() - t0:.1f} s)")

    app = create_app(settings)
    seen, stop = [0], asyncio.Event()
    try:
        async with running_app(app):
            drainer = asyncio.create_task(drain(Path(env["DEV_SINK_DIR"]), seen, stop))
            t_start = time.perf_counter()
            await produce(env, *events)
            marks: dict[str, float] = {}
            total = {"invitation": citizens, "reminder_1": citizens, "reminder_2": citizens}
            while len(marks) < 4:
                counts = await step_statuses(app, "national")
                now = time.perf_counter() - t_start
                planned = sum(counts.values())
                if "planned" not in marks and planned >= 3 * citizens:
                    marks["planned"] = now
                for step, n in total.items():
                    if step not in marks and counts[(step, "letter", "sent")] >= n:
                        marks[step] = now
                        print(f"  {step}: all {n} sent at {now:.1f} s")
                failed = sum(v for (s, c, st), v in counts.items() if st == "failed")
                if failed:
                    raise SystemExit(f"{failed} failed steps")
                await asyncio.sleep(1.0)
            stop.set()
            await drainer
    finally:
        broker.stop()
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    wave = marks["invitation"]
    print(f"planned {3 * citizens} steps (all chunks consumed) by {marks['planned']:.1f} s")
    print(f"invitation wave: {citizens} letters in {wave:.1f} s from the first sample.drawn = {citizens / wave:.0f} messages/s"
          f" (target: < 300 s)")
    r1 = marks["reminder_1"] - max(wave, interval)
    print(f"reminder_1 wave finished {marks['reminder_1']:.1f} s, reminder_2 {marks['reminder_2']:.1f} s; "
          f"{3 * citizens} messages total, {3 * citizens / marks['reminder_2']:.0f} messages/s overall; sink files {seen[0]}")
    _ = r1, os


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    asyncio.run(main(n, interval))
