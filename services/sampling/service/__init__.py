"""Sampling's service functions: the frame and its exclusions, the allocation (preview, operator
overrides, confirmation) and the draw with its sample.drawn events.

The statistics live in ``services.sampling.domain`` (allocate, adjust; draw_sample is the
plain-Python reference of the draw) and ``services.sampling.draw_sql`` (the draw as PostgreSQL
runs it). This package only moves data, and as little as possible: a national frame is 500,000
rows, so the frame is counted when each delivery is activated (``services.sampling.frame``;
previews and draws sum those counts), filtered in SQL generated from the eligibility rule
(``domain.exclusions``; ``frame.eligible_sql``), and the draw, the sampled_unit rows and the
persons of the sample.drawn events are made inside PostgreSQL, in the draw's transaction: no
frame row makes a round trip through Python. The frame holds no contact data, and the events
carry none (sample.drawn v2: ingest releases the sampled citizens' contacts to dispatch itself).
Python keeps the small things: the allocation over ~500 strata, the summaries and the events'
envelopes (validated by the shared models).

- ``errors``: what the service refuses (``services.sampling.errors`` answers each with its 4xx);
- ``rounds``: the round guard;
- ``frame``: the frame's counts, margins, duplicate check and eligible rows;
- ``views``: the tables, events and read-only views built from them;
- ``allocation``: preview, overrides, confirmation;
- ``draw``: the draw.
"""

from services.sampling.service.allocation import (
    compute_allocation,
    confirm_allocation,
    get_allocation,
    merge_rules,
    preview_allocation,
    set_overrides,
)
from services.sampling.service.draw import draw
from services.sampling.service.errors import (
    DrawExists,
    EmptyFrame,
    InvalidAllocation,
    NoAllocation,
    RoundNotDefined,
    RoundRefused,
    StaleAllocation,
)
from services.sampling.service.frame import FrameCounts, count_frame, eligible_sql, unit_conditions
from services.sampling.service.rounds import require_round
from services.sampling.service.views import allocation_table, draw_margins, frame_summary, sampling_progress

__all__ = [
    "DrawExists",
    "EmptyFrame",
    "FrameCounts",
    "InvalidAllocation",
    "NoAllocation",
    "RoundNotDefined",
    "RoundRefused",
    "StaleAllocation",
    "allocation_table",
    "compute_allocation",
    "confirm_allocation",
    "count_frame",
    "draw",
    "draw_margins",
    "eligible_sql",
    "frame_summary",
    "get_allocation",
    "merge_rules",
    "preview_allocation",
    "require_round",
    "sampling_progress",
    "set_overrides",
    "unit_conditions",
]
