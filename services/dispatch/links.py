"""Survey link tokens (the format is shared with responses: shared/links.py)."""

from shared.links import link_token, new_nonces, token_hash

__all__ = ["link_token", "new_nonces", "token_hash"]
