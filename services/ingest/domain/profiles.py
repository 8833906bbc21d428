"""Per-vendor column profiles: which export header means which canonical column.

The profiles are data because vendors rename columns between releases and a new header should
be a data change, not a code change: the built-in ones ship in ``kolonneprofiler_v1.json``
beside this module, and a vendor or KL registers more over the API (stored in ingest's database,
``services.ingest.profiles``), each extending a built-in one. An upload may also carry a one-off
column mapping (``with_overrides``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from services.ingest.domain.errors import MappingDataError
from services.ingest.domain.text import is_blank, label_key, label_skeleton, label_words

PROFILES_RESOURCE = "kolonneprofiler_v1.json"
MAX_HEADERS_IN_MESSAGES = 30
_HEADER_TEXT_LIMIT = 40
# Six or more digits in a "header" means we are looking at a data row (CPR, phone): never echo it.
_DIGIT_RUN = re.compile(r"\d(?:[\s.\-/]?\d){5,}")
PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,47}")
MAX_SUGGESTIONS = 3


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
    # The citizen's visitation category (jobparat, aktivitetsparat, ...), in its own column next
    # to the benefit; the target group of some benefits depends on it.
    VISITATIONSKATEGORI = "visitationskategori"
    # Exempt from Digital Post (fritaget for Digital Post): dispatch sends the citizen's letters
    # and paper questionnaire by physical post. Blank: not exempt.
    FRITAGET_DIGITAL_POST = "fritaget_digital_post"


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
    _by_words: Mapping[str, Kolonne] = field(repr=False)
    _by_skeleton: Mapping[str, Kolonne] = field(repr=False)
    version: int | None = None  # registered profiles are versioned; built-in ones are not
    base: str | None = None  # the built-in profile a registered one extends
    # A one-off mapping passed with an upload (canonical column -> the file's header), matched
    # before everything else.
    overrides: Mapping[str, Kolonne] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    # What a registered profile adds to its base, and the one-off mapping as given: with the name,
    # enough to rebuild the profile anywhere (``to_spec``, ``from_spec``).
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    column_map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    @property
    def reference(self) -> str:
        """How an upload names this profile ("momentum", or "acme@2" for a registered one)."""
        return self.name if self.version is None else f"{self.name}@{self.version}"

    def column_for(self, header: object) -> Kolonne | None:
        """The canonical column a header means, or None: a one-off mapping first, then the exact
        key, the word key (word order, synonyms) and the consonant skeleton."""
        if is_blank(header):
            return None
        key = label_key(header)
        column = self.overrides.get(key) if self.overrides else None
        if column is None:
            column = self._by_key.get(key)
        if column is None:
            column = self._by_words.get(label_words(header))
        if column is None:
            skeleton = label_skeleton(header)
            column = self._by_skeleton.get(skeleton) if skeleton else None
        return column

    def closest_headers(self, column: Kolonne, headers: Sequence[str]) -> list[str]:
        """The headers found that look most like ``column``'s known names (for a 422's advice)."""
        names = [label_key(name) for name in (column.value, *self.aliases.get(column, ()))]
        scored = []
        for header in headers:
            if not header or self.column_for(header) is not None:
                continue
            key = label_key(header)
            score = max(difflib.SequenceMatcher(None, key, name).ratio() for name in names)
            if score >= 0.3:
                scored.append((score, header))
        scored.sort(key=lambda pair: -pair[0])
        return [header for _, header in scored[:MAX_SUGGESTIONS]]

    def with_overrides(self, column_map: Mapping[str, str]) -> ColumnProfile:
        """This profile with a one-off mapping (canonical column name -> the file's header)."""
        overrides: dict[str, Kolonne] = {}
        for name, header in column_map.items():
            try:
                column = Kolonne(name)
            except ValueError:
                raise LookupError(
                    f"column_map names an unknown column {name!r}; columns: {', '.join(c.value for c in Kolonne)}"
                ) from None
            if is_blank(header) or not isinstance(header, str):
                raise LookupError(f"column_map gives no header for {name!r}")
            overrides[label_key(header)] = column
        return replace(self, overrides=MappingProxyType(overrides), column_map=MappingProxyType(dict(column_map)))

    def to_spec(self) -> dict:
        """JSON that ``from_spec`` turns back into this profile (stored with an upload job)."""
        spec: dict[str, Any] = {"name": self.name}
        if self.version is not None:
            spec.update(version=self.version, base=self.base, display_name=self.display_name, columns={k: list(v) for k, v in self.extra.items()})
        if self.column_map:
            spec["column_map"] = dict(self.column_map)
        return spec

    def to_json(self) -> dict:
        """The profile as the API shows it: every column with the headers it is known by."""
        return {
            "name": self.name,
            "reference": self.reference,
            "display_name": self.display_name,
            "version": self.version,
            "base": self.base,
            "required_columns": [column.value for column in self.required],
            "optional_columns": [column.value for column in self.optional],
            "columns": {column.value: [column.value, *self.aliases[column]] for column in (*self.required, *self.optional)},
        }

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
def _profile_data() -> Mapping[str, Any]:
    return json.loads(resources.files(__package__).joinpath(PROFILES_RESOURCE).read_text("utf-8"))


@cache
def load_profiles() -> Mapping[str, ColumnProfile]:
    """All shipped profiles by name ("standard", "momentum", "fasit")."""
    return MappingProxyType(parse_profiles(_profile_data()))


def registered_profile(
    name: str, version: int, columns: Mapping[str, Sequence[str]], *, base: str = "standard", display_name: str | None = None
) -> ColumnProfile:
    """A profile registered over the API: ``base``'s vocabulary plus ``columns`` (canonical column
    -> extra headers). Raises ``MappingDataError`` (ambiguous or unknown columns) or
    ``LookupError`` (unknown base) with what to fix."""
    if not PROFILE_NAME.fullmatch(name):
        raise MappingDataError("a profile name is 1-48 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit")
    if name in load_profiles():
        raise MappingDataError(f"{name!r} is a built-in profile; register yours under another name")
    base_profile = get_profile(base)
    if base_profile.version is not None:
        raise LookupError("a registered profile extends a built-in one (standard, momentum, fasit)")
    raw = _profile_data()
    spec_columns = {
        column: [*raw["profiles"][base_profile.name]["columns"].get(column, ()), *columns.get(column, ())]
        for column in {*raw["profiles"][base_profile.name]["columns"], *columns}
    }
    spec = {"display_name": display_name or name, "columns": spec_columns}
    try:
        required = tuple(Kolonne(column) for column in raw["required_columns"])
        optional = tuple(Kolonne(column) for column in raw["optional_columns"])
    except ValueError as exc:  # pragma: no cover - shipped data
        raise MappingDataError(str(exc)) from exc
    unknown = set(columns) - {column.value for column in (*required, *optional)}
    if unknown:
        raise MappingDataError(
            f"unknown column(s) {sorted(unknown)}; columns: {', '.join(column.value for column in (*required, *optional))}"
        )
    profile = _parse_profile(name, spec, required, optional)
    return replace(
        profile, version=version, base=base_profile.name,
        extra=MappingProxyType({column: tuple(headers) for column, headers in columns.items()}),
    )


def get_profile(name: str) -> ColumnProfile:
    profiles = load_profiles()
    try:
        return profiles[name.strip().casefold()]
    except KeyError:
        raise LookupError(f"unknown column profile {name!r}; known profiles: {', '.join(sorted(profiles))}") from None


def from_spec(spec: Mapping[str, Any]) -> ColumnProfile:
    """The profile ``ColumnProfile.to_spec`` described."""
    if spec.get("version") is None:
        profile = get_profile(spec["name"])
    else:
        profile = registered_profile(
            spec["name"], spec["version"], spec.get("columns", {}), base=spec.get("base") or "standard",
            display_name=spec.get("display_name"),
        )
    return profile.with_overrides(spec["column_map"]) if spec.get("column_map") else profile


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
    by_words: dict[str, Kolonne] = {}
    by_skeleton: dict[str, Kolonne] = {}
    for column in (*required, *optional):
        # The canonical name itself is always accepted, so JSON rows can use it directly.
        for alias in (column.value, *spec["columns"].get(column.value, ())):
            if not isinstance(alias, str) or is_blank(alias):
                raise MappingDataError(f"profile {name!r}: a header for {column.value!r} is blank or not text")
            for index, key in (
                (by_key, label_key(alias)), (by_words, label_words(alias)), (by_skeleton, label_skeleton(alias))
            ):
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
        _by_words=MappingProxyType(by_words),
        _by_skeleton=MappingProxyType(by_skeleton),
    )
