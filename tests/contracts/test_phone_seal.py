"""The phone number sealed for the interviewer's page (shared.crypto.seal_phone): it opens only
for its round and citizen, under the interview key, and is never confused with a sealed contact."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto import ContactDetails, new_key, open_contact, open_phone, seal_contact, seal_phone

KEY = base64.b64decode(new_key())
phones = st.from_regex(r"\+45[2-9][0-9]{7}", fullmatch=True)
names = st.text(st.characters(codec="ascii", categories=("Ll", "Nd")), min_size=1, max_size=12)


@given(phones, names, names)
def test_a_sealed_phone_opens_for_its_round_and_citizen_only(phone, round_id, pseudonym):
    sealed = seal_phone(phone, round_id=round_id, pseudonym=pseudonym, key_id="i1", key=KEY)
    assert phone not in sealed.model_dump_json()
    assert open_phone(sealed, round_id=round_id, pseudonym=pseudonym, keyring={"i1": KEY}) == phone
    with pytest.raises(InvalidTag):
        open_phone(sealed, round_id=round_id, pseudonym=pseudonym + "x", keyring={"i1": KEY})
    with pytest.raises(InvalidTag):
        open_phone(sealed, round_id=round_id + "x", pseudonym=pseudonym, keyring={"i1": KEY})
    with pytest.raises(LookupError):
        open_phone(sealed, round_id=round_id, pseudonym=pseudonym, keyring={"other": KEY})


def test_a_sealed_contact_is_no_sealed_phone_and_back():
    contact = ContactDetails(cpr="0101901234", name="Testperson", phone_e164="+4520304050")
    as_contact = seal_contact(contact, round_id="r", pseudonym="p", key_id="k", key=KEY)
    with pytest.raises(InvalidTag):
        open_phone(as_contact, round_id="r", pseudonym="p", keyring={"k": KEY})
    as_phone = seal_phone("+4520304050", round_id="r", pseudonym="p", key_id="k", key=KEY)
    with pytest.raises(InvalidTag):
        open_contact(as_phone, round_id="r", pseudonym="p", keyring={"k": KEY})
