"""When a new delivery may replace a municipality's frame for a round.

A delivery replaces the municipality's earlier one as a whole. A file cut short by the case
system (a header-only export, a filter left on) would then silently shrink the frame, and a
statistic built on it would be wrong without anyone knowing. So a delivery with no valid
citizens, or with fewer than ``MIN_SHARE`` of the citizens of the delivery it replaces, needs
the caller's explicit confirmation (``confirm_replacement=true``).
"""

from __future__ import annotations

MIN_SHARE = 0.5


def replacement_refusal(previous_citizens: int | None, new_citizens: int) -> str | None:
    """Why the delivery must not replace the earlier one without confirmation, or None.

    ``previous_citizens`` is the stored citizen count of the delivery it would replace (None
    when there is none).
    """
    previous = previous_citizens or 0
    removed = max(0, previous - new_citizens)
    if new_citizens == 0:
        what = "has no valid citizens"
    elif previous and new_citizens < MIN_SHARE * previous:
        what = f"has {new_citizens:,} valid citizens, fewer than {MIN_SHARE:.0%} of the {previous:,} it would replace"
    else:
        return None
    return (
        f"the delivery {what}: storing it would remove {removed:,} citizens from the municipality's frame for this "
        "round. Nothing was stored. If that is right, deliver again with confirm_replacement=true"
    )
