"""The table routes' access check: an OAuth2 bearer token (shared.auth) or a BI key as HTTP
Basic credentials, which Power BI and Excel can store for an unattended refresh."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from services.analytics.bi_keys import service
from shared.auth import Principal, ensure_scopes, get_principal

# Both ways in, in every 401: a BI tool that is told about Basic asks its user for the key.
CHALLENGE = 'Bearer, Basic realm="Borgerblik analytics", charset="UTF-8"'

_bearer = HTTPBearer(auto_error=False, description="OAuth2 client-credentials access token (JWT)")
_basic = HTTPBasic(
    auto_error=False,
    description="A BI key (POST /bi-keys), for a BI tool's unattended refresh: user name the key's id (bbk_...), "
    "password its secret. Reads only (aggregates:read), for the municipalities the key was made for",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": CHALLENGE})


def require_scopes_or_key(*scopes: str):
    """Dependency: a principal holding every one of ``scopes``, from a bearer token or a BI key."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
        basic: HTTPBasicCredentials | None = Depends(_basic),
    ) -> Principal:
        if basic is not None:
            async with request.app.state.runtime.uow() as uow:
                principal = await service.authenticate(uow, basic.username, basic.password)
            if principal is None:
                raise _unauthorized("not a valid BI key: unknown, revoked or expired, or the secret does not match")
            request.state.principal = principal  # for the audit log (shared.audit)
        elif bearer is None:
            raise _unauthorized("missing credentials: a bearer token, or a BI key as Basic credentials")
        else:
            principal = await get_principal(request, bearer)
        return ensure_scopes(principal, scopes)

    dependency.__name__ = f"require_{'_'.join(s.replace(':', '_') for s in scopes)}"
    return dependency
