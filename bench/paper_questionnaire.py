"""What a paper questionnaire costs to build: `compose.render_jobs` on the paper channel for N
exempt citizens (open the sealed contact, render the PDF with its QR code, wrap it in a MeMo
message, validated once per shape), in this process. Prints the figures and the load average.

    .venv/bin/python bench/paper_questionnaire.py [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.dispatch.compose import RenderConfig, RenderJob, render_jobs  # noqa: E402
from services.dispatch.domain.plan import PAPER_EXEMPT  # noqa: E402
from services.responses.domain import load_questionnaire  # noqa: E402
from services.responses.printed import offered  # noqa: E402
from shared.answer_id import answer_id_for  # noqa: E402
from shared.crypto import ContactDetails, seal_contact  # noqa: E402


def main(n: int) -> None:
    key, link_key = os.urandom(32), os.urandom(32)
    config = RenderConfig(contact_keyring={"c1": key}, link_key=link_key, survey_base_url="https://svar.borgerblik.dk/s/",
                          sms_via="dev_sink", response_deadline_days=21, default_sender_cvr="29189978",
                          sender_cvr_by_kommune={}, contact_name="jobcentret", contact_phone=None, contact_email=None,
                          privacy_url=None, validate_all=False)
    printed = offered(load_questionnaire("kl_core_v1")).model_dump(mode="json")
    now = datetime.now(UTC)
    jobs = []
    for i in range(n):
        pseudonym = f"p{i:06d}"
        sealed = seal_contact(ContactDetails(cpr="010190-1234", name=f"Testperson Ærø {i}", phone_e164=None,
                                             digital_post_exempt=True),
                              round_id="bench", pseudonym=pseudonym, key_id="c1", key=key)
        jobs.append(RenderJob(key=f"{pseudonym}.reminder_2.{PAPER_EXEMPT}", step="reminder_2", channel=PAPER_EXEMPT,
                              round_id="bench", kommunekode="751", pseudonym=pseudonym, token_nonce=os.urandom(16),
                              contact=sealed.model_dump(), created_at=now, expires_at=now + timedelta(days=35),
                              letter_date=now.date(), answer_id=answer_id_for(i + 1), printed=printed))
    render_jobs(config, jobs[:1])  # warm: fonts, templates, the MeMo schema
    times, sizes = [], []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for job in jobs:
        t0 = time.perf_counter()
        (outcome,) = render_jobs(config, [job])
        times.append(time.perf_counter() - t0)
        assert outcome.message is not None, outcome
        sizes.append(len(outcome.message.memo_xml))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"paper questionnaires: {n}, load avg {os.getloadavg()[0]:.1f}")
    print(f"  per questionnaire: median {statistics.median(times) * 1000:.1f} ms wall, "
          f"{cpu / n * 1000:.1f} ms CPU; MeMo message {statistics.median(sizes) / 1024:.0f} KiB")
    print(f"  {n / wall:.1f} per second in one process")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
