"""JWT bearer auth for every service: scopes plus a municipality binding.

Tokens are OAuth2 client-credentials access tokens (RS256) from the identity provider, verified
with pyjwt against a JWKS. Claims we rely on:

- ``scope``: space-separated scopes, e.g. ``extracts:write``, ``aggregates:read``, ``rounds:admin``.
- ``kommunekode``: the municipality (or list of municipalities, for a case-system vendor) the
  caller acts for. A caller with scope ``kommuner:all`` (KL) may act for every municipality.
"""

from shared.auth.verify import (
    Authenticator,
    Principal,
    ensure_kommune_access,
    ensure_scopes,
    get_principal,
    require_scopes,
)

__all__ = ["Authenticator", "Principal", "ensure_kommune_access", "ensure_scopes", "get_principal", "require_scopes"]
