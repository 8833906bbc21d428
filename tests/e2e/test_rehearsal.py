"""A small national round rehearsal (bench/national_rehearsal.py) with two dispatch replicas and a
kill -9 of one in the middle: the largest municipalities' deliveries, the draw, the invitation
wave and two reminders through the dev sink, answers on the arrival curve, the final release;
the books must balance, and both replicas must have sent letters. Runs with ``make test-kafka`` on
Apache Kafka (and on whatever broker ``--broker`` gives)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from shared.testing.fixtures import create_test_database
from shared.testing.processes import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # bench/ is not an installed package

from bench.rehearsal.play import Rehearsal  # noqa: E402
from bench.rehearsal.report import report  # noqa: E402
from bench.rehearsal.stack import Stack  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.timeout(600)]


@pytest.mark.parametrize("victim", ["dispatch"])
async def test_a_small_rehearsal_with_replicas_and_a_kill_balances_its_books(request, postgres_admin_url, kafka_bootstrap, victim):
    database_url = await create_test_database(postgres_admin_url)
    # Its own directory (logs, sink), kept when the test fails: pytest's keeps only the last runs.
    work = Path(tempfile.mkdtemp(prefix="bb-rehearsal-test-"))
    # No automatic releases: the final release is then the round's first, which the disclosure
    # audit builds in seconds (a release after earlier ones checks every cell's growth since
    # them, minutes at this size on a loaded machine: bench/README.md, the rehearsal).
    stack = Stack.start(work, database_url=database_url, bootstrap_servers=kafka_bootstrap,
                        broker=request.config.getoption("--broker"), log=lambda *_: None,
                        # Two dispatch processes in one consumer group: no letter sent twice, no
                        # deadlock between them, and the survivor takes over the killed one's work.
                        replicas={"dispatch": 2},
                        extra_env={"PUBLICATION_RELEASE_QUIET_SECONDS": "1000000", "PUBLICATION_RELEASE_INTERVAL_SECONDS": "1000000"})
    books = None
    try:
        # The 12 largest municipalities' deliveries at 1/2000 of the national round (~230 citizens),
        # 40 % answering at up to 10 a second.
        rehearsal = Rehearsal(stack, scale=0.0005, peak=10, faults={victim}, municipalities=12)
        try:
            books = await rehearsal.run()
        finally:
            print(report(rehearsal, books))
    finally:
        stack.stop()
    assert [f.service for f in rehearsal.faults_done] == [victim]
    # Both replicas sent letters (the work was shared), none twice under two keys (the books).
    sent_by = [replica.log_file.read_text(errors="replace").count("status=sent") for replica in stack.replicas["dispatch"]]
    assert len(sent_by) == 2 and all(sent_by), sent_by
    assert rehearsal.sampled > 0 and len(rehearsal.answered) > 0
    wrong = [f"{c['what']}: {c['detail']}" for c in books["checks"] if not c["held"]]
    assert not wrong, f"{wrong} (logs in {work})"
    shutil.rmtree(work, ignore_errors=True)
