"""Contract tests for the event envelope and payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.crypto import ContactDetails, SealedContact, new_key, open_contact, seal_contact
from shared.events import REGISTRY, Envelope, EventPayload, InvitationSent, UnknownEventError, json_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "shared" / "schemas"


def invitation(**overrides) -> InvitationSent:
    values = dict(
        round_id="2026-1", kommunekode="751", pseudonym="p" * 64, step="invitation", channel="digital_post",
        maalgruppe="dagpenge", stratum="751:dagpenge", sent_at=datetime(2026, 9, 1, tzinfo=UTC),
    )
    return InvitationSent(**(values | overrides))


def test_envelope_round_trips_through_json():
    envelope = Envelope.wrap(invitation(), source="dispatch", correlation_id="c-1")
    again = Envelope.model_validate_json(envelope.model_dump_json())
    assert again == envelope
    assert again.payload() == invitation()
    assert (again.type, again.version) == ("invitation.sent", 1)


def test_unknown_version_is_refused_not_guessed():
    envelope = Envelope.wrap(invitation(), source="dispatch", correlation_id="c")
    future = envelope.model_copy(update={"version": 99})
    with pytest.raises(UnknownEventError):
        future.payload()


def test_payloads_reject_unknown_fields_and_bad_values():
    with pytest.raises(ValidationError):
        InvitationSent.model_validate(invitation().model_dump() | {"cpr": "0101901234"})
    with pytest.raises(ValidationError):
        invitation(step="reminder_7")


def test_every_event_has_a_topic_and_a_key():
    for (type_, version), model in REGISTRY.items():
        assert model.topic and model.event_type == type_ and model.event_version == version
        assert model.key is not EventPayload.key  # each payload says what keeps its order


def test_published_json_schemas_are_up_to_date():
    """shared/schemas/ is what other languages consume: regenerate with `make schemas`."""
    for name, schema in json_schemas().items():
        path = SCHEMA_DIR / f"{name}.json"
        assert path.exists(), f"missing {path}; run `make schemas`"
        assert json.loads(path.read_text()) == schema, f"{path} is stale; run `make schemas`"
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} == set(json_schemas())


def test_schema_rejects_what_the_model_rejects():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schemas()["invitation.sent.v1"]
    good = json.loads(Envelope.wrap(invitation(), source="dispatch", correlation_id="c").model_dump_json())
    jsonschema.validate(good, schema)
    bad = good | {"data": good["data"] | {"step": "reminder_7"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@given(
    cpr=st.from_regex(r"[0-9]{10}", fullmatch=True),
    name=st.one_of(st.none(), st.text(max_size=40)),
    pseudonym=st.text(alphabet="0123456789abcdef", min_size=8, max_size=64),
)
def test_sealed_contact_opens_only_for_its_round_and_pseudonym(cpr, name, pseudonym):
    key = __import__("base64").b64decode(new_key())
    contact = ContactDetails(cpr=cpr, name=name, phone_e164=None)
    sealed = seal_contact(contact, round_id="r1", pseudonym=pseudonym, key_id="k1", key=key)
    assert cpr not in sealed.model_dump_json()
    assert open_contact(sealed, round_id="r1", pseudonym=pseudonym, keyring={"k1": key}) == contact
    with pytest.raises(Exception):
        open_contact(sealed, round_id="r1", pseudonym=pseudonym + "x", keyring={"k1": key})
    with pytest.raises(Exception):
        open_contact(SealedContact(**(sealed.model_dump() | {"key_id": "k2"})), round_id="r1", pseudonym=pseudonym, keyring={"k1": key})
