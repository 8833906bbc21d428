"""The BI keys' rules (services/analytics/bi_keys/domain.py): a key never reads more than its
maker, and only reads; its secret is checked against the stored hash only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.analytics.bi_keys import domain
from services.analytics.domain import kommunekode as kommunekoder
from shared.auth import Principal

CODES = st.sampled_from(["101", "147", "751", "851", "461"])
SCOPES = st.sets(st.sampled_from(["aggregates:read", "kommuner:all", "rounds:admin", "extracts:write"]))


@given(SCOPES, st.sets(CODES), st.none() | st.lists(CODES, max_size=4), st.booleans())
def test_a_key_reads_no_more_than_its_maker(scopes, maker_codes, wanted, all_kommuner):
    maker = Principal("m", frozenset(scopes), frozenset(maker_codes))
    try:
        rights = domain.key_rights(maker, wanted, all_kommuner)
    except domain.KeyRightsError:
        return
    key = domain.key_principal("bbk_0123456789abcdef", rights.scopes, rights.kommunekoder)
    assert key.scopes <= maker.scopes and key.scopes <= {"aggregates:read", "kommuner:all"}
    assert "aggregates:read" in key.scopes
    for code in ["101", "147", "751", "851", "461", "999"]:
        assert not key.may_act_for(code) or maker.may_act_for(code)
    if wanted is None and not all_kommuner:
        assert key.kommunekoder == maker.kommunekoder


def test_refusals_say_why():
    reader = Principal("m", frozenset({"aggregates:read"}), frozenset({"751"}))
    with pytest.raises(domain.KeyRightsError, match="101"):
        domain.key_rights(reader, ["751", "101"], False)
    with pytest.raises(domain.KeyRightsError, match="kommuner:all"):
        domain.key_rights(reader, None, True)
    with pytest.raises(domain.KeyRightsError, match="aggregates:read"):
        domain.key_rights(Principal("x", frozenset({"rounds:admin"}), frozenset()), None, False)


def test_secrets_are_checked_against_their_hash():
    key_id, secret = domain.new_credentials()
    assert domain.is_key_id(key_id) and not domain.is_key_id(key_id + "0")
    stored = domain.hash_secret(secret)
    assert secret not in stored and domain.secret_matches(secret, stored)
    assert not domain.secret_matches(secret[:-1], stored)
    assert kommunekoder.parse("0751") == "751" and kommunekoder.parse("751") == "751"
    for bad in ("75", "1751", "07511", "abc"):
        with pytest.raises(ValueError):
            kommunekoder.parse(bad)
        assert kommunekoder.stored(bad) == bad
    assert kommunekoder.stored("0101") == "101" and kommunekoder.stored("national") == "national"
