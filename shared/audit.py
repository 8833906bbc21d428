"""Append-only audit log: who did what, when, for which municipality, in every service.

Recorded automatically for every authenticated request that changes something (any method but
GET/HEAD/OPTIONS) and for every read that a route marks as a read or export of personal data
(``openapi_extra=AUDITED_READ``). The log holds no personal data itself: the actor is the token's
subject, the resource is the route template with its path parameters, never a request body (an
erasure request carries a CPR number). PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the
table (triggers), so not even the service itself can rewrite history. Auditors read it over
``GET /audit`` with the scope ``audit:read``; a municipality-bound auditor sees its own rows.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import JSONB
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal, ensure_kommune_access, require_scopes
from shared.observability import correlation_id_var

logger = logging.getLogger(__name__)

AUDIT_SCOPE = "audit:read"
# Mark a GET route whose answer contains personal data (or exports it): every call is logged.
AUDITED_READ: dict[str, Any] = {"x-audit": "personal-data-read"}
_UNAUDITED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),  # the token's subject
        sa.Column("action", sa.Text, nullable=False),  # e.g. "POST /rounds/{round_id}/close"
        sa.Column("kind", sa.Text, nullable=False),  # admin | personal-data-read | <service-defined>
        sa.Column("kommunekode", sa.Text),  # from the path, where the resource belongs to one
        sa.Column("resource", JSONB, nullable=False),  # path parameters
        sa.Column("status", sa.Integer),  # HTTP status of the answer (None for non-HTTP actions)
        sa.Column("correlation_id", sa.Text),
    ]


def audit_log_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table("audit_log", metadata, *_columns())


def create_audit_log(schema: str) -> None:
    """For a service's Alembic migration: the table, its indexes and the append-only triggers."""
    from alembic import op

    op.create_table("audit_log", *_columns(), schema=schema)
    op.create_index("ix_audit_log_at", "audit_log", ["at"], schema=schema)
    op.execute(
        f"""CREATE FUNCTION {schema}.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$"""
    )
    op.execute(
        f"""CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON {schema}.audit_log
            FOR EACH ROW EXECUTE FUNCTION {schema}.audit_log_append_only()"""
    )
    op.execute(
        f"""CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {schema}.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_log_append_only()"""
    )


async def record(
    connection_or_session: Any,
    table: sa.Table,
    *,
    actor: str,
    action: str,
    kind: str,
    kommunekode: str | None = None,
    resource: dict[str, Any] | None = None,
    status: int | None = None,
) -> None:
    """Append one entry (inside the caller's transaction, for actions that are not HTTP calls,
    e.g. a retention purge run by the scheduler)."""
    await connection_or_session.execute(
        sa.insert(table).values(
            actor=actor,
            action=action,
            kind=kind,
            kommunekode=kommunekode,
            resource=resource or {},
            status=status,
            correlation_id=correlation_id_var.get(),
        )
    )


class AuditMiddleware:
    """Pure ASGI middleware (no per-request cost for unauthenticated or plain reads)."""

    def __init__(self, app: ASGIApp, *, table: sa.Table) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: dict[str, int] = {}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await self._maybe_record(scope, status.get("code", 500))

    async def _maybe_record(self, scope: Scope, status: int) -> None:
        principal: Principal | None = scope.get("state", {}).get("principal")
        if principal is None:  # anonymous (the citizen's form) or refused before authentication
            return
        route = scope.get("route")
        marker = (getattr(route, "openapi_extra", None) or {}).get("x-audit")
        method = scope["method"]
        if marker is None and method in _UNAUDITED_METHODS:
            return
        path_params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is None:
            return
        try:
            async with runtime.engine.begin() as conn:
                await record(
                    conn,
                    self.table,
                    actor=principal.subject,
                    action=f"{method} {getattr(route, 'path', scope['path'])}",
                    kind=marker or "admin",
                    kommunekode=path_params.get("kommunekode"),
                    resource=path_params,
                    status=status,
                )
        except Exception:  # the action itself is done; losing its audit entry must be loud
            logger.exception("audit log write failed", extra={"fields": {"action": f"{method} {getattr(route, 'path', '?')}"}})


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    kind: str
    kommunekode: str | None
    resource: dict[str, Any]
    status: int | None
    correlation_id: str | None


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_after_id: int | None  # pass as after_id for the next page; None on the last page


def audit_router(table: sa.Table) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get(
        "/audit",
        response_model=AuditPage,
        summary="The audit log (scope audit:read; a municipality-bound auditor sees its municipality's entries)",
        openapi_extra=AUDITED_READ,
    )
    async def read_audit_log(
        request_principal: Annotated[Principal, Depends(require_scopes(AUDIT_SCOPE))],
        runtime_state: Annotated[Any, Depends(_runtime)],
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        kommunekode: Annotated[str | None, Query(pattern=r"^\d{3}$")] = None,
        after_id: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        query = sa.select(table).where(table.c.id > after_id).order_by(table.c.id).limit(limit + 1)
        if since is not None:
            query = query.where(table.c.at >= since)
        if until is not None:
            query = query.where(table.c.at < until)
        if actor is not None:
            query = query.where(table.c.actor == actor)
        if kommunekode is not None:
            ensure_kommune_access(request_principal, kommunekode)
            query = query.where(table.c.kommunekode == kommunekode)
        if not request_principal.all_kommuner:
            query = query.where(table.c.kommunekode.in_(sorted(request_principal.kommunekoder)))
        async with runtime_state.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        more = len(rows) > limit
        entries = [AuditEntry(**row) for row in rows[:limit]]
        return AuditPage(entries=entries, next_after_id=entries[-1].id if more else None)

    return router


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def install_audit(app: FastAPI, table: sa.Table) -> None:
    # Innermost (next to the router), inside the correlation-id middleware, so every entry
    # carries the request's correlation id.
    app.user_middleware.append(Middleware(AuditMiddleware, table=table))
    app.include_router(audit_router(table))
