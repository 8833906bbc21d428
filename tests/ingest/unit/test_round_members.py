"""RoundMembers: which rows of a block may already be in another municipality's delivery
(the candidates the service then confirms exactly)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.duplicates import RoundMembers

digest = st.binary(min_size=32, max_size=32)


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(digest, max_size=60),
    block=st.lists(digest, min_size=1, max_size=60),
    shared=st.lists(st.integers(min_value=0, max_value=59), max_size=20),
    data=st.data(),
)
def test_candidates_are_exactly_the_rows_sharing_a_members_prefix(members, block, shared, data):
    # Some block rows are members (whole digest), some only share the first 8 bytes, the rest are random.
    for i in shared:
        if members and i < len(block):
            block[i] = members[i % len(members)]
    if members and len(block) > 1:
        block[-1] = members[0][:8] + bytes(24)  # same prefix, another person: still a candidate
    indexes = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(block) - 1))))
    prefixes = np.array([int.from_bytes(m[:8], "big") for m in members], dtype=np.uint64)

    found = RoundMembers(prefixes).may_contain(b"".join(block), 32, indexes)

    member_prefixes = {m[:8] for m in members}
    assert found == [i for i in indexes if block[i][:8] in member_prefixes]


def test_no_members_means_no_candidates():
    block = [bytes([i]) * 32 for i in range(5)]
    assert RoundMembers(np.empty(0, dtype=np.uint64)).may_contain(b"".join(block), 32, [0, 1, 2, 3, 4]) == []
    assert len(RoundMembers(np.empty(0, dtype=np.uint64))) == 0
