"""Interviews by phone, dispatch's side: a release for a round whose plan offers interviews sends
each citizen's phone number alone, sealed under the interview key, to responses
(interview.phones_released); a round without them sends nothing."""

from __future__ import annotations

import json
import uuid

import pytest

from dispatch_harness import consume_all, contact_key, dispatch_runtime, handle, make_settings, sample
from services.dispatch.handlers import make_handlers
from services.dispatch.models import RoundPlanRow
from shared.crypto import SealedContact, open_contact, open_phone
from shared.settings import parse_keyring

KOMMUNE = "751"


@pytest.fixture
async def runtime(service_env):
    async with dispatch_runtime(service_env) as runtime:
        yield runtime


async def offer_interviews(runtime, round_id: str, offered: bool) -> None:
    async with runtime.uow() as uow:
        uow.session.add(RoundPlanRow(round_id=round_id, kommunekode="*", plan={"phone_interviews": offered}))
        await uow.commit()


async def test_a_round_with_interviews_releases_the_phone_numbers_sealed_and_alone(service_env, runtime):
    handlers = make_handlers(make_settings(service_env))
    round_id = f"phones-{uuid.uuid4().hex[:8]}"
    await offer_interviews(runtime, round_id, True)
    chunk = sample(service_env, round_id, KOMMUNE, 5, no_phone={1}, missing={2})
    for event in chunk.events:
        await handle(runtime, handlers, event)

    [data] = await consume_all(service_env, "interview.phones_released", 1)
    assert data["round_id"] == round_id and data["kommunekode"] == KOMMUNE
    listed = {p["pseudonym"]: SealedContact(**p["phone"]) for p in data["phones"]}
    # Neither the citizen without a phone number nor the one ingest holds no contact for.
    assert set(listed) == {chunk.persons[i].pseudonym for i in (0, 3, 4)}
    interview_keys = parse_keyring(service_env["INTERVIEW_KEYS"])
    key_id, key = contact_key(service_env)
    released = {c.pseudonym: c.contact for c in chunk.release.contacts}
    for pseudonym, sealed in listed.items():
        contact = open_contact(released[pseudonym], round_id=round_id, pseudonym=pseudonym, keyring={key_id: key})
        assert open_phone(sealed, round_id=round_id, pseudonym=pseudonym, keyring=interview_keys) == contact.phone_e164
        # Nothing else of the contact travels, not even sealed: the text holds no CPR number, no name.
        assert contact.cpr not in json.dumps(data) and contact.name not in json.dumps(data)
        assert contact.phone_e164 not in json.dumps(data)
    # Bound to its citizen: one citizen's blob does not open as another's.
    first, second = list(listed)[:2]
    with pytest.raises(Exception):
        open_phone(listed[first], round_id=round_id, pseudonym=second, keyring=interview_keys)


async def test_a_round_without_interviews_releases_no_phone_number(service_env, runtime):
    handlers = make_handlers(make_settings(service_env))
    round_id = f"nophones-{uuid.uuid4().hex[:8]}"
    await offer_interviews(runtime, round_id, False)
    for event in sample(service_env, round_id, KOMMUNE, 3).events:
        await handle(runtime, handlers, event)
    assert await consume_all(service_env, "interview.phones_released", 0, timeout=3) == []


async def test_the_plan_offers_interviews_only_where_the_interview_key_is_set(service_env, dev_issuer):
    from services.dispatch.main import create_app
    from shared.testing.fixtures import bearer, running_app

    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    round_id = f"plan-{uuid.uuid4().hex[:8]}"
    async with running_app(create_app(make_settings(service_env))) as client:
        r = await client.put(f"/rounds/{round_id}/plan", json={"phone_interviews": True}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["default"]["phone_interviews"] is True
        assert (await client.get(f"/rounds/{round_id}/plan", headers=admin)).json()["default"]["phone_interviews"] is True
    # Without the key a round could not release its numbers: refused when the plan is set, not at every release.
    async with running_app(create_app(make_settings(service_env, interview_keys=None, interview_active_key_id=None))) as client:
        r = await client.put(f"/rounds/{round_id}/plan/751", json={"phone_interviews": True}, headers=admin)
        assert r.status_code == 422 and "INTERVIEW_KEYS" in r.text
        assert (await client.put(f"/rounds/{round_id}/plan/751", json={"phone_interviews": False}, headers=admin)).status_code == 200
