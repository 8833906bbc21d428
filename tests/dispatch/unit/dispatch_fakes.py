"""Local stand-ins for the providers the channels talk to.

Each fake is a real server on 127.0.0.1 (a free port), so the adapters go
through their real HTTP/TLS/SMTP stacks. The fakes check what they receive the
way the real services would and answer 4xx when something is wrong, so a test
fails on the adapter's request, not only on our own asserts.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lxml import etree

from services.dispatch.domain.memo import MEMO_NS, MemoValidationError, validate_memo

M = f"{{{MEMO_NS}}}"
KOMBI_CODES = {"Automatisk Valg", "Digital Post", "Fysisk Post", "NemSMS"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer_cert: dict | None = None
    checked: dict = field(default_factory=dict)
    """What the fake's checks extracted (e.g. the KombiValgKode)."""


Responder = Callable[[RecordedRequest], tuple[int, bytes]]


class FakeHttpServer:
    """A threaded HTTP(S) server whose answers come from `responder`."""

    def __init__(self, responder: Responder, *, ssl_context: ssl.SSLContext | None = None,
                 delay_seconds: float = 0.0) -> None:
        self.responder = responder
        self.delay_seconds = delay_seconds
        self.requests: list[RecordedRequest] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                request = RecordedRequest(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    peer_cert=peer,
                )
                fake.requests.append(request)
                if fake.delay_seconds:
                    time.sleep(fake.delay_seconds)
                status, payload = fake.responder(request)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if ssl_context else "http"
        # A short poll interval keeps shutdown (and so each test) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def __enter__(self) -> FakeHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def check_sf1601_request(request: RecordedRequest, *, token: str | None) -> list[str]:
    """What SF1601 would object to in `request`; fills `request.checked`."""
    problems: list[str] = []
    h = request.headers
    if token is not None and h.get("authorization") != f"Bearer {token}":
        problems.append("auth")
    if not h.get("content-type", "").startswith("application/xml"):
        problems.append("content-type")
    try:
        request.checked["transaction_id"] = str(uuid.UUID(h.get("x-transaktionsid", "")))
    except ValueError:
        problems.append("X-TransaktionsId is not a UUID")
    if not h.get("x-transaktionstid", "").endswith("Z"):
        problems.append("X-TransaktionsTid must be UTC")
    if not h.get("idempotency-key"):
        problems.append("Idempotency-Key missing")
    try:
        root = etree.fromstring(request.body)
    except etree.XMLSyntaxError:
        return problems + ["body is not XML"]
    children = list(root)
    if root.tag != "kombi_request" or len(children) != 2 or children[0].tag != "KombiValgKode":
        return problems + ["not a kombi_request with KombiValgKode and one MeMo"]
    kombi = children[0].text
    request.checked["kombi"] = kombi
    if kombi not in KOMBI_CODES:
        problems.append(f"unknown KombiValgKode {kombi!r}")
    memo = children[1]
    memo_bytes = etree.tostring(memo)
    try:
        validate_memo(memo_bytes)
    except MemoValidationError as exc:
        problems.append(f"MeMo invalid: {exc}")
    request.checked["memo"] = memo_bytes
    request.checked["message_type"] = memo.findtext(f"{M}MessageHeader/{M}messageType")
    content = memo.findtext(f".//{M}MainDocument/{M}File/{M}content")
    if content is not None:
        pdf = base64.b64decode(content, validate=True)
        request.checked["pdf"] = pdf
        if not pdf.startswith(b"%PDF-"):
            problems.append("File content is not a PDF")
    return problems


def sf1601_responder(*, token: str | None, status: Callable[[RecordedRequest], int] = lambda r: 200,
                     ) -> Responder:
    def respond(request: RecordedRequest) -> tuple[int, bytes]:
        problems = check_sf1601_request(request, token=token)
        if "auth" in problems:
            return 401, b'{"error": "unauthorized"}'
        if problems:
            return 400, json.dumps({"errors": problems}).encode()
        return status(request), b'{"result": "ok"}'

    return respond


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, *, require_client_cert: bool = True) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        context.load_verify_locations(self.ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
        return context


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client
    certificate (as a municipality's FOCES/OCES certificate would be)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage, san: list | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
                                   [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_cert, client_key = leaf("Testkommune SF1601 client", ExtendedKeyUsageOID.CLIENT_AUTH, None)

    files = TlsFiles(ca=directory / "ca.pem", server_cert=directory / "server.pem",
                     server_key=directory / "server.key", client_cert=directory / "client.pem",
                     client_key=directory / "client.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.client_cert.write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    write_key(server_key, files.server_key)
    write_key(client_key, files.client_key)
    return files
