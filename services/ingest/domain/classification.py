"""Classification of a validated citizen into a maalgruppe (target group), or an exclusion reason.

The benefit-to-maalgruppe table, the minimum durations and the background bands are data in a
versioned file (``maalgrupper_v1.json``), because seed 004 requires the mapping to be done
centrally "to ensure uniform practice", and the law and the case systems' benefit names change.
A round records the mapping version it used, so last year's results stay reproducible.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from itertools import pairwise
from types import MappingProxyType

from services.ingest.domain.errors import MappingDataError
from services.ingest.domain.text import label_key, label_skeleton
from services.ingest.domain.validation import ValidRow

DEFAULT_MAPPING_VERSION = "v1"
_VERSION_NAME = re.compile(r"v[0-9]+")


class ExclusionReason(StrEnum):
    """Why a valid row is not part of the survey population; one per row, so they can be counted."""

    RESEARCH_PROTECTED = "research_protected"  # only when the mapping says so, see the data file
    PASSIVE = "passive"
    UNKNOWN_BENEFIT = "unknown_benefit"  # not in the mapping table: the table may need a new alias
    BENEFIT_OUT_OF_SCOPE = "benefit_out_of_scope"  # a known benefit outside the five groups
    TRANSITION_AFTER_REFERENCE_DATE = "transition_after_reference_date"
    TOO_SHORT_DURATION = "too_short_duration"
    UNDER_MINIMUM_AGE = "under_minimum_age"


@dataclass(frozen=True, slots=True)
class MinimumDuration:
    """Time on the current benefit required at the reference date (calendar months plus weeks)."""

    months: int = 0
    weeks: int = 0

    def is_reached(self, overgangsdato: date, reference_date: date) -> bool:
        """True when the full duration has passed; exactly 12 months to the day counts."""
        return add_months(overgangsdato, self.months) + timedelta(weeks=self.weeks) <= reference_date


@dataclass(frozen=True, slots=True)
class BenefitRule:
    ydelse: str  # the canonical benefit name in the table
    maalgruppe: str
    minimum_duration: MinimumDuration | None


@dataclass(frozen=True, slots=True)
class Band:
    """A reporting interval: ``lower`` inclusive, ``upper`` exclusive, None for open-ended."""

    label: str
    lower: int
    upper: int | None

    def contains(self, value: int) -> bool:
        return value >= self.lower and (self.upper is None or value < self.upper)


@dataclass(frozen=True)
class MaalgruppeMapping:
    version: str
    maalgrupper: Mapping[str, str]  # maalgruppe key -> display name
    rules: tuple[BenefitRule, ...]
    exclude_research_protected: bool
    minimum_age: int
    age_bands: tuple[Band, ...]  # in completed years
    duration_bands: tuple[Band, ...]  # in full months on the current benefit
    _rules_by_key: Mapping[str, BenefitRule] = field(repr=False)
    _rules_by_skeleton: Mapping[str, BenefitRule] = field(repr=False)
    _out_of_scope_keys: frozenset[str] = field(repr=False)
    _out_of_scope_skeletons: frozenset[str] = field(repr=False)

    def rule_for(self, ydelse: str) -> BenefitRule | None:
        """The rule for a benefit name as a case system writes it (tolerant of case and æøå)."""
        rule = self._rules_by_key.get(label_key(ydelse))
        if rule is None:
            skeleton = label_skeleton(ydelse)
            rule = self._rules_by_skeleton.get(skeleton) if skeleton else None
        return rule

    def is_out_of_scope(self, ydelse: str) -> bool:
        return label_key(ydelse) in self._out_of_scope_keys or label_skeleton(ydelse) in self._out_of_scope_skeletons

    def age_band(self, age: int) -> str | None:
        return _band_label(self.age_bands, age)

    def duration_band(self, months_on_benefit: int) -> str | None:
        return _band_label(self.duration_bands, months_on_benefit)


@dataclass(frozen=True, slots=True)
class Classification:
    maalgruppe: str | None  # None when excluded
    exclusion_reason: ExclusionReason | None
    duration_band: str | None  # None when the transition lies after the reference date
    age_band: str | None
    benefit_maalgruppe: str | None  # the group the benefit maps to, even when excluded (for counts)
    mapping_version: str

    @property
    def is_included(self) -> bool:
        return self.exclusion_reason is None


def classify(row: ValidRow, reference_date: date, mapping: MaalgruppeMapping) -> Classification:
    """Place a validated row in its maalgruppe, or give the first reason it is excluded.

    The order of checks decides which reason a row with several is counted under: legal and
    case-status reasons first (protection, passive), then the benefit, then timing and age.
    """
    rule = mapping.rule_for(row.ydelse)
    started = row.overgangsdato <= reference_date
    months = full_months_between(row.overgangsdato, reference_date) if started else None

    def result(reason: ExclusionReason | None) -> Classification:
        return Classification(
            maalgruppe=rule.maalgruppe if reason is None and rule else None,
            exclusion_reason=reason,
            duration_band=mapping.duration_band(months) if months is not None else None,
            age_band=mapping.age_band(row.age),
            benefit_maalgruppe=rule.maalgruppe if rule else None,
            mapping_version=mapping.version,
        )

    if row.forskerbeskyttet and mapping.exclude_research_protected:
        return result(ExclusionReason.RESEARCH_PROTECTED)
    if row.passiv:
        return result(ExclusionReason.PASSIVE)
    if rule is None:
        if mapping.is_out_of_scope(row.ydelse):
            return result(ExclusionReason.BENEFIT_OUT_OF_SCOPE)
        return result(ExclusionReason.UNKNOWN_BENEFIT)
    if not started:
        return result(ExclusionReason.TRANSITION_AFTER_REFERENCE_DATE)
    if rule.minimum_duration and not rule.minimum_duration.is_reached(row.overgangsdato, reference_date):
        return result(ExclusionReason.TOO_SHORT_DURATION)
    if row.age < mapping.minimum_age:
        return result(ExclusionReason.UNDER_MINIMUM_AGE)
    return result(None)


def add_months(start: date, months: int) -> date:
    """Calendar months later; the day is clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def full_months_between(start: date, end: date) -> int:
    """Largest n with add_months(start, n) <= end; consistent with ``MinimumDuration``."""
    if end < start:
        raise ValueError("end lies before start")
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if add_months(start, months) > end:
        months -= 1
    return months


@cache
def load_mapping(version: str = DEFAULT_MAPPING_VERSION) -> MaalgruppeMapping:
    """The shipped mapping table of the given version ("v1" reads ``maalgrupper_v1.json``)."""
    if not _VERSION_NAME.fullmatch(version):
        raise LookupError(f"mapping version must look like 'v1', got {version!r}")
    resource = resources.files(__package__).joinpath(f"maalgrupper_{version}.json")
    if not resource.is_file():
        raise LookupError(f"no maalgruppe mapping of version {version!r} is shipped")
    return parse_mapping(json.loads(resource.read_text("utf-8")))


def parse_mapping(raw: Mapping) -> MaalgruppeMapping:
    """Build a mapping from its JSON structure, refusing names that could be confused."""
    try:
        maalgrupper = {key: spec["display_name"] for key, spec in raw["maalgrupper"].items()}
        rules = tuple(_parse_rule(entry, maalgrupper) for entry in raw["ydelser"])
        by_key, by_skeleton = _index_rules(raw["ydelser"], rules)
        out_of_scope = tuple(raw.get("out_of_scope_ydelser", ()))
        mapping = MaalgruppeMapping(
            version=raw["version"],
            maalgrupper=MappingProxyType(maalgrupper),
            rules=rules,
            exclude_research_protected=bool(raw.get("exclude_research_protected", False)),
            minimum_age=int(raw["minimum_age"]),
            age_bands=_parse_bands(raw["age_bands"], "from", "to", upper_inclusive=True),
            duration_bands=_parse_bands(raw["duration_bands"], "from_months", "to_months"),
            _rules_by_key=MappingProxyType(by_key),
            _rules_by_skeleton=MappingProxyType(by_skeleton),
            _out_of_scope_keys=frozenset(label_key(name) for name in out_of_scope),
            _out_of_scope_skeletons=frozenset(label_skeleton(name) for name in out_of_scope),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MappingDataError):
            raise
        raise MappingDataError(f"maalgruppe mapping data is malformed: {exc!r}") from exc
    clashes = mapping._out_of_scope_keys & set(by_key)
    if clashes:
        raise MappingDataError(f"benefits both mapped and out of scope: {sorted(clashes)}")
    return mapping


def _parse_rule(entry: Mapping, maalgrupper: Mapping[str, str]) -> BenefitRule:
    if entry["maalgruppe"] not in maalgrupper:
        raise MappingDataError(f"benefit {entry['ydelse']!r} maps to unknown maalgruppe {entry['maalgruppe']!r}")
    duration = entry.get("minimum_duration")
    return BenefitRule(
        ydelse=entry["ydelse"],
        maalgruppe=entry["maalgruppe"],
        minimum_duration=(
            MinimumDuration(months=int(duration.get("months", 0)), weeks=int(duration.get("weeks", 0)))
            if duration
            else None
        ),
    )


def _index_rules(
    entries: Sequence[Mapping], rules: Sequence[BenefitRule]
) -> tuple[dict[str, BenefitRule], dict[str, BenefitRule]]:
    by_key: dict[str, BenefitRule] = {}
    by_skeleton: dict[str, BenefitRule] = {}
    for entry, rule in zip(entries, rules, strict=True):
        for name in (entry["ydelse"], *entry.get("aliases", ())):
            for index, key in ((by_key, label_key(name)), (by_skeleton, label_skeleton(name))):
                if index.setdefault(key, rule) is not rule:
                    raise MappingDataError(
                        f"benefit name {name!r} is ambiguous between {index[key].ydelse!r} and {rule.ydelse!r}"
                    )
    return by_key, by_skeleton


def _parse_bands(
    entries: Sequence[Mapping], lower_key: str, upper_key: str, *, upper_inclusive: bool = False
) -> tuple[Band, ...]:
    """Bands must be contiguous and ascending, so every value falls in at most one."""
    bands = []
    for entry in entries:
        upper = entry[upper_key]
        # Age bands are written inclusively ("18-29"); store every band half-open.
        if upper is not None and upper_inclusive:
            upper += 1
        bands.append(Band(label=entry["label"], lower=int(entry[lower_key]), upper=upper))
    for before, after in pairwise(bands):
        if before.upper != after.lower:
            raise MappingDataError(f"bands {before.label!r} and {after.label!r} are not contiguous")
    return tuple(bands)


def _band_label(bands: Sequence[Band], value: int) -> str | None:
    for band in bands:
        if band.contains(value):
            return band.label
    return None
