"""The pseudonym has one rule (``services.ingest.domain.pseudonym``) and every path that
computes one agrees with it: the delivery's hot path and a citizen's erasure request give the
same pseudonym for the same CPR number, so an erasure finds the citizen a delivery stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import uuid
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.config import IngestSettings
from services.ingest.domain.pseudonym import PseudonymKey, pseudonym_for
from services.ingest.domain.validation import hmac_sha256_key
from services.ingest.parallel import BlockSettings, ExtractFile, prepared_blocks
from services.ingest.preparation import PreparationSpec
from services.ingest.privacy.service import pseudonyms_for
from shared.events import PopulationPerson

HEADER = "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn;Visitationskategori"
CPRS = ("0101901235", "0202851237", "3112992225")


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=0, max_size=200), cpr=st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_the_pseudonym_is_hmac_sha256_of_the_cpr_number(key, cpr):
    """The specification is RFC 2104 (the standard library's HMAC); keys beyond SHA-256's
    64-byte block are hashed first, shorter ones padded."""
    expected = hmac.new(key, cpr.encode(), hashlib.sha256).hexdigest()
    assert pseudonym_for(cpr, key) == expected
    assert PseudonymKey(key).digest(cpr.encode()).hex() == expected


def _prepared_pseudonyms(tmp_path, key: bytes) -> list[str]:
    lines = [HEADER] + [f"{c[:6]}-{c[6:]};Dagpenge;01-01-2021;15-06-2023;nej;;nej;;" for c in CPRS]
    path = tmp_path / "extract.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = PreparationSpec(
        token=uuid.uuid4().hex, delivery_id=uuid.uuid4(), reference_date=date(2023, 8, 1), mapping_version="v2",
        round_id="r1", pseudonym_key=key, cpr_key=os.urandom(32), cpr_key_id="cpr-1",
        contact_key=os.urandom(32), contact_key_id="contact-1", today=date(2026, 1, 15),
    )

    async def collect():
        persons = []
        async for block in prepared_blocks(ExtractFile(str(path), "momentum"), spec, BlockSettings(1 << 20, 100, 0, 0)):
            assert not block.errors, block.errors
            persons += [PopulationPerson.model_validate_json(p).pseudonym for p in block.persons]
            digests = [block.valid_digests[i : i + 32].hex() for i in range(0, len(block.valid_digests), 32)]
            assert digests == [PopulationPerson.model_validate_json(p).pseudonym for p in block.persons]
        return persons

    return asyncio.run(collect())


def test_a_delivery_and_an_erasure_request_give_the_same_pseudonym(tmp_path):
    key, retired = os.urandom(32), os.urandom(32)
    settings_ = IngestSettings(
        pseudonym_key=base64.b64encode(key).decode(),
        retired_pseudonym_keys=json.dumps({"old": base64.b64encode(retired).decode()}),
    )
    prepared = _prepared_pseudonyms(tmp_path, key)
    assert len(prepared) == len(CPRS)
    for cpr, stored in zip(CPRS, prepared, strict=True):
        # The erasure path, the delivery path and the standard library's HMAC agree.
        assert pseudonyms_for(settings_, cpr)[0] == stored == hmac.new(key, cpr.encode(), hashlib.sha256).hexdigest()
        # A delivery stored under a retired key is found too.
        assert pseudonyms_for(settings_, cpr)[1] == _prepared_pseudonyms(tmp_path, retired)[CPRS.index(cpr)]
    # The duplicate check inside a delivery keys by the same rule.
    assert hmac_sha256_key(key)(CPRS[0]).hex() == prepared[0]
