"""Validation of one mapped extract row into typed values, and duplicate detection per delivery.

A row either becomes a ``ValidRow`` or a list of ``RowError``s that tell the municipality which
row and column to fix. Messages describe what is wrong and which formats are accepted; they
never repeat the cell value (a masked CPR number is the most they show).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from numbers import Real

from openpyxl.utils.datetime import from_excel

from services.ingest.domain.cpr import CprNumber, Gender, mask_cpr, parse_cpr
from services.ingest.domain.errors import CprError, PhoneNumberError
from services.ingest.domain.phone import normalise_phone
from services.ingest.domain.profiles import Kolonne
from services.ingest.domain.pseudonym import PseudonymKey
from services.ingest.domain.readers import EXTRA_FIELDS_KEY
from services.ingest.domain.text import is_blank

EARLIEST_PLAUSIBLE_DATE = date(1900, 1, 1)  # older dates are "no value" placeholders in exports
MAX_TEXT_LENGTH = 200
_EXCEL_SERIAL_RANGE = (1, 2_958_465)  # 1900-01-01 .. 9999-12-31 in Excel's day numbering

_TRUE_WORDS = frozenset({"ja", "j", "1", "true", "x", "sand", "yes", "y"})  # SAND/FALSK: Danish Excel
_FALSE_WORDS = frozenset({"nej", "n", "0", "false", "falsk", "no"})
_ISO_DATE = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_DANISH_DATE = re.compile(
    r"(?P<day>\d{1,2})(?P<sep>[-./])(?P<month>\d{1,2})(?P=sep)(?P<year>\d{4})"
    r"(?: \d{1,2}[:.]\d{2}(?:[:.]\d{2})?)?"
)
_TWO_DIGIT_YEAR = re.compile(r"\d{1,2}[-./]\d{1,2}[-./]\d{2}")
# An Excel date cell formatted "General" and saved as CSV: its serial day number as text
# (10000-99999 is 1927-05-18 .. 2173-10-14; no other date format has five bare digits).
_EXCEL_SERIAL_TEXT = re.compile(r"[1-9][0-9]{4}")
DATE_FORMATS_HINT = "use YYYY-MM-DD, DD-MM-YYYY or DD.MM.YYYY"
BOOLEAN_HINT = "use ja/nej (also j/n, 1/0, true/false, x for yes)"


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one row; ``column`` is a canonical column name, or None for the whole row."""

    row: int
    column: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ValidRow:
    """A validated citizen row. Gender, birth date and age are derived from the CPR number."""

    cpr: str  # normalised, 10 digits
    gender: Gender  # "M" or "K"
    birth_date: date
    age: int  # completed years at the round's reference date
    ydelse: str  # benefit as the case system names it, whitespace tidied
    overgangsdato: date  # transition to the current benefit
    seneste_samtale: date | None
    forloeb_afsluttet: bool | None
    phone_e164: str | None
    passiv: bool
    navn: str | None
    forskerbeskyttet: bool
    row_number: int = 0
    # The visitation category as the case system names it, whitespace tidied; None when blank or
    # the file has no such column.
    visitationskategori: str | None = None
    # Problems that do not cost the citizen their letter, e.g. an unusable phone number (the SMS
    # reminder is dropped, the Digital Post letter still goes out).
    warnings: tuple[RowError, ...] = ()
    fritaget_digital_post: bool = False  # exempt from Digital Post: letters go by physical post

    def __repr__(self) -> str:  # reprs reach logs and tracebacks: personal data stays out
        return (
            f"ValidRow(row_number={self.row_number}, cpr={mask_cpr(self.cpr)!r}, "
            f"gender={self.gender.value!r}, age={self.age}, ydelse={self.ydelse!r}, "
            f"passiv={self.passiv}, forskerbeskyttet={self.forskerbeskyttet}, <contact redacted>)"
        )

    __str__ = __repr__


def parse_date(value: object) -> date | None:
    """A date from an Excel cell, a JSON value or text. Blank gives None; junk raises ValueError.

    Accepts date/datetime objects, Excel serial day numbers (also as five-digit text, as a CSV
    saved from a "General" column holds them), ISO (YYYY-MM-DD, with an optional time), and
    Danish DD-MM-YYYY, DD.MM.YYYY and DD/MM/YYYY (with an optional time, as Excel writes it to
    CSV). Two-digit years are refused: 01-08-23 is ambiguous.
    """
    if is_blank(value):
        return None
    if isinstance(value, datetime):
        parsed = value.date()
    elif isinstance(value, date):
        parsed = value
    elif isinstance(value, bool):
        raise ValueError(f"a yes/no value is not a date; {DATE_FORMATS_HINT}")
    elif isinstance(value, Real):
        parsed = _from_excel_serial(float(value))
    elif isinstance(value, str):
        parsed = _parse_date_text(value.strip())
    else:
        raise ValueError(f"unexpected value type {type(value).__name__}; {DATE_FORMATS_HINT}")
    if parsed < EARLIEST_PLAUSIBLE_DATE:
        raise ValueError(f"date is before {EARLIEST_PLAUSIBLE_DATE.isoformat()}, not plausible")
    return parsed


def parse_bool(value: object) -> bool | None:
    """ja/nej, j/n, 1/0, true/false, x (case-insensitive; SAND/FALSK as Danish Excel writes
    booleans). Blank gives None; anything else raises ValueError."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, Real) and float(value) in (0.0, 1.0):
        return float(value) == 1.0
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError(f"not a yes/no value; {BOOLEAN_HINT}")


def validate_row(
    row_number: int, row: Mapping[str, object], *, reference_date: date, today: date | None = None
) -> ValidRow | list[RowError]:
    """Validate one row from a reader against the round's ``reference_date``; a date after
    ``today`` (the day of the upload, when given) is an error: an export holds no future."""
    errors: list[RowError] = []
    warnings: list[RowError] = []

    def fail(column: Kolonne | None, message: str) -> None:
        errors.append(RowError(row_number, column.value if column else None, message))

    extra_fields = row.get(EXTRA_FIELDS_KEY)
    if extra_fields:
        fail(
            None,
            f"row has {extra_fields} more field(s) than the header; a value probably contains "
            "the delimiter without quotes, so its columns cannot be trusted",
        )

    cpr = _cpr_field(row, fail, reference_date)
    ydelse = _text_field(row, Kolonne.YDELSE, fail, "benefit (ydelse)", required=True)
    kategori = _text_field(row, Kolonne.VISITATIONSKATEGORI, fail, "visitation category")

    overgangsdato = _date_field(row, Kolonne.OVERGANGSDATO, fail, required=True, today=today)
    seneste_samtale = _date_field(row, Kolonne.SENESTE_SAMTALE, fail, required=False, today=today)
    forloeb_afsluttet = _bool_field(row, Kolonne.FORLOEB_AFSLUTTET, fail)
    # Blank passive/protection cells mean "no": exports that mark with "x" leave the rest empty.
    passiv = _bool_field(row, Kolonne.PASSIV, fail) or False
    forskerbeskyttet = _bool_field(row, Kolonne.FORSKERBESKYTTET, fail) or False
    fritaget_digital_post = _bool_field(row, Kolonne.FRITAGET_DIGITAL_POST, fail) or False

    phone_e164 = None
    raw_phone = row.get(Kolonne.TELEFON)
    if not is_blank(raw_phone):
        try:
            phone_e164 = normalise_phone(raw_phone)
        except PhoneNumberError as exc:
            warnings.append(RowError(row_number, Kolonne.TELEFON.value, f"{exc}; no SMS reminders"))
    navn = _text_field(row, Kolonne.NAVN, fail, "name")

    if errors:
        return errors
    assert cpr is not None and ydelse is not None and overgangsdato is not None
    return ValidRow(
        cpr=cpr.number,
        gender=cpr.gender,
        birth_date=cpr.birth_date,
        age=cpr.age_at(reference_date),
        ydelse=ydelse,
        overgangsdato=overgangsdato,
        seneste_samtale=seneste_samtale,
        forloeb_afsluttet=forloeb_afsluttet,
        phone_e164=phone_e164,
        passiv=passiv,
        navn=navn,
        forskerbeskyttet=forskerbeskyttet,
        row_number=row_number,
        warnings=tuple(warnings),
        visitationskategori=kategori,
        fritaget_digital_post=fritaget_digital_post,
    )


def _cpr_field(row: Mapping[str, object], fail: Callable, reference_date: date) -> CprNumber | None:
    raw_cpr = row.get(Kolonne.CPR)
    if is_blank(raw_cpr):
        fail(Kolonne.CPR, "CPR number is missing")
        return None
    try:
        return parse_cpr(raw_cpr, reference_date=reference_date)
    except CprError as exc:
        fail(Kolonne.CPR, str(exc))
        return None


def _text_field(row: Mapping[str, object], column: Kolonne, fail: Callable, what: str, *, required: bool = False) -> str | None:
    """A text cell, its white space folded; an error when it is required and blank, or longer
    than MAX_TEXT_LENGTH."""
    value = _text(row.get(column))
    if value is None:
        if required:
            fail(column, f"{what} is missing")
    elif len(value) > MAX_TEXT_LENGTH:
        fail(column, f"{what} is longer than {MAX_TEXT_LENGTH} characters")
    return value


class DuplicateTracker:
    """Finds a CPR number delivered twice in one extract, without keeping CPR numbers in memory.

    ``key_for`` maps a CPR number to a keyed hash (e.g. the platform's pseudonym, or
    ``hmac_sha256_key(secret)``); only those bytes and the first row number are kept, which is
    a few dozen bytes per citizen and leaks nothing if the process memory is dumped.
    """

    def __init__(self, key_for: Callable[[str], bytes]) -> None:
        self._key_for = key_for
        self._first_row_by_key: dict[bytes, int] = {}

    def check(self, cpr: str, row_number: int) -> RowError | None:
        """None the first time a CPR number is seen; a RowError naming the first row after that."""
        key = self._key_for(cpr)
        first_row = self._first_row_by_key.setdefault(key, row_number)
        if first_row == row_number:
            return None
        return RowError(
            row_number,
            Kolonne.CPR.value,
            f"{mask_cpr(cpr)} appears more than once in the delivery (first in row {first_row})",
        )

    def __len__(self) -> int:
        return len(self._first_row_by_key)


def hmac_sha256_key(secret: bytes) -> Callable[[str], bytes]:
    """A ``key_for`` for ``DuplicateTracker``: the pseudonym rule under ``secret``."""
    if len(secret) < 16:
        raise ValueError("the HMAC secret must be at least 16 bytes")

    digest = PseudonymKey(secret).digest

    def key_for(cpr: str) -> bytes:
        return digest(cpr.encode("ascii"))

    return key_for


def validate_rows(
    numbered_rows: Iterable[tuple[int, Mapping[str, object]]],
    *,
    reference_date: date,
    duplicates: DuplicateTracker,
) -> Iterator[ValidRow | list[RowError]]:
    """Validate a reader's rows in order; later copies of a CPR number become errors."""
    for row_number, row in numbered_rows:
        result = validate_row(row_number, row, reference_date=reference_date)
        if isinstance(result, ValidRow):
            duplicate = duplicates.check(result.cpr, row_number)
            if duplicate is not None:
                result = [duplicate]
        yield result


def _date_field(
    row: Mapping[str, object], column: Kolonne, fail: Callable, *, required: bool, today: date | None
) -> date | None:
    raw = row.get(column)
    if is_blank(raw):
        if required:
            fail(column, "date is missing")
        return None
    try:
        parsed = parse_date(raw)
    except ValueError as exc:
        fail(column, str(exc))
        return None
    if today is not None and parsed is not None and parsed > today:
        fail(column, future_date_message(parsed, today))
        return None
    return parsed


def future_date_message(value: date, today: date) -> str:
    """The row error for a date after the day of the upload (it gives the distance in years, not
    the cell's value)."""
    years = value.year - today.year
    distance = f"{years} year(s) " if years > 0 else ""
    return f"date lies {distance}after the day of the upload ({today.isoformat()}); an export holds no future dates: check the column"


def _bool_field(row: Mapping[str, object], column: Kolonne, fail: Callable) -> bool | None:
    try:
        return parse_bool(row.get(column))
    except ValueError as exc:
        fail(column, str(exc))
        return None


def _text(value: object) -> str | None:
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def _parse_date_text(text: str) -> date:
    if _EXCEL_SERIAL_TEXT.fullmatch(text):
        return _from_excel_serial(float(text))
    match = _ISO_DATE.fullmatch(text) or _DANISH_DATE.fullmatch(text)
    if match is None:
        if _TWO_DIGIT_YEAR.fullmatch(text):
            raise ValueError(f"two-digit years are ambiguous; {DATE_FORMATS_HINT}")
        raise ValueError(f"not a date; {DATE_FORMATS_HINT}")
    try:
        return date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        raise ValueError(f"no such calendar date; {DATE_FORMATS_HINT}") from None


def _from_excel_serial(serial: float) -> date:
    low, high = _EXCEL_SERIAL_RANGE
    if not low <= serial <= high:
        raise ValueError(f"number is not an Excel date; {DATE_FORMATS_HINT}")
    return from_excel(serial).date()
