"""A development OAuth2 token issuer (client-credentials grant), for local use and tests only.

It signs RS256 access tokens with a key kept in the local state directory and publishes the
JWKS the services verify against. Production uses the municipalities' identity broker instead.

Run: ``python -m shared.auth.dev_issuer --port 8000``.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Form, HTTPException, Request
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from shared.ratelimit import CredentialBudget

DEFAULT_CLIENTS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "dev-clients.json"


@dataclass(frozen=True)
class DevClient:
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    kommunekode: tuple[str, ...] = ()


@dataclass
class DevIssuer:
    issuer: str = "borgerblik-dev-issuer"
    audience: str = "borgerblik"
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}))

    def __post_init__(self) -> None:
        self.key.ensure_kid()

    @classmethod
    def from_file(cls, path: Path, **kwargs) -> DevIssuer:
        if path.exists():
            return cls(key=RSAKey.import_key(json.loads(path.read_text())), **kwargs)
        issuer = cls(**kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(issuer.key.as_dict(private=True)))
        path.chmod(0o600)
        return issuer

    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def jwks_json(self) -> str:
        return json.dumps(self.jwks())

    def mint(
        self,
        subject: str,
        scopes: list[str] | tuple[str, ...],
        kommunekode: list[str] | tuple[str, ...] | str | None = None,
        ttl_seconds: int = 3600,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
            "scope": " ".join(scopes),
        }
        if kommunekode:
            claims["kommunekode"] = [kommunekode] if isinstance(kommunekode, str) else list(kommunekode)
        return jose_jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)


def load_clients(path: Path = DEFAULT_CLIENTS_FILE) -> dict[str, DevClient]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        c["client_id"]: DevClient(
            client_id=c["client_id"],
            client_secret=c["client_secret"],
            scopes=tuple(c["scopes"]),
            kommunekode=tuple(c.get("kommunekode", [])),
        )
        for c in raw["clients"]
    }


def create_app(issuer: DevIssuer, clients: dict[str, DevClient]) -> FastAPI:
    app = FastAPI(title="Borgerblik dev token issuer", version="1")

    # Wrong secrets slow down per client id and per address (shared/ratelimit.py: backoff in
    # minute, hour and day windows, logged and counted in /metrics).
    app.state.failed_logins = CredentialBudget("dev-issuer", "token_endpoint")

    def authenticate(request: Request, client_id: str | None, client_secret: str | None) -> DevClient:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise HTTPException(401, detail={"error": "invalid_client"}) from None
        address = request.client.host if request.client else "unknown"
        budget: CredentialBudget = request.app.state.failed_logins
        if (wait := budget.refused(client_id or "", address)) is not None:
            raise HTTPException(429, detail={"error": "too_many_failed_attempts"}, headers={"Retry-After": str(wait)})
        client = clients.get(client_id or "")
        if client is None or not hmac.compare_digest(client.client_secret, client_secret or ""):
            budget.failed(client_id or "", address)
            raise HTTPException(401, detail={"error": "invalid_client"})
        return client

    @app.post("/oauth/token")
    async def token(
        request: Request,
        grant_type: str = Form(...),
        scope: str | None = Form(None),
        client_id: str | None = Form(None),
        client_secret: str | None = Form(None),
    ) -> dict:
        if grant_type != "client_credentials":
            raise HTTPException(400, detail={"error": "unsupported_grant_type"})
        client = authenticate(request, client_id, client_secret)
        granted = client.scopes
        if scope:
            requested = scope.split()
            if not set(requested) <= set(client.scopes):
                raise HTTPException(400, detail={"error": "invalid_scope"})
            granted = tuple(requested)
        access_token = issuer.mint(client.client_id, granted, client.kommunekode)
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "scope": " ".join(granted)}

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict:
        return issuer.jwks()

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--key-file", type=Path, default=Path(".run/dev-issuer-key.json"))
    parser.add_argument("--clients", type=Path, default=DEFAULT_CLIENTS_FILE)
    args = parser.parse_args()
    issuer = DevIssuer.from_file(args.key_file)
    # The dashboard's dev login relays a person's login from this host with their address in
    # X-Forwarded-For; the failure budget per address counts that address.
    uvicorn.run(
        create_app(issuer, load_clients(args.clients)), host="127.0.0.1", port=args.port, log_level="warning",
        proxy_headers=True, forwarded_allow_ips=os.environ.get("TRUSTED_PROXIES") or "127.0.0.1",
    )


if __name__ == "__main__":
    main()
