"""Every error a citizen can meet is a Danish page in the design system (another language with
?lang=<code>), never JSON: a link cut short (``/s/``), a path that is no page (``/s/..%2F..``,
``/s/{token}/nope``), a page number that is no number (``/s/{token}/side/abc``), a method the page
does not take (405), a refusal at the edge (422, shared/edge.py), too many guesses (429), and a
fault of ours (5xx). The API under ``/api/`` keeps its JSON.

``CitizenErrorPages`` (pure ASGI middleware, outermost) turns a non-HTML error answer on a
citizen's path into the page for its status, keeping the status and the security headers;
``server_error`` is the page for an exception nothing handled (Starlette's last handler)."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.responses import web
from services.responses.schemas import TOKEN_CHARS
from services.responses.texts import TEXTS

_TOKEN_PATH = re.compile(rf"^/s/({TOKEN_CHARS})(?:/|$)")
# The header of the original answer that the page replaces; the rest (security headers,
# Retry-After, Allow) stays.
_REPLACED = {b"content-type", b"content-length"}


def is_citizen_path(path: str) -> bool:
    return path in ("/", "/s", "/tilgaengelighed") or path.startswith("/s/")


def _kind(status: int) -> str:
    if status == 404:
        return "notfound"
    if status == 405:
        return "method"
    if status == 429:
        return "rate"
    if status in (400, 413, 414, 422):
        return "invalid"
    if status >= 500:
        return "error"
    return "refused"


def page_for(request: Request, status: int) -> Response:
    """The page for an error answer on a citizen's path: what happened, and the way to the
    questionnaire's start when the address holds a well-formed link."""
    found = _TOKEN_PATH.match(request.url.path)
    link = None
    if found and status != 429:
        lang = web._lang(request)
        link = (f"/s/{found.group(1)}{web._query(lang)}", TEXTS[lang]["to_start"])
    return web.message(request, _kind(status), status, link=link)


async def server_error(request: Request, exc: Exception) -> Response:
    if is_citizen_path(request.url.path):
        return page_for(request, 500)
    return PlainTextResponse("Internal Server Error", status_code=500)


class CitizenErrorPages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_citizen_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None

        async def send_or_replace(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                is_html = headers.get(b"content-type", b"").startswith(b"text/html")
                if message["status"] >= 400 and not is_html:
                    start = message  # held: the body that follows is replaced by the page
                    return
                await send(message)
                return
            if start is None:
                await send(message)
                return
            if message.get("more_body", False):
                return  # the original body is dropped
            page = page_for(Request(scope), start["status"])
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _REPLACED]
            own = {k.lower() for k, _ in page.raw_headers}
            headers = [(k, v) for k, v in kept if k.lower() not in own or k.lower() == b"set-cookie"] + page.raw_headers
            await send({"type": "http.response.start", "status": start["status"], "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else page.body})

        await self.app(scope, receive, send_or_replace)
