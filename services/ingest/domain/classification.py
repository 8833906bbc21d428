"""Classification of a validated citizen into a maalgruppe (target group), or an exclusion reason.

The benefit-to-maalgruppe table, the minimum durations and the background bands are data in a
versioned file (``maalgrupper_v1.json``, ``maalgrupper_v2.json``), because seed 004 requires the
mapping to be done centrally "to ensure uniform practice", and the law and the case systems'
benefit names change. A round records the mapping version it used, so last year's results stay
reproducible.

From v2 the group may depend on the benefit *and* the visitation category (visitationskategori),
which the case systems export in a column of its own: kontanthjælp is job-ready or activity-ready
by category, ressourceforløbsydelse is aktivitetsparate or jobafklaring by the kind of course. A
benefit that needs the category and has none, or one the mapping does not know for it, is a row
error naming both columns (``BenefitDecision.error``): never a default group.
"""

from __future__ import annotations

import calendar
import difflib
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
from services.ingest.domain.text import is_blank, label_key, label_skeleton
from services.ingest.domain.validation import ValidRow

DEFAULT_MAPPING_VERSION = "v2"
_VERSION_NAME = re.compile(r"v[0-9]+")


class ExclusionReason(StrEnum):
    """Why a valid row is not part of the survey population; one per row, so they can be counted."""

    RESEARCH_PROTECTED = "research_protected"  # only when the mapping says so, see the data file
    PASSIVE = "passive"
    # The benefit step could not place the row: a benefit not in the mapping table, or a benefit
    # whose group needs a visitation category that is missing, unknown or contradicts it. Always
    # a row error (``BenefitDecision.error``), never an exclusion.
    UNKNOWN_BENEFIT = "unknown_benefit"
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
    maalgruppe: str | None  # None when the group depends on the visitation category
    minimum_duration: MinimumDuration | None
    # visitation category key -> maalgruppe, for benefits whose group depends on it
    by_kategori: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    kategori: str | None = None  # the category a combined name (v1: "Kontanthjælp - jobparat") implies


@dataclass(frozen=True, slots=True)
class BenefitDecision:
    """What the benefit and visitation category of a row mean: a group, or a row error."""

    rule: BenefitRule | None
    maalgruppe: str | None
    kategori: str | None  # the canonical category key the decision used (None: not used)
    out_of_scope: bool = False
    error: tuple[str, str] | None = None  # (column, message) when the row cannot be classified

    @property
    def label(self) -> tuple[str, str]:
        """(benefit, category) as the report counts classification decisions."""
        return (self.rule.ydelse if self.rule else "", self.kategori or "")


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
    kategorier: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # key -> display name
    _kategori_by_key: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    _kategori_by_skeleton: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    _accepted_names: tuple[str, ...] = field(default=(), repr=False)  # every benefit name and alias
    raw: Mapping = field(default_factory=lambda: MappingProxyType({}), repr=False)  # the data file, for GET

    def rule_for(self, ydelse: str) -> BenefitRule | None:
        """The rule for a benefit name as a case system writes it (tolerant of case and æøå)."""
        rule = self._rules_by_key.get(label_key(ydelse))
        if rule is None:
            skeleton = label_skeleton(ydelse)
            rule = self._rules_by_skeleton.get(skeleton) if skeleton else None
        return rule

    def kategori_for(self, text: str) -> str | None:
        """The category key a visitation category cell means (tolerant like benefit names)."""
        key = self._kategori_by_key.get(label_key(text))
        if key is None:
            skeleton = label_skeleton(text)
            key = self._kategori_by_skeleton.get(skeleton) if skeleton else None
        return key

    def closest_benefits(self, ydelse: str, limit: int = 3) -> list[str]:
        """The accepted benefit names nearest to an unknown one (for its row error)."""
        by_key = {label_key(name): name for name in self._accepted_names}
        return [by_key[key] for key in difflib.get_close_matches(label_key(ydelse), list(by_key), n=limit, cutoff=0.5)]

    def decide(self, ydelse: str, kategori: str | None) -> BenefitDecision:
        """The group of a benefit with the row's visitation category (blank: None).

        Messages name the benefit and category by the mapping's own names, never by the cell's
        text, except for an unknown benefit, which is named only through the closest accepted names.
        """
        rule = self.rule_for(ydelse)
        if rule is None:
            if self.is_out_of_scope(ydelse):
                return BenefitDecision(None, None, None, out_of_scope=True)
            closest = self.closest_benefits(ydelse)
            hint = f"closest accepted names: {', '.join(closest)}" if closest else "no accepted name is close"
            return BenefitDecision(None, None, None, error=(
                "ydelse",
                f"benefit (ydelse) is not in the maalgruppe mapping {self.version} ({hint}); every accepted name is "
                f"listed at GET /maalgrupper; a name the case system uses and the mapping lacks goes to KL",
            ))
        blank = kategori is None or is_blank(kategori)
        key = None if blank else self.kategori_for(kategori)  # type: ignore[arg-type]
        if rule.by_kategori:
            accepted = ", ".join(self.kategorier[k] for k in rule.by_kategori)
            if blank:
                problem = "has no visitation category (column visitationskategori)"
            elif key is None:
                problem = "has a visitation category (column visitationskategori) the mapping does not know"
            elif key not in rule.by_kategori:
                problem = f"has visitation category {self.kategorier[key]} (column visitationskategori), which does not apply to it"
            else:
                return BenefitDecision(rule, rule.by_kategori[key], key)
            return BenefitDecision(rule, None, key, error=(
                "visitationskategori",
                f"benefit {rule.ydelse} (column ydelse) {problem}; its target group depends on the category: "
                f"one of {accepted} (mapping {self.version}, GET /maalgrupper)",
            ))
        if rule.kategori is not None and key is not None and key != rule.kategori:
            return BenefitDecision(rule, None, key, error=(
                "visitationskategori",
                f"benefit {rule.ydelse} (column ydelse) names the visitation category {self.kategorier[rule.kategori]}, "
                f"but column visitationskategori says {self.kategorier[key]}; give the benefit alone "
                f"(e.g. {rule.ydelse.split(' - ')[0]}) with the category in its column",
            ))
        return BenefitDecision(rule, rule.maalgruppe, rule.kategori)

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
    error: tuple[str, str] | None = None  # (column, message): the benefit step's row error
    label: tuple[str, str] = ("", "")  # (benefit, category) the decision used, for the report's counts

    @property
    def is_included(self) -> bool:
        return self.exclusion_reason is None


def classify(row: ValidRow, reference_date: date, mapping: MaalgruppeMapping) -> Classification:
    """Place a validated row in its maalgruppe, or give the first reason it is excluded.

    The order of checks decides which reason a row with several is counted under: legal and
    case-status reasons first (protection, passive), then the benefit and its visitation
    category, then timing and age.
    """
    decision = mapping.decide(row.ydelse, row.visitationskategori)
    rule = decision.rule
    started = row.overgangsdato <= reference_date
    months = full_months_between(row.overgangsdato, reference_date) if started else None

    def result(reason: ExclusionReason | None) -> Classification:
        return Classification(
            maalgruppe=decision.maalgruppe if reason is None else None,
            exclusion_reason=reason,
            duration_band=mapping.duration_band(months) if months is not None else None,
            age_band=mapping.age_band(row.age),
            benefit_maalgruppe=decision.maalgruppe,
            mapping_version=mapping.version,
            error=decision.error if reason is ExclusionReason.UNKNOWN_BENEFIT else None,
            label=decision.label,
        )

    if row.forskerbeskyttet and mapping.exclude_research_protected:
        return result(ExclusionReason.RESEARCH_PROTECTED)
    if row.passiv:
        return result(ExclusionReason.PASSIVE)
    if decision.out_of_scope:
        return result(ExclusionReason.BENEFIT_OUT_OF_SCOPE)
    if decision.error is not None or rule is None:
        return result(ExclusionReason.UNKNOWN_BENEFIT)
    if not started:
        return result(ExclusionReason.TRANSITION_AFTER_REFERENCE_DATE)
    if rule.minimum_duration and not rule.minimum_duration.is_reached(row.overgangsdato, reference_date):
        return result(ExclusionReason.TOO_SHORT_DURATION)
    if row.age < mapping.minimum_age:
        return result(ExclusionReason.UNDER_MINIMUM_AGE)
    return result(None)


def transition_warning(reference_date: date) -> str:
    """The warning for a transition date after the round's reference date: what it means."""
    return (
        f"the transition to the current benefit lies after the round's reference date {reference_date.isoformat()}: "
        "at the reference date the citizen was not yet on this benefit, so has no duration on it and is "
        "excluded from the frame (transition_after_reference_date); check the date, or the citizen's previous benefit"
    )


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
        kategorier = {key: spec["display_name"] for key, spec in raw.get("visitationskategorier", {}).items()}
        rules = tuple(_parse_rule(entry, maalgrupper, kategorier) for entry in raw["ydelser"])
        by_key, by_skeleton = _index_rules(raw["ydelser"], rules)
        kategori_by_key, kategori_by_skeleton = _index_kategorier(raw.get("visitationskategorier", {}))
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
            kategorier=MappingProxyType(kategorier),
            _kategori_by_key=MappingProxyType(kategori_by_key),
            _kategori_by_skeleton=MappingProxyType(kategori_by_skeleton),
            _accepted_names=tuple(name for entry in raw["ydelser"] for name in (entry["ydelse"], *entry.get("aliases", ()))),
            raw=MappingProxyType(dict(raw)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MappingDataError):
            raise
        raise MappingDataError(f"maalgruppe mapping data is malformed: {exc!r}") from exc
    clashes = mapping._out_of_scope_keys & set(by_key)
    if clashes:
        raise MappingDataError(f"benefits both mapped and out of scope: {sorted(clashes)}")
    return mapping


def _parse_rule(entry: Mapping, maalgrupper: Mapping[str, str], kategorier: Mapping[str, str]) -> BenefitRule:
    by_kategori = dict(entry.get("by_visitationskategori") or {})
    if bool(by_kategori) == ("maalgruppe" in entry):
        raise MappingDataError(f"benefit {entry['ydelse']!r} needs either a maalgruppe or by_visitationskategori")
    for group in (entry.get("maalgruppe"), *by_kategori.values()):
        if group is not None and group not in maalgrupper:
            raise MappingDataError(f"benefit {entry['ydelse']!r} maps to unknown maalgruppe {group!r}")
    for kategori in (*by_kategori, entry.get("visitationskategori")):
        if kategori is not None and kategori not in kategorier:
            raise MappingDataError(f"benefit {entry['ydelse']!r} names unknown visitation category {kategori!r}")
    duration = entry.get("minimum_duration")
    return BenefitRule(
        ydelse=entry["ydelse"],
        maalgruppe=entry.get("maalgruppe"),
        by_kategori=MappingProxyType(by_kategori),
        kategori=entry.get("visitationskategori"),
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


def _index_kategorier(raw: Mapping[str, Mapping]) -> tuple[dict[str, str], dict[str, str]]:
    by_key: dict[str, str] = {}
    by_skeleton: dict[str, str] = {}
    for key, spec in raw.items():
        for name in (spec["display_name"], key, *spec.get("aliases", ())):
            for index, label in ((by_key, label_key(name)), (by_skeleton, label_skeleton(name))):
                if index.setdefault(label, key) != key:
                    raise MappingDataError(f"visitation category name {name!r} is ambiguous between {index[label]!r} and {key!r}")
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
