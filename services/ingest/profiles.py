"""Column profiles at run time: the built-in ones and those registered over the API.

A registered profile is a row of ``ingest.column_profile`` (versioned, never changed), read
from the database whenever an upload names it, so a profile registered on one replica is used
by every replica at once, without a restart. The worker processes never need it: the service
process finds the header with it and sends them the column positions.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from services.ingest.domain.errors import MappingDataError
from services.ingest.domain.profiles import ColumnProfile, get_profile, load_profiles, registered_profile
from services.ingest.models import RegisteredProfile
from services.ingest.schemas import ProfileRegistration
from shared.bus import UnitOfWork
from shared.db import advisory_key


class UnknownProfile(LookupError):
    pass


class ProfileRefused(ValueError):
    """A profile that cannot be used: an unknown one named by an upload, a one-off column_map
    that is not a JSON object of known columns, or a registration that would be ambiguous or
    names unknown columns or base."""


async def for_upload(uow: UnitOfWork, reference: str, column_map: str | None) -> ColumnProfile:
    """The profile an upload names, with its one-off ``column_map`` (JSON: canonical column ->
    this file's header) over it."""
    try:
        profile = await resolve_profile(uow, reference)
    except UnknownProfile as exc:
        raise ProfileRefused(str(exc)) from None
    if not column_map:
        return profile
    try:
        mapping = json.loads(column_map)
        if not isinstance(mapping, dict):
            raise ValueError
        return profile.with_overrides(mapping)
    except ValueError:
        raise ProfileRefused(
            'column_map must be a JSON object of canonical column -> header, e.g. {"overgangsdato": "Dato for skift"}'
        ) from None
    except LookupError as exc:
        raise ProfileRefused(f"column_map: {exc}") from None


async def resolve_profile(uow: UnitOfWork, reference: str) -> ColumnProfile:
    """The profile an upload names: a built-in one ("momentum"), a registered one's newest
    version ("acme") or a given version ("acme@2")."""
    name, _, version_text = reference.strip().casefold().partition("@")
    if not version_text and name in load_profiles():
        return get_profile(name)
    query = sa.select(RegisteredProfile).where(RegisteredProfile.name == name)
    if version_text:
        if not version_text.isdigit():
            raise UnknownProfile(f"a profile version is a number, as in {name}@2")
        query = query.where(RegisteredProfile.version == int(version_text))
    record = (await uow.session.execute(query.order_by(RegisteredProfile.version.desc()).limit(1))).scalar_one_or_none()
    if record is None:
        known = ", ".join(profile.reference for profile in await list_profiles(uow))
        raise UnknownProfile(f"unknown column profile {reference!r}; known profiles: {known} (GET /profiles)")
    return _from_record(record)


async def list_profiles(uow: UnitOfWork) -> list[ColumnProfile]:
    """Every built-in profile and the newest version of every registered one."""
    newest_version = (
        sa.select(RegisteredProfile.name, sa.func.max(RegisteredProfile.version).label("version"))
        .group_by(RegisteredProfile.name)
        .subquery()
    )
    newest = (
        sa.select(RegisteredProfile)
        .join(newest_version, sa.and_(RegisteredProfile.name == newest_version.c.name, RegisteredProfile.version == newest_version.c.version))
        .order_by(RegisteredProfile.name)
    )
    registered = [_from_record(record) for record in (await uow.session.execute(newest)).scalars()]
    return [*load_profiles().values(), *registered]


async def register_profile(uow: UnitOfWork, registration: ProfileRegistration, registered_by: str) -> ColumnProfile:
    """Store a new version of a named profile and commit. Raises ``ProfileRefused`` when the
    profile would be ambiguous or names unknown columns or base."""
    session = uow.session
    name = registration.name.strip().casefold()
    # Versions of one name are numbered under a transaction-scoped lock on the name.
    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_key(f"column_profile:{name}"))))
    latest = await session.scalar(sa.select(sa.func.max(RegisteredProfile.version)).where(RegisteredProfile.name == name))
    version = (latest or 0) + 1
    try:
        profile = registered_profile(
            name, version, registration.columns, base=registration.base.strip().casefold(), display_name=registration.display_name
        )
    except (MappingDataError, LookupError) as exc:
        raise ProfileRefused(str(exc)) from None
    session.add(
        RegisteredProfile(
            name=name,
            version=version,
            base=profile.base,
            display_name=profile.display_name,
            columns={column: list(headers) for column, headers in registration.columns.items()},
            registered_by=registered_by,
        )
    )
    await uow.commit()
    return profile


def _from_record(record: RegisteredProfile) -> ColumnProfile:
    return registered_profile(record.name, record.version, record.columns, base=record.base, display_name=record.display_name)
