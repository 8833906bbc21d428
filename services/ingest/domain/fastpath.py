"""``validate_row`` and ``classify`` for a whole delivery, with the per-row work cached away.

A national extract has a million rows but only a few thousand distinct dates, a dozen benefit
names and a handful of yes/no spellings, so almost every cell has been parsed before. Profiling
showed ~400 µs per row through ``validate_row`` + ``classify`` (libphonenumber, stdnum and the
tolerant label matching dominate); with these caches a typical row costs a few µs.

The contract is strict: for every row the result equals what ``validate_row`` and ``classify``
return. Only rows in the common, unambiguous shapes take the fast path; anything unusual (a
blank required cell, an odd CPR layout, a value that does not parse) is handed to
``validate_row`` itself, so error messages come from one place. ``tests/ingest/unit`` checks
the equivalence on a mixed corpus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from functools import lru_cache

from services.ingest.domain.classification import (
    Classification,
    ExclusionReason,
    MaalgruppeMapping,
    classify,
    full_months_between,
)
from services.ingest.domain.cpr import age_at, gender_of
from services.ingest.domain.errors import PhoneNumberError
from services.ingest.domain.phone import normalise_phone
from services.ingest.domain.profiles import Kolonne
from services.ingest.domain.readers import EXTRA_FIELDS_KEY
from services.ingest.domain.validation import (
    MAX_TEXT_LENGTH,
    RowError,
    ValidRow,
    parse_bool,
    parse_date,
    validate_row,
)

_CPR_COMMON_SHAPE = re.compile(r"([0-9]{6})-?([0-9]{4})")
# "+45 12 34 56 78", "0045-12345678", "12345678": a Danish subscriber number is 8 digits and its
# validity in libphonenumber's metadata depends only on the leading digits (checked in the tests
# for every 3-digit prefix), so one real parse per 3-digit prefix answers for all numbers.
_DANISH_PHONE = re.compile(r"(?:\+45|0045)?([0-9]{8})")
_PHONE_SEPARATORS = str.maketrans("", "", " -")
_CACHE_LIMIT = 100_000  # distinct values per cache; beyond that we just stop remembering
_INVALID = object()


class CachedRowValidator:
    """Validates and classifies one delivery's rows against one reference date and mapping."""

    def __init__(self, reference_date: date, mapping: MaalgruppeMapping, today: date | None = None) -> None:
        self.reference_date = reference_date
        self.today = today  # dates after it are errors (validate_row's rule)
        self.mapping = _CachedMapping(mapping)
        self._dates: dict[str, object] = {}
        self._bools: dict[str, object] = {}
        self._birth: dict[str, object] = {}  # first 7 digits (date part + century digit) -> (birth date, age)
        self._danish_phone_valid: dict[str, bool] = {}
        self._danish_phone_warning: dict[str, tuple] = {}
        self._texts: dict[str, object] = {}  # raw benefit cell -> tidy text, or None
        self._kategorier: dict[str, object] = {}  # raw category cell -> tidy text, or None
        self._benefit_timing: dict[tuple, tuple] = {}  # ((ydelse, kategori), overgangsdato) -> see benefit_part

    def validate(self, row_number: int, row: Mapping[str, object]) -> ValidRow | list[RowError]:
        fast = self._fast_validate(row_number, row)
        return fast if fast is not None else validate_row(row_number, row, reference_date=self.reference_date, today=self.today)

    def classify(self, row: ValidRow) -> Classification:
        return classify(row, self.reference_date, self.mapping)  # type: ignore[arg-type]  # duck-typed cache

    # --- record fast path (CSV fields by position, no per-row dict) -------------------------------

    def validate_fields(self, fields: list[str], positions: tuple[int, ...]) -> tuple | None:
        """The common shapes of one CSV record, by column position (-1: the file lacks the column).

        Returns ``(cpr, birth_date, age, benefit, overgangsdato, passiv, forskerbeskyttet, navn,
        phone_e164, phone_warning, fritaget_digital_post)`` when the row is valid and takes the fast path, else None: the
        caller then builds the row mapping and calls :meth:`validate`, so every error message still
        comes from ``validate_row``. ``benefit`` is the pair (ydelse, visitationskategori or None).
        Only for records exactly as wide as the header.
        """
        p_cpr, p_ydelse, p_overgang, p_samtale, p_afsluttet, p_passiv, p_forsker, p_navn, p_telefon, p_kategori, p_fritaget = positions
        raw_cpr = fields[p_cpr]
        if len(raw_cpr) == 11 and raw_cpr[6] == "-":
            number = raw_cpr[:6] + raw_cpr[7:]
        elif len(raw_cpr) == 10:
            number = raw_cpr
        else:
            return None
        if not (number.isascii() and number.isdigit()):
            return None
        birth = self._birth_and_age(number[:7])
        if birth is None:
            return None
        ydelse = self.benefit_key(fields[p_ydelse], fields[p_kategori] if p_kategori >= 0 else "")
        if ydelse is None:
            return None
        overgangsdato = self._date(fields[p_overgang])
        if overgangsdato is None or overgangsdato is _INVALID:
            return None
        if p_samtale >= 0 and self._date(fields[p_samtale]) is _INVALID:
            return None
        if p_afsluttet >= 0 and self._bool(fields[p_afsluttet]) is _INVALID:
            return None
        passiv = self._bool(fields[p_passiv]) if p_passiv >= 0 else False
        forskerbeskyttet = self._bool(fields[p_forsker]) if p_forsker >= 0 else False
        fritaget = self._bool(fields[p_fritaget]) if p_fritaget >= 0 else False
        if passiv is _INVALID or forskerbeskyttet is _INVALID or fritaget is _INVALID:
            return None
        navn = None
        if p_navn >= 0:
            navn = " ".join(fields[p_navn].split()) or None
            if navn is not None and len(navn) > MAX_TEXT_LENGTH:
                return None
        phone_e164 = phone_warning = None
        if p_telefon >= 0:
            phone_e164, phone_warning = self._phone(fields[p_telefon])
        return (
            number, birth[0], birth[1], ydelse, overgangsdato, passiv or False, forskerbeskyttet or False, navn,
            phone_e164, phone_warning, fritaget or False,
        )

    def classify_parts(
        self, ydelse: tuple[str, str | None], overgangsdato: date, age: int, passiv: bool, forskerbeskyttet: bool
    ) -> tuple[ExclusionReason | None, str | None, str | None, str | None]:
        """``classify`` on the parts of a valid row: (exclusion reason, maalgruppe, age band,
        duration band); ``ydelse`` is the pair (benefit, visitation category)."""
        return self.person_part(self.benefit_part(ydelse, overgangsdato), age, passiv, forskerbeskyttet)

    def benefit_part(self, ydelse: tuple[str, str | None], overgangsdato: date) -> tuple:
        """(maalgruppe of the benefit and category, reason from benefit and timing or None,
        duration band, the decision's (benefit, category) label, the benefit step's row error as
        (column, message) or None), cached per distinct pair."""
        key = (ydelse, overgangsdato)
        benefit = self._benefit_timing.get(key)
        if benefit is None:
            benefit = self._benefit_and_timing(ydelse, overgangsdato)
            _remember(self._benefit_timing, key, benefit)
        return benefit

    def person_part(
        self, benefit: tuple, age: int, passiv: bool, forskerbeskyttet: bool
    ) -> tuple[ExclusionReason | None, str | None, str | None, str | None]:
        """The rest of ``classify``, in its order of reasons: protection, passive, the benefit
        and its timing, then age."""
        maalgruppe, benefit_reason, duration_band = benefit[:3]
        mapping = self.mapping
        age_band = mapping.age_band(age)
        if forskerbeskyttet and mapping.exclude_research_protected:
            reason = ExclusionReason.RESEARCH_PROTECTED
        elif passiv:
            reason = ExclusionReason.PASSIVE
        elif benefit_reason is not None:
            reason = benefit_reason
        elif age < mapping.minimum_age:
            reason = ExclusionReason.UNDER_MINIMUM_AGE
        else:
            return None, maalgruppe, age_band, duration_band
        return reason, None, age_band, duration_band

    def _benefit_and_timing(self, ydelse: tuple[str, str | None], overgangsdato: date) -> tuple:
        mapping, reference_date = self.mapping, self.reference_date
        decision = mapping.decide(*ydelse)
        rule = decision.rule
        started = overgangsdato <= reference_date
        duration_band = mapping.duration_band(full_months_between(overgangsdato, reference_date)) if started else None
        if decision.out_of_scope:
            reason = ExclusionReason.BENEFIT_OUT_OF_SCOPE
        elif decision.error is not None or rule is None:
            reason = ExclusionReason.UNKNOWN_BENEFIT
        elif not started:
            reason = ExclusionReason.TRANSITION_AFTER_REFERENCE_DATE
        elif rule.minimum_duration and not rule.minimum_duration.is_reached(overgangsdato, reference_date):
            reason = ExclusionReason.TOO_SHORT_DURATION
        else:
            reason = None
        return decision.maalgruppe, reason, duration_band, decision.label, decision.error

    # --- fast path: returns None to hand the row to validate_row ----------------------------------

    def _fast_validate(self, row_number: int, row: Mapping[str, object]) -> ValidRow | None:
        if row.get(EXTRA_FIELDS_KEY):
            return None
        raw_cpr = row.get(Kolonne.CPR)
        if type(raw_cpr) is not str:
            return None
        match = _CPR_COMMON_SHAPE.fullmatch(raw_cpr)
        if match is None:
            return None
        number = match[1] + match[2]
        birth = self._birth_and_age(number[:7])
        if birth is None:
            return None
        birth_date, age = birth

        ydelse = _tidy_text(row.get(Kolonne.YDELSE))
        if ydelse is None or len(ydelse) > MAX_TEXT_LENGTH:
            return None
        kategori = _optional_text(row.get(Kolonne.VISITATIONSKATEGORI))
        if kategori is _INVALID:
            return None
        overgangsdato = self._date(row.get(Kolonne.OVERGANGSDATO))
        if overgangsdato is None or overgangsdato is _INVALID:
            return None
        seneste_samtale = self._date(row.get(Kolonne.SENESTE_SAMTALE))
        forloeb_afsluttet = self._bool(row.get(Kolonne.FORLOEB_AFSLUTTET))
        passiv = self._bool(row.get(Kolonne.PASSIV))
        forskerbeskyttet = self._bool(row.get(Kolonne.FORSKERBESKYTTET))
        fritaget = self._bool(row.get(Kolonne.FRITAGET_DIGITAL_POST))
        if _INVALID in (seneste_samtale, forloeb_afsluttet, passiv, forskerbeskyttet, fritaget):
            return None
        navn = _optional_text(row.get(Kolonne.NAVN))
        if navn is _INVALID:
            return None
        raw_phone = row.get(Kolonne.TELEFON)
        if raw_phone is not None and type(raw_phone) not in (str, int, float):
            return None
        phone_e164, phone_warning = self._phone(raw_phone)
        return ValidRow(
            cpr=number,
            gender=gender_of(number),
            birth_date=birth_date,
            age=age,
            ydelse=ydelse,
            overgangsdato=overgangsdato,  # type: ignore[arg-type]
            seneste_samtale=seneste_samtale,  # type: ignore[arg-type]
            forloeb_afsluttet=forloeb_afsluttet,  # type: ignore[arg-type]
            phone_e164=phone_e164,
            passiv=passiv or False,  # type: ignore[arg-type]
            navn=navn,
            forskerbeskyttet=forskerbeskyttet or False,  # type: ignore[arg-type]
            row_number=row_number,
            warnings=(RowError(row_number, Kolonne.TELEFON.value, phone_warning),) if phone_warning else (),
            visitationskategori=kategori,
            fritaget_digital_post=fritaget or False,  # type: ignore[arg-type]
        )

    def benefit_text(self, raw: str) -> str | None:
        """The benefit cell tidied as ``validate_row`` reads it, or None when the fast path cannot
        take it (blank, too long); cached per distinct cell."""
        ydelse = self._texts.get(raw, _MISSING)
        if ydelse is _MISSING:
            ydelse = _tidy_text(raw)
            if ydelse is not None and len(ydelse) > MAX_TEXT_LENGTH:
                ydelse = None
            _remember(self._texts, raw, ydelse)
        return ydelse  # type: ignore[return-value]

    def benefit_key(self, raw_ydelse: str, raw_kategori: str) -> tuple[str, str | None] | None:
        """(tidy benefit, tidy category or None) as ``validate_row`` reads them, or None when the
        fast path cannot take the row; cached per distinct cell."""
        ydelse = self.benefit_text(raw_ydelse)
        if ydelse is None:
            return None
        kategori = self._kategorier.get(raw_kategori, _MISSING)
        if kategori is _MISSING:
            kategori = _tidy_text(raw_kategori)
            if kategori is not None and len(kategori) > MAX_TEXT_LENGTH:
                kategori = _INVALID
            _remember(self._kategorier, raw_kategori, kategori)
        if kategori is _INVALID:
            return None
        return ydelse, kategori  # type: ignore[return-value]

    def _birth_and_age(self, date_part: str) -> tuple[date, int] | None:
        cached = self._birth.get(date_part)
        if cached is None:
            try:
                birth_date = date(birth_year(date_part), int(date_part[2:4]), int(date_part[0:2]))
            except ValueError:
                cached = _INVALID
            else:
                cached = _INVALID if birth_date > self.reference_date else (birth_date, age_at(birth_date, self.reference_date))
            _remember(self._birth, date_part, cached)
        return None if cached is _INVALID else cached  # type: ignore[return-value]

    def _date(self, raw: object) -> object:
        if type(raw) is not str:
            return self._date_or_invalid(raw)
        cached = self._dates.get(raw, _MISSING)
        if cached is _MISSING:
            cached = self._date_or_invalid(raw)
            _remember(self._dates, raw, cached)
        return cached

    def _date_or_invalid(self, raw: object) -> object:
        parsed = _call_or_invalid(parse_date, raw)
        if self.today is not None and type(parsed) is date and parsed > self.today:
            return _INVALID  # validate_row gives the future date's error
        return parsed

    def _bool(self, raw: object) -> object:
        if type(raw) is not str:
            return _call_or_invalid(parse_bool, raw)
        cached = self._bools.get(raw, _MISSING)
        if cached is _MISSING:
            cached = _call_or_invalid(parse_bool, raw)
            _remember(self._bools, raw, cached)
        return cached

    def _phone(self, raw: object) -> tuple[str | None, str | None]:
        """(E.164 number, None) or (None, warning text) or (None, None) for a blank cell."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None, None
        if type(raw) is str:
            if len(raw) == 8 and raw.isdigit() and raw.isascii():  # the common "12345678"
                subscriber = raw
            else:
                match = _DANISH_PHONE.fullmatch(raw.strip().translate(_PHONE_SEPARATORS))
                subscriber = match[1] if match is not None else None
            if subscriber is not None:
                prefix = subscriber[:3]
                valid = self._danish_phone_valid.get(prefix)
                if valid is None:
                    valid = _normalised_or_warning("+45" + subscriber)[0] is not None
                    self._danish_phone_valid[prefix] = valid
                if valid:
                    return "+45" + subscriber, None
                # An invalid Danish number: the warning names the region only, so it is the
                # same for every number of this prefix.
                warning = self._danish_phone_warning.get(prefix)
                if warning is None:
                    warning = self._danish_phone_warning[prefix] = _normalised_or_warning(raw)
                return warning
        return _normalised_or_warning(raw)


def birth_year(date_part: str) -> int:
    """The century rule of ``stdnum.dk.cpr.get_birth_date`` on the first seven digits, without
    its per-call clean-up (which dominated the cost); the tests compare the two exhaustively."""
    year = int(date_part[4:6])
    century_digit = date_part[6]
    if century_digit in "5678" and year >= 58:
        return 1800 + year
    if century_digit in "0123" or (century_digit in "49" and year >= 37):
        return 1900 + year
    return 2000 + year


class _CachedMapping:
    """The parts of ``MaalgruppeMapping`` that ``classify`` calls, memoised per distinct value."""

    def __init__(self, mapping: MaalgruppeMapping) -> None:
        self._mapping = mapping
        self.version = mapping.version
        self.exclude_research_protected = mapping.exclude_research_protected
        self.minimum_age = mapping.minimum_age
        self.rule_for = lru_cache(maxsize=4096)(mapping.rule_for)
        self.decide = lru_cache(maxsize=4096)(mapping.decide)
        self.is_out_of_scope = lru_cache(maxsize=4096)(mapping.is_out_of_scope)
        self.age_band = lru_cache(maxsize=512)(mapping.age_band)
        self.duration_band = lru_cache(maxsize=4096)(mapping.duration_band)


_MISSING = object()


@lru_cache(maxsize=65_536)
def _normalised_or_warning(raw: object) -> tuple[str | None, str | None]:
    try:
        return normalise_phone(raw), None
    except PhoneNumberError as exc:
        return None, f"{exc}; no SMS reminders"  # the same text validate_row gives


def _call_or_invalid(parse, raw: object) -> object:
    try:
        return parse(raw)
    except ValueError:
        return _INVALID


def _tidy_text(value: object) -> str | None:
    # As validation._text: only strings and whole numbers are on the fast path.
    if type(value) is not str:
        return None
    tidy = " ".join(value.split())
    return tidy or None


def _optional_text(value: object) -> str | None | object:
    """An optional text cell (category, name) tidied; ``_INVALID`` when it is not a string or
    longer than MAX_TEXT_LENGTH (the full validation then says why)."""
    if value is not None and type(value) is not str:
        return _INVALID
    text = _tidy_text(value)
    if text is not None and len(text) > MAX_TEXT_LENGTH:
        return _INVALID
    return text


def _remember(cache: dict, key: object, value: object) -> None:
    if len(cache) < _CACHE_LIMIT:
        cache[key] = value
