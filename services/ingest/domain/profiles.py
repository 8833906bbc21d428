"""Per-vendor column profiles: which export header means which canonical column.

The profiles are data (``kolonneprofiler_v1.json`` beside this module) because vendors rename
columns between releases and a new header should be a data change, not a code change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from services.ingest.domain.errors import MappingDataError
from services.ingest.domain.text import is_blank, label_key, label_skeleton

PROFILES_RESOURCE = "kolonneprofiler_v1.json"
MAX_HEADERS_IN_MESSAGES = 30
_HEADER_TEXT_LIMIT = 40
# Six or more digits in a "header" means we are looking at a data row (CPR, phone): never echo it.
_DIGIT_RUN = re.compile(r"\d(?:[\s.\-/]?\d){5,}")


class Kolonne(StrEnum):
    """Canonical extract column; rows are dicts keyed by these names."""

    CPR = "cpr"
    YDELSE = "ydelse"  # benefit, exactly as the case system names it
    OVERGANGSDATO = "overgangsdato"  # date of transition to the current benefit
    SENESTE_SAMTALE = "seneste_samtale"  # date of the latest conversation with the job centre
    FORLOEB_AFSLUTTET = "forloeb_afsluttet"  # course completed at the reference date
    TELEFON = "telefon"
    PASSIV = "passiv"
    NAVN = "navn"
    FORSKERBESKYTTET = "forskerbeskyttet"  # protected from research and statistical surveys


@dataclass(frozen=True)
class HeaderMatch:
    """The outcome of matching one header row against a profile."""

    headers: tuple[str, ...]  # non-blank header texts as found, redacted for messages
    width: int  # number of header cells, blank ones included
    column_index: Mapping[Kolonne, int]  # canonical column -> position in the row
    missing_required: tuple[Kolonne, ...]
    duplicated: Mapping[Kolonne, tuple[str, ...]]  # canonical column -> the headers that all claim it
    unmapped: tuple[str, ...]

    @property
    def is_complete(self) -> bool:
        return not self.missing_required and not self.duplicated

    @property
    def matched_count(self) -> int:
        return len(self.column_index)


@dataclass(frozen=True)
class ColumnProfile:
    """One vendor's header vocabulary."""

    name: str
    display_name: str
    required: tuple[Kolonne, ...]
    optional: tuple[Kolonne, ...]
    aliases: Mapping[Kolonne, tuple[str, ...]]  # the export headers each column is known by
    _by_key: Mapping[str, Kolonne] = field(repr=False)
    _by_skeleton: Mapping[str, Kolonne] = field(repr=False)

    def column_for(self, header: object) -> Kolonne | None:
        """The canonical column a header means, or None. Exact key first, skeleton as fallback."""
        if is_blank(header):
            return None
        key = label_key(header)
        if key in self._by_key:
            return self._by_key[key]
        skeleton = label_skeleton(header)
        return self._by_skeleton.get(skeleton) if skeleton else None

    def expected_header(self, column: Kolonne) -> str:
        """The header a person should use for ``column`` in this profile (for error messages)."""
        return self.aliases[column][0] if self.aliases[column] else column.value

    def match_headers(self, headers: Sequence[object]) -> HeaderMatch:
        column_index: dict[Kolonne, int] = {}
        claims: dict[Kolonne, list[str]] = {}
        unmapped: list[str] = []
        shown = tuple(redact_header(header) for header in headers)
        for position, header in enumerate(headers):
            column = self.column_for(header)
            if column is None:
                if not is_blank(header):
                    unmapped.append(shown[position])
                continue
            claims.setdefault(column, []).append(shown[position])
            column_index.setdefault(column, position)
        return HeaderMatch(
            headers=tuple(text for text in shown if text),
            width=len(headers),
            column_index=MappingProxyType(column_index),
            missing_required=tuple(column for column in self.required if column not in column_index),
            duplicated=MappingProxyType({column: tuple(texts) for column, texts in claims.items() if len(texts) > 1}),
            unmapped=tuple(unmapped),
        )


def redact_header(header: object) -> str:
    """A header text that is safe to put in an error message: digit runs masked, length capped."""
    if is_blank(header):
        return ""
    text = _DIGIT_RUN.sub("[redacted]", " ".join(str(header).split()))
    return text if len(text) <= _HEADER_TEXT_LIMIT else text[: _HEADER_TEXT_LIMIT - 1] + "…"


def describe_headers(headers: Sequence[str]) -> str:
    shown = [f'"{header}"' for header in headers[:MAX_HEADERS_IN_MESSAGES]]
    if len(headers) > MAX_HEADERS_IN_MESSAGES:
        shown.append(f"and {len(headers) - MAX_HEADERS_IN_MESSAGES} more")
    return ", ".join(shown) if shown else "none"


@cache
def load_profiles() -> Mapping[str, ColumnProfile]:
    """All shipped profiles by name ("standard", "momentum", "fasit")."""
    raw = json.loads(resources.files(__package__).joinpath(PROFILES_RESOURCE).read_text("utf-8"))
    return MappingProxyType(parse_profiles(raw))


def get_profile(name: str) -> ColumnProfile:
    profiles = load_profiles()
    try:
        return profiles[name.strip().casefold()]
    except KeyError:
        raise LookupError(f"unknown column profile {name!r}; known profiles: {', '.join(sorted(profiles))}") from None


def parse_profiles(raw: Mapping[str, Any]) -> dict[str, ColumnProfile]:
    """Build profiles from the JSON structure, refusing ambiguous vocabularies."""
    try:
        required = tuple(Kolonne(name) for name in raw["required_columns"])
        optional = tuple(Kolonne(name) for name in raw["optional_columns"])
        profiles = {
            name.casefold(): _parse_profile(name, spec, required, optional) for name, spec in raw["profiles"].items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise MappingDataError(f"column profile data is malformed: {exc}") from exc
    return profiles


def _parse_profile(
    name: str, spec: Mapping, required: tuple[Kolonne, ...], optional: tuple[Kolonne, ...]
) -> ColumnProfile:
    by_key: dict[str, Kolonne] = {}
    by_skeleton: dict[str, Kolonne] = {}
    for column in (*required, *optional):
        # The canonical name itself is always accepted, so JSON rows can use it directly.
        for alias in (column.value, *spec["columns"].get(column.value, ())):
            for index, key in ((by_key, label_key(alias)), (by_skeleton, label_skeleton(alias))):
                if index.setdefault(key, column) is not column:
                    raise MappingDataError(
                        f"profile {name!r}: header {alias!r} is ambiguous between "
                        f"{index[key].value!r} and {column.value!r}"
                    )
    unknown = set(spec["columns"]) - {column.value for column in (*required, *optional)}
    if unknown:
        raise MappingDataError(f"profile {name!r} names unknown columns: {sorted(unknown)}")
    return ColumnProfile(
        name=name,
        display_name=spec.get("display_name", name),
        required=required,
        optional=optional,
        aliases=MappingProxyType(
            {column: tuple(spec["columns"].get(column.value, ())) for column in (*required, *optional)}
        ),
        _by_key=MappingProxyType(by_key),
        _by_skeleton=MappingProxyType(by_skeleton),
    )
