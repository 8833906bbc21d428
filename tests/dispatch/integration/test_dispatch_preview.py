"""The operator's letter preview: a municipality's letter for one step as PDF, before the date,
for a made-up citizen and link, dated by the round's schedule (the running service, a real
broker for round.defined)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pypdf

from dispatch_harness import make_settings, produce, round_defined, wait_for
from services.dispatch.domain.letters import da_date
from services.dispatch.domain.schedule import LOCAL
from services.dispatch.main import create_app
from shared.testing.fixtures import bearer, running_app


def text_of(pdf: bytes) -> str:
    return " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


async def test_preview_per_municipality_and_step(service_env, dev_issuer):
    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    municipal = bearer(dev_issuer.mint("aero", ["rounds:admin"]))  # without kommuner:all
    invitation_at = datetime(2030, 9, 2, 6, 0, tzinfo=UTC)  # 08:00 in Copenhagen
    reminder_at = datetime(2030, 9, 9, 6, 0, tzinfo=UTC)
    ends_at = datetime(2030, 10, 1, tzinfo=LOCAL).astimezone(UTC)
    definition = round_defined("preview", 1, invitation_at=invitation_at, reminders_at=[reminder_at],
                               fieldwork_ends_at=ends_at)
    definition = definition.model_copy(update={"kommuner": ["492", "101"]})
    app = create_app(make_settings(service_env))
    async with running_app(app) as client:
        assert (await client.get("/rounds/preview/preview/492/invitation.pdf", headers=admin)).status_code == 404
        await produce(service_env, definition)

        async def previewed():
            response = await client.get("/rounds/preview/preview/492/invitation.pdf", headers=admin)
            return response.status_code == 200 and response
        invitation = await wait_for(previewed, 30, "the round's definition")
        assert invitation.headers["content-type"] == "application/pdf" and invitation.content.startswith(b"%PDF-")
        text = text_of(invitation.content)
        assert "Eksempel Borgersen" in text and "Ærø" in text
        assert da_date(invitation_at.date()) in text  # dated the invitation date
        assert da_date(datetime(2030, 9, 30).date()) in text  # the last day of fieldwork

        reminder = await client.get("/rounds/preview/preview/101/reminder_1.pdf", headers=admin)
        assert reminder.status_code == 200 and da_date(reminder_at.date()) in text_of(reminder.content)
        paper = await client.get("/rounds/preview/preview/492/reminder_2.pdf?paper=true", headers=admin)
        assert paper.status_code == 200 and "Eksempel Borgersen" in text_of(paper.content)

        assert (await client.get("/rounds/preview/preview/751/invitation.pdf", headers=admin)).status_code == 404
        assert (await client.get("/rounds/preview/preview/492/reminder_3.pdf", headers=admin)).status_code == 422
        assert (await client.get("/rounds/preview/preview/492/invitation.pdf")).status_code == 401
        assert (await client.get("/rounds/preview/preview/492/invitation.pdf", headers=municipal)).status_code == 403
