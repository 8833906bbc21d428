"""A citizen exempt from Digital Post, through the five services as processes, every hop over the
broker: the municipality's extract marks the citizen "Fritaget for Digital Post"; after the draw
the invitation goes as a printed letter (Fysisk Post: a QR code, no mailbox button) and, at the
reminder the round's plan names, the paper questionnaire with its answer id; the paper answers
keyed in against that id count once in analytics, and a second entry is refused.

The round offers three languages (POST /rounds at ingest): every letter, printed or digital,
says in those three, and no other, how to choose the language (round.defined -> responses ->
questionnaire.offered -> dispatch)."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pypdf
import pytest

from services.dispatch.domain.letters import LANGUAGE_CHOICE
from shared.testing.fixtures import bearer
from shared.testing.round import (
    define_round_at,
    request_with_retry,
    schedule_round_at,
    synthetic_rows,
    wait_for,
    wait_for_frame_at,
)

pytestmark = pytest.mark.e2e

KOMMUNE, SIZE = "561", 4
ANSWER_ID = re.compile(r"Svar-id (\d{5}-\d{5})")
HEADER = "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn;Fritaget for Digital Post"


def pdf_text(memo: bytes) -> str:
    """The text of the PDF inside a MeMo letter as the dev sink filed it."""
    content = next(el for el in ElementTree.fromstring(memo).iter() if el.tag.rsplit("}", 1)[-1] == "content")
    reader = pypdf.PdfReader(io.BytesIO(base64.b64decode(content.text or "")))
    return "".join(page.extract_text() for page in reader.pages)


def messages(sink: Path, round_id: str) -> dict[tuple[str, str, str], bytes]:
    """(invitation id, step, channel) -> the message, for the round's files in the dev sink."""
    found = {}
    folder = sink / round_id / KOMMUNE
    if folder.exists():
        for path in folder.glob("*.xml"):
            if not path.name.startswith("."):
                invitation, step, channel = path.stem.split(".")
                found[(invitation, step, channel)] = path.read_bytes()
    return found


def test_an_exempt_citizen_gets_a_paper_questionnaire_whose_answers_count_once(stack, dev_issuer, module_env):
    sink = Path(module_env["DEV_SINK_DIR"])
    admin = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
    vendor = dev_issuer.mint("fasit-dev", ["extracts:write", "extracts:read"], [KOMMUNE])
    operator = bearer(dev_issuer.mint("paper-561", ["responses:paper"], KOMMUNE))
    round_id = f"papir-{datetime.now(UTC):%H%M%S}"
    created = define_round_at(stack["ingest"].url, admin, round_id, kommuner=[KOMMUNE], delivery_deadline=None,
                              languages=["en", "pl"], translation_status="draft")
    assert (created["languages"], created["translation_status"]) == (["en", "pl"], "draft")
    # The round's plan: one reminder, with the paper questionnaire to the citizens exempt from Digital Post.
    r = request_with_retry("PUT", f"{stack['dispatch'].url}/rounds/{round_id}/plan", headers=bearer(admin),
                           json={"reminder_count": 1, "paper_questionnaire": {"reminder": 1}})
    assert r.status_code == 200, r.text

    # The extract as the case system exports it: the first citizen is exempt ("Ja"), one says "nej",
    # the rest leave the cell blank.
    rows = synthetic_rows(SIZE, seed=24)
    exempt_cells = ["Ja", "nej", "", ""]
    lines = [HEADER] + [
        f"{row['cpr']};{row['ydelse']};{datetime.fromisoformat(row['overgangsdato']):%d-%m-%Y};;;{row['telefon'][3:]};nej;"
        f"{row['navn']};{cell}"
        for row, cell in zip(rows, exempt_cells, strict=True)
    ]
    r = request_with_retry("POST", f"{stack['ingest'].url}/rounds/{round_id}/extracts/{KOMMUNE}/files",
                           params={"reference_date": "2023-08-01"}, content=("\r\n".join(lines) + "\r\n").encode("cp1252"),
                           headers={**bearer(vendor), "Content-Type": "text/csv"})
    assert r.status_code == 202, r.text
    job_url = f"{stack['ingest'].url}/jobs/{r.json()['job_id']}"
    job = wait_for(lambda: (j := request_with_retry("GET", job_url, headers=bearer(vendor)).json())["status"]
                   not in ("queued", "running") and j, 60, "the extract job")
    assert job["status"] == "succeeded" and job["errors_total"] == 0 and sum(job["maalgrupper"].values()) == SIZE, job

    wait_for_frame_at(stack["sampling"].url, admin, round_id, SIZE)
    r = request_with_retry("POST", f"{stack['sampling'].url}/rounds/{round_id}/draws",
                           json={"seed": 24, "sample_per_stratum": 1000}, headers=bearer(admin))
    assert r.status_code == 201 and r.json()["sampled"] == SIZE, r.text
    now = datetime.now(UTC)
    reminder_at = now + timedelta(seconds=20)
    schedule_round_at(stack["ingest"].url, admin, round_id, invitation_at=now, reminders_at=[reminder_at])

    # The invitations: the exempt citizen's is the printed letter (a QR code to scan, no mailbox button).
    invitations = wait_for(lambda: len(found := {k[0]: m for k, m in messages(sink, round_id).items() if k[1] == "invitation"})
                           == SIZE and found, 90, "the invitations in the sink")
    printed = {invitation for invitation, memo in invitations.items() if "Scan QR-koden" in pdf_text(memo)}
    assert len(printed) == 1
    [exempt] = printed
    # Every letter says how to choose Danish, English and Polish, the round's languages, and no other.
    for memo in invitations.values():
        text = " ".join(pdf_text(memo).split())
        assert all(LANGUAGE_CHOICE[lang] in text for lang in ("da", "en", "pl")), text
        assert not [lang for lang in ("da-x-let", "uk", "tr", "so") if LANGUAGE_CHOICE[lang] in text], text

    # At the reminder's date: the paper questionnaire to the exempt citizen, and to nobody else.
    def papers():
        found = {k[0]: m for k, m in messages(sink, round_id).items() if k[1:] == ("reminder_1", "paper_exempt")}
        return found or None

    paper = wait_for(papers, 120, "the paper questionnaire in the sink")
    assert datetime.now(UTC) >= reminder_at and set(paper) == {exempt}
    text = pdf_text(paper[exempt])
    answer_id = ANSWER_ID.search(text).group(1)

    def reminders_done():
        reminder = {k[0] for k in messages(sink, round_id) if k[1:] == ("reminder_1", "letter")}
        return len(reminder) == SIZE - 1 and reminder

    # The others get their reminder letter; the exempt citizen's stays home (the questionnaire carries it).
    assert exempt not in wait_for(reminders_done, 60, "the reminder letters")

    # The paper answers, keyed in once against the answer id; a second entry is refused.
    entry = {"answer_id": answer_id, "answers": {"q1": "enig", "q13": "tilfreds"}}
    first = request_with_retry("POST", f"{stack['responses'].url}/api/paper/responses", json=entry, headers=operator)
    assert first.status_code == 201, first.text
    assert first.json()["mode"] == "paper" and first.json()["kommunekode"] == KOMMUNE
    second = request_with_retry("POST", f"{stack['responses'].url}/api/paper/responses", headers=operator,
                                json={**entry, "answers": {"q1": "uenig"}})
    assert second.status_code == 409 and "a second entry is refused and nothing was written" in second.text

    # Analytics counts the paper answer once.
    def counted():
        r = request_with_retry("GET", f"{stack['analytics'].url}/rounds/{round_id}/overview", headers=bearer(admin))
        total = r.json()["total"] if r.status_code == 200 else None
        return total if total and total["answers"] >= 1 else None

    total = wait_for(counted, 90, "analytics to count the paper answer")
    assert total["answers"] == 1
