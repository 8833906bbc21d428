"""A small OpenID Connect provider for the tests, standing in for the broker in front of FK
Adgangsstyring: discovery, authorization endpoint (the "logged-in" user is set by the test),
token endpoint (code, client secret, redirect URI and PKCE checked once), JWKS; ID tokens RS256.
shared/auth/dev_issuer.py has only client credentials, so this lives here."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from shared.infra import free_port
from shared.testing.fixtures import served


class Provider:
    def __init__(self, client_id: str = "borgerblik-dashboard", client_secret: str = "broker-secret") -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.user: dict = {}
        self.codes: dict[str, dict] = {}
        self.base = ""
        self.authorize_requests: list[dict] = []

    def jwks(self) -> dict:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [jwk | {"kid": "test-1", "use": "sig", "alg": "RS256"}]}

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict:
            return {"issuer": self.base, "authorization_endpoint": f"{self.base}/authorize", "token_endpoint": f"{self.base}/token",
                    "jwks_uri": f"{self.base}/jwks", "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

        @app.get("/jwks")
        async def keys() -> dict:
            return self.jwks()

        @app.get("/authorize")
        async def authorize(request: Request):
            q = dict(request.query_params)
            self.authorize_requests.append(q)
            if q.get("client_id") != self.client_id or q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
                raise HTTPException(400, "bad authorization request")
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"redirect_uri": q["redirect_uri"], "nonce": q.get("nonce"), "challenge": q.get("code_challenge"),
                                "user": dict(self.user)}
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", status_code=302)

        @app.post("/token")
        async def token(request: Request, grant_type: str = Form(...), code: str = Form(...), redirect_uri: str = Form(...),
                        code_verifier: str | None = Form(None), client_id: str | None = Form(None),
                        client_secret: str | None = Form(None)) -> dict:
            header = request.headers.get("authorization", "")
            if header.startswith("Basic "):
                client_id, client_secret = base64.b64decode(header[6:]).decode().split(":", 1)
            if (client_id, client_secret) != (self.client_id, self.client_secret):
                raise HTTPException(401, "invalid_client")
            grant = self.codes.pop(code, None)  # a code is used once
            if grant_type != "authorization_code" or grant is None or grant["redirect_uri"] != redirect_uri:
                raise HTTPException(400, "invalid_grant")
            if grant["challenge"]:
                digest = base64.urlsafe_b64encode(hashlib.sha256((code_verifier or "").encode()).digest()).decode().rstrip("=")
                if digest != grant["challenge"]:
                    raise HTTPException(400, "invalid_grant (PKCE)")
            now = int(time.time())
            claims = {"iss": self.base, "aud": self.client_id, "iat": now, "exp": now + 300, "nonce": grant["nonce"], **grant["user"]}
            id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-1"})
            return {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300, "id_token": id_token}

        return app


@asynccontextmanager
async def serve(provider: Provider):
    port = free_port()
    provider.base = f"http://127.0.0.1:{port}"
    async with served(provider.app(), lifespan="auto", port=port):
        yield provider
