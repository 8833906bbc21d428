"""The edge rule of every service: input PostgreSQL cannot hold is refused with a 422 naming the
field, before any endpoint runs (issue 26).

PostgreSQL cannot store a NUL character in text (or in a JSON string of a jsonb value), nor an
integer outside BIGINT, nor an index entry longer than about 2.7 kB; any of those reaching a query
is a 500 from deep inside a service. One rule, in one place, for all of them:

- ``EdgeInput`` (pure ASGI middleware, installed by ``shared.app.install_common``) looks at what a
  caller sends: the path and query parameters the matched route declares, the fields of a JSON or
  form body the route parses itself, and refuses NUL characters anywhere, integers outside
  BIGINT, and path or query values longer than ``MAX_PARAM_CHARS``. The answer has FastAPI's
  validation shape (``{"detail": [{"loc", "msg", "type"}]}``) so clients see one kind of 422.
- ``database_refused`` (exception handler) is the same rule for what only the column knows: a
  value the database refuses as data (an INTEGER column given 2**31, text longer than its
  VARCHAR, an index entry too long) is the caller's input, answered with a 422 naming the
  request field that holds the value when one does, never a 500.

Requests that carry nothing suspicious cost one scan of the raw query string and, for routes
with a parsed body, one scan of the raw body bytes; the body is parsed again only when that scan
finds an escaped NUL, a NUL byte or a long run of digits. Bodies a route streams itself (the
extract upload) are not read here: the upload's job validates its rows.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1
# No identifier, code, date or filter of ours is near this long; a btree index entry above ~2700
# bytes fails to insert, and a value this long in a URL is a probe, not a request.
MAX_PARAM_CHARS = 1024
# Bodies larger than this are not buffered here (FastAPI's own body limits still apply).
MAX_SCANNED_BODY = 64 * 1024 * 1024

_SUSPICIOUS_BODY = re.compile(rb"\\u0000|\x00|\d{19}|\d[eE]\+?\d{2}")
_SUSPICIOUS_QUERY = re.compile(rb"%00|\x00|\d{19}")


def _error(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def refusal(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422)


def _is_int(annotation: Any) -> bool:
    """int, or a union / Annotated holding int (bool excluded)."""
    if annotation is int:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_int(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_int(arg) for arg in typing.get_args(annotation))
    return False


def check_value(loc: list[Any], value: Any, *, integer: bool = False, max_chars: int | None = None) -> Iterator[dict[str, Any]]:
    """The edge rule for one value (a raw parameter string, or a decoded JSON value)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield _error(loc, "NUL characters are not allowed", "string_nul_character")
            return
        if max_chars is not None and len(value) > max_chars:
            yield _error(loc, f"at most {max_chars} characters", "string_too_long")
            return
        if integer and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            value = int(value)
        else:
            return
    if isinstance(value, bool):
        return
    if isinstance(value, float) and value.is_integer() and abs(value) < float("inf"):
        value = int(value)  # pydantic takes 1e30 for an int field
    if isinstance(value, int):
        if not BIGINT_MIN <= value <= BIGINT_MAX:
            yield _error(loc, f"must be between {BIGINT_MIN} and {BIGINT_MAX}", "int_out_of_range")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield _error([*loc, key], "NUL characters are not allowed in a key", "string_nul_character")
            else:
                yield from check_value([*loc, key], item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from check_value([*loc, index], item)


class _RouteShape:
    """What the edge needs of one route: its path pattern, methods, declared parameters."""

    def __init__(self, context: Any) -> None:
        self.path_regex = context.path_regex
        self.methods = set(context.methods or ())
        dependant = context.dependant
        self.path_params: dict[str, bool] = {}
        self.query_params: dict[str, bool] = {}
        self.parses_body = False
        stack = [dependant]
        while stack:
            current = stack.pop()
            for field in current.path_params:
                self.path_params[field.alias] = _is_int(field.field_info.annotation)
            for field in current.query_params:
                self.query_params[field.alias] = _is_int(field.field_info.annotation)
            self.parses_body = self.parses_body or bool(current.body_params)
            stack.extend(current.dependencies)


def _route_shapes(app: Any) -> list[_RouteShape]:
    shapes = []
    for route in app.router.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        candidates = contexts() if callable(contexts) else [route]
        for candidate in candidates:
            if getattr(candidate, "dependant", None) is not None and getattr(candidate, "path_regex", None) is not None:
                shapes.append(_RouteShape(candidate))
    return shapes


class EdgeInput:
    """Pure ASGI middleware: the edge rule (module docstring) before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._shapes: list[_RouteShape] | None = None

    def _shape(self, scope: Scope) -> _RouteShape | None:
        if self._shapes is None:
            self._shapes = _route_shapes(scope["app"])
        path, method = scope["path"], scope["method"]
        fallback = None
        for shape in self._shapes:
            if shape.path_regex.match(path):
                if method in shape.methods or (method == "HEAD" and "GET" in shape.methods):
                    return shape
                fallback = fallback or shape
        return fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = self._check_path_and_query(scope)
        if errors:
            await refusal(errors)(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        is_json = content_type == b"application/json" or content_type.endswith(b"+json")
        is_form = content_type == b"application/x-www-form-urlencoded"
        length = headers.get(b"content-length", b"")
        if not (is_json or is_form) or (length.isdigit() and int(length) > MAX_SCANNED_BODY):
            await self.app(scope, receive, send)
            return
        shape = self._shape(scope)
        if shape is None or not shape.parses_body:
            await self.app(scope, receive, send)  # a route that streams its body reads it itself
            return
        body, messages = await _read_body(receive)
        errors = _check_body(body, is_json)
        if errors:
            await refusal(errors)(scope, receive, send)
            return
        replay = iter(messages)

        async def replayed() -> Message:
            try:
                return next(replay)
            except StopIteration:
                return await receive()

        await self.app(scope, replayed, send)

    def _check_path_and_query(self, scope: Scope) -> list[dict[str, Any]]:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        query: bytes = scope.get("query_string") or b""
        path = scope["path"]
        suspicious = (
            "\x00" in path
            or len(path) > MAX_PARAM_CHARS
            or b"%00" in raw_path
            or len(query) > MAX_PARAM_CHARS
            or _SUSPICIOUS_QUERY.search(query) is not None
        )
        if not suspicious:
            return []
        shape = self._shape(scope)
        errors: list[dict[str, Any]] = []
        if shape is not None:
            match = shape.path_regex.match(path)
            for name, value in (match.groupdict() if match else {}).items():
                errors += check_value(["path", name], value, integer=shape.path_params.get(name, False), max_chars=MAX_PARAM_CHARS)
        elif "\x00" in path:
            errors.append(_error(["path"], "NUL characters are not allowed", "string_nul_character"))
        declared = shape.query_params if shape is not None else {}
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            name, value = _utf8(name), _utf8(value)
            if name in declared:
                errors += check_value(["query", name], value, integer=declared[name], max_chars=MAX_PARAM_CHARS)
        return errors


def _utf8(text: str) -> str:
    # parse_qsl decoded percent-escapes as latin-1; the application sees UTF-8.
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    messages, chunks = [], []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _check_body(body: bytes, is_json: bool) -> list[dict[str, Any]]:
    if not _SUSPICIOUS_BODY.search(body):
        return []
    if not is_json:
        errors = []
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            name, value = _utf8(name), _utf8(value)
            if "\x00" in name:
                errors.append(_error(["body", name.replace("\x00", "")], "NUL characters are not allowed in a name", "string_nul_character"))
            else:
                errors += check_value(["body", name], value)
        return errors
    try:
        document = json.loads(body)
    except ValueError:
        return []  # malformed JSON: FastAPI answers it with its own 422
    return list(check_value(["body"], document))


# --- the database's word, for what only the column knows ------------------------------------------------------


def _offending_value(message: str) -> str | None:
    """The value asyncpg names when it cannot encode a query argument ("invalid input for query
    argument $1: 2147483648 (value out of int32 range)")."""
    found = re.search(r"query argument \$\d+: (.*?) \(", message)
    return found.group(1) if found else None


def _locate(request: Request, value: str | None) -> list[Any]:
    """The request field holding ``value``, as far as the path and query tell; else the body."""
    if value is not None:
        for name, item in request.path_params.items():
            if str(item) == value:
                return ["path", name]
        for name, item in request.query_params.multi_items():
            if item == value:
                return ["query", name]
    return ["body"]


def _refused_as_data(exc: BaseException) -> bool:
    """SQLSTATE class 22 (data exception) or 54 (program limit, e.g. an index entry too long), or
    a value asyncpg cannot encode for its parameter's type (its client-side DataError)."""
    import asyncpg

    cause: BaseException | None = getattr(exc, "orig", None) or exc
    while cause is not None:
        sqlstate = str(getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None) or "")
        if sqlstate.startswith(("22", "54")) or isinstance(cause, asyncpg.exceptions.DataError):
            return True
        cause = cause.__cause__
    return False


async def database_refused(request: Request, exc: Exception) -> JSONResponse:
    """A request's query that the database refused as data is the caller's input that does not
    fit its column: 422. Any other database error stays a 500 (it is ours, not the caller's)."""
    if not _refused_as_data(exc):
        raise exc
    orig = getattr(exc, "orig", None)
    message = re.sub(r"^<class '[^']+'>: ", "", str(orig or exc).strip().splitlines()[0][:300])
    value = _offending_value(message)
    # Only the kind of refusal, never the value: it may be personal data.
    reason = message.rsplit("(", 1)[-1].rstrip(")") if value is not None else message.split(":")[0]
    return refusal([_error(_locate(request, value), f"the value does not fit its column ({reason})", "database_refused")])
