"""Rows in, storable citizens out: validation, classification and pseudonymisation of one
delivery, a block at a time.

This is the per-row hot path of a national extract (a million rows), so it is written for speed
while keeping one meaning: every row goes through ``CachedRowValidator`` (whose results equal
``validate_row`` + ``classify``, see ``tests/ingest/unit``), and whatever is unusual falls back to
``validate_row`` itself, so error messages come from one place.

A block is pure CPU work with no shared state besides per-process caches, so blocks run in
worker processes (``services.ingest.parallel``) while the service copies earlier blocks into
PostgreSQL. A block's output is what the database and the bus need, already encoded:

- ``copy_data``: the included citizens as tuples in PostgreSQL's binary COPY format (see
  ``CITIZEN_COLUMNS``), already joined, in citizen order (the primary key is built by one sort
  once the delivery is loaded, ``services.ingest.partitions``, so their order does not matter),
  so the service adds the COPY framing and sends it;
- ``persons_data``: the included citizens as ``PopulationPerson`` JSON, joined by commas, so an
  event chunk is a slice of it (``services.ingest.events``);
- per valid row, the first 16 bytes of its keyed hash and its row number: duplicates are a
  property of the whole delivery, so they are found by the service, in row order, across blocks
  (``services.ingest.duplicates``).

Both are single byte strings with offset arrays rather than a million small objects: passing a
block between processes then costs a copy, not a pickle per citizen, and the service touches no
citizen one by one (``drop_citizens`` rebuilds them in the rare case it must).

No CPR number leaves a block in clear: only ciphertexts, keyed hashes and the masked date part.
"""

from __future__ import annotations

import binascii
import csv
import io
import os
import struct
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from itertools import accumulate
from datetime import date
from json.encoder import encode_basestring_ascii as _json_str

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.ingest.domain.classification import ExclusionReason, load_mapping, transition_warning
from services.ingest.domain.cpr import mask_cpr
from services.ingest.domain.errors import ExtractFormatError
from services.ingest.domain.fastpath import _INVALID, _MISSING, CachedRowValidator
from services.ingest.domain.profiles import Kolonne
from services.ingest.domain.pseudonym import PseudonymKey
from services.ingest.domain.readers import EXTRA_FIELDS_KEY, NumberedRow
from services.ingest.domain.text import is_blank
from services.ingest.domain.validation import MAX_TEXT_LENGTH, RowError, ValidRow

# Column order of the COPY into ingest.citizen.
CITIZEN_COLUMNS = (
    "delivery_id",
    "pseudonym",
    "cpr_ciphertext",
    "cpr_key_id",
    "maalgruppe",
    "ydelse",
    "gender",
    "age_band",
    "duration_band",
    "contact_sealed",
    "contact_key_id",
)
# PostgreSQL binary COPY framing around the tuples.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)

# Column positions a CSV fast path reads, in CachedRowValidator.validate_fields order.
FAST_COLUMNS = (
    Kolonne.CPR,
    Kolonne.YDELSE,
    Kolonne.OVERGANGSDATO,
    Kolonne.SENESTE_SAMTALE,
    Kolonne.FORLOEB_AFSLUTTET,
    Kolonne.PASSIV,
    Kolonne.FORSKERBESKYTTET,
    Kolonne.NAVN,
    Kolonne.TELEFON,
    Kolonne.VISITATIONSKATEGORI,
    Kolonne.FRITAGET_DIGITAL_POST,
)

# valid_outcome codes besides a citizen index (>= 0)
UNKNOWN_BENEFIT = -1  # the benefit step's row error (unknown benefit, visitation category problem)
EXCLUDED_BASE = -100  # EXCLUDED_BASE - i: excluded for EXCLUSION_ORDER[i]
EXCLUSION_ORDER = tuple(ExclusionReason)
EXCLUDED_TRANSITION = EXCLUDED_BASE - EXCLUSION_ORDER.index(ExclusionReason.TRANSITION_AFTER_REFERENCE_DATE)

_NONCE = 12


@dataclass(frozen=True)
class PreparationSpec:
    """Everything a worker needs for one delivery; picklable, sent with every block."""

    token: str  # identifies the delivery's per-process state (caches, cipher objects)
    delivery_id: uuid.UUID
    reference_date: date
    mapping_version: str
    round_id: str
    pseudonym_key: bytes
    cpr_key: bytes
    cpr_key_id: str
    contact_key: bytes
    contact_key_id: str
    today: date | None = None  # the day of the upload: later dates are row errors

    def __repr__(self) -> str:  # keys never reach a log
        return f"PreparationSpec(delivery_id={self.delivery_id}, round_id={self.round_id!r}, <keys redacted>)"


@dataclass(frozen=True)
class CsvLayout:
    """How to split a CSV block into rows, as found by the reader on the file's header."""

    encoding: str  # the Python codec for the bytes after the header (BOM already skipped)
    encoding_name: str  # as reported in messages (e.g. "utf-8-sig")
    delimiter: str
    width: int  # header width
    column_index: tuple[tuple[str, int], ...]  # canonical column -> position
    fast_positions: tuple[int, ...]  # FAST_COLUMNS positions, -1 when absent


@dataclass(slots=True)
class PreparedBlock:
    rows_read: int = 0
    rejected_rows: int = 0
    errors: list[RowError] = field(default_factory=list)  # in row order
    warnings: list[RowError] = field(default_factory=list)
    exclusions: Counter = field(default_factory=Counter)
    # One entry per valid row (before the delivery-wide duplicate check), in row order:
    valid_digests: bytes = b""  # 32-byte keyed hash (the pseudonym) per valid row
    valid_rows: array = field(default_factory=lambda: array("i"))
    valid_outcome: array = field(default_factory=lambda: array("i"))  # citizen index or a code above
    valid_date_parts: str = ""  # DDMMYY per valid row (the masked form of a CPR number)
    # The included citizens (see the module's docstring):
    citizens: int = 0
    copy_data: bytes = b""  # binary COPY tuples, in citizen order, without the COPY framing
    copy_offsets: array = field(default_factory=lambda: array("q", [0]))  # citizen i's tuple is copy_data[o[i]:o[i + 1]]
    persons_data: bytes = b""  # PopulationPerson JSON, comma-joined, in citizen order
    person_offsets: array = field(default_factory=lambda: array("q", [0]))  # person i: data[o[i]:o[i + 1] - 1]
    # Per citizen, the classification decision (benefit, visitation category, maalgruppe): the
    # report counts them, so a municipality sees how its citizens were grouped.
    maalgrupper: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def persons(self) -> list[bytes]:
        """Each citizen's PopulationPerson JSON (tests and the rare rebuild; not the hot path)."""
        data, offsets = self.persons_data, self.person_offsets
        return [data[offsets[i] : offsets[i + 1] - 1] for i in range(self.citizens)]

    @property
    def copy_rows(self) -> list[bytes]:
        """Each citizen's COPY tuple, in citizen order."""
        data, offsets = self.copy_data, self.copy_offsets
        return [data[offsets[i] : offsets[i + 1]] for i in range(self.citizens)]

    def set_citizens(self, copy_rows: list[bytes], persons: list[bytes], maalgrupper: list[tuple[str, str, str]]) -> None:
        """Store the citizens' encodings (each list in citizen order) in the joined form."""
        self.citizens = len(persons)
        self.copy_offsets = _offsets(copy_rows)
        self.copy_data = b"".join(copy_rows)
        self.person_offsets = _offsets(persons, separator=1)
        self.persons_data = b",".join(persons)
        self.maalgrupper = maalgrupper

    def drop_citizens(self, indexes: set[int]) -> None:
        """Remove citizens (duplicates, objectors); renumbers the rest in ``valid_outcome``."""
        if not indexes:
            return
        keep = [i for i in range(self.citizens) if i not in indexes]
        copy_rows, persons = self.copy_rows, self.persons
        self.set_citizens([copy_rows[i] for i in keep], [persons[i] for i in keep], [self.maalgrupper[i] for i in keep])
        renumber = {old: new for new, old in enumerate(keep)}
        self.valid_outcome = array("i", (renumber.get(o, -1000) if o >= 0 else o for o in self.valid_outcome))


def _offsets(pieces: Iterable[bytes], separator: int = 0) -> array:
    offsets = array("q", [0])
    lengths = map(len, pieces)
    offsets.extend(accumulate(lengths if not separator else (length + separator for length in lengths)))
    return offsets


class _State:
    """Per process and delivery: validator caches, cipher objects and encoded constants."""

    def __init__(self, spec: PreparationSpec) -> None:
        mapping = load_mapping(spec.mapping_version)
        self.validator = CachedRowValidator(spec.reference_date, mapping, spec.today)
        self.transition_warning = transition_warning(spec.reference_date)
        self.pseudonym_digest = PseudonymKey(spec.pseudonym_key).digest
        self.cpr_aead = AESGCM(spec.cpr_key)
        self.cpr_aad = spec.cpr_key_id.encode()
        self.contact_aead = AESGCM(spec.contact_key)
        self.contact_aad_prefix = f"{spec.round_id}|".encode()
        # Binary COPY: field count, the delivery id, and the pseudonym's length prefix.
        self.copy_prefix = struct.pack("!hi", len(CITIZEN_COLUMNS), 16) + spec.delivery_id.bytes + struct.pack("!i", 64)
        key_id = spec.cpr_key_id.encode()
        self.copy_ciphertext_len = struct.pack("!i", _NONCE + 10 + 16)  # nonce + 10 digits + tag
        self.copy_key_id = struct.pack("!i", len(key_id)) + key_id
        self.benefit_ids: dict[tuple, int] = {}  # ((ydelse, kategori), overgangsdato) -> benefit_id()
        self.benefit_numbers: dict[tuple, int] = {}
        self.benefits: list[tuple] = []
        self.outcomes: dict[tuple, tuple] = {}  # see outcome()
        contact_key_id = spec.contact_key_id.encode()
        self.copy_contact_key_id = struct.pack("!i", len(contact_key_id)) + contact_key_id

    def benefit_id(self, ydelse: tuple[str, str | None], overgangsdato: date) -> int:
        """A small number for what a ((benefit, visitation category), transition date) pair means
        for classification, so rows share outcomes across dates with the same meaning."""
        meaning = (ydelse, *self.validator.benefit_part(ydelse, overgangsdato))
        number = self.benefit_numbers.get(meaning)
        if number is None:
            number = self.benefit_numbers[meaning] = len(self.benefits)
            self.benefits.append(meaning)
        if len(self.benefit_ids) < 100_000:
            self.benefit_ids[(ydelse, overgangsdato)] = number
        return number

    def outcome(self, benefit: int, age: int, gender: str, passiv: bool, forskerbeskyttet: bool) -> tuple:
        """What every row with these values becomes, encoded once: ``(code, maalgruppe or the
        exclusion reason, COPY fields from the CPR key id to the duration band, PopulationPerson
        JSON after the pseudonym)``; code is 0 for an included citizen, else UNKNOWN_BENEFIT (the
        second item is then the row error's (column, message)) or an EXCLUDED_BASE code. An
        included citizen's second item is its decision (benefit, category, maalgruppe)."""
        (ydelse, _kategori), *meaning = self.benefits[benefit]
        reason, maalgruppe, age_band, duration_band = self.validator.person_part(tuple(meaning), age, passiv, forskerbeskyttet)
        if reason is ExclusionReason.UNKNOWN_BENEFIT:
            return UNKNOWN_BENEFIT, meaning[4], None, None
        if reason is not None:
            return EXCLUDED_BASE - EXCLUSION_ORDER.index(reason), reason.value, None, None
        if age_band is None or duration_band is None:
            raise ValueError("an included citizen lacks an age or duration band: the mapping's bands have a gap")
        parts = []
        for value in (maalgruppe, ydelse, gender, age_band, duration_band):
            encoded = value.encode()
            parts.append(struct.pack("!i", len(encoded)) + encoded)
        copy_tail = self.copy_key_id + b"".join(parts)
        # forskerbeskyttet, deceased and emigrated are left out when false (their default).
        person_tail = (
            f'","maalgruppe":{_json_str(maalgruppe)},"bands":{{"gender":{_json_str(gender)},'
            f'"age_band":{_json_str(age_band)},"duration_band":{_json_str(duration_band)}}}'
            + (',"forskerbeskyttet":true' if forskerbeskyttet else "")
            + "}"
        ).encode()
        return 0, (*meaning[3], maalgruppe), copy_tail, person_tail

    def outcome_of(self, benefit: int, age: int, gender: str, passiv: bool, forskerbeskyttet: bool) -> tuple:
        key = (benefit, age, gender, passiv, forskerbeskyttet)
        outcome = self.outcomes.get(key)
        if outcome is None:
            outcome = self.outcome(benefit, age, gender, passiv, forskerbeskyttet)
            if len(self.outcomes) < 100_000:
                self.outcomes[key] = outcome
        return outcome


_STATES: dict[str, _State] = {}


def _state(spec: PreparationSpec) -> _State:
    state = _STATES.get(spec.token)
    if state is None:
        if len(_STATES) >= 4:  # a worker outlives deliveries only in tests and thread mode
            _STATES.clear()
        state = _STATES[spec.token] = _State(spec)
    return state


def forget(spec: PreparationSpec) -> None:
    _STATES.pop(spec.token, None)


# --- the two entry points ---------------------------------------------------------------------------


def prepare_csv_block(spec: PreparationSpec, layout: CsvLayout, data: bytes, first_line: int) -> PreparedBlock:
    """Parse, validate, classify and pseudonymise one block of whole CSV records.

    ``data`` are the raw bytes of the records and ``first_line`` the file line number of the
    block's first line; row numbers are the file's line numbers, as the sequential reader gives.
    A plain block (one record per line, no quotes) takes the columnar path; its result is the
    same as the record path's (``tests/ingest/unit/test_ingest_blocks.py``).
    """
    if _is_plain(data):
        block = _prepare_plain_block(spec, layout, data, first_line)
        if block is not None:
            return block
    try:
        text = data.decode(layout.encoding)
    except UnicodeDecodeError as exc:
        line = first_line + _count_lines(data[: exc.start])
        raise ExtractFormatError(f"line {line}: bytes that are not valid {layout.encoding_name}") from None
    state = _state(spec)
    block = _Builder(spec, state)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
    add_record = partial(_add_record, block, state.validator.validate_fields, layout)
    base = first_line - 1
    last = 0
    try:
        for fields in records:
            row_number = base + last + 1
            last = records.line_num
            add_record(row_number, fields)
    except csv.Error as exc:
        raise ExtractFormatError(f"line {base + last + 1}: malformed CSV ({exc})") from None
    return block.finish()


def _add_record(block: _Builder, validate_fields, layout: CsvLayout, row_number: int, fields: list[str]) -> None:
    """One CSV record: the fast path when it is in a common shape, else the row mapping through
    ``validate_row`` (which gives every error message)."""
    width = layout.width
    if len(fields) == width:
        fast = validate_fields(fields, layout.fast_positions)
        if fast is not None:
            block.add_fast(row_number, fast)
            return
    if all(is_blank(value) for value in fields):
        return
    row = {column: fields[index] if index < len(fields) else None for column, index in layout.column_index}
    extra = [value for value in fields[width:] if not is_blank(value)]
    if extra:
        row[EXTRA_FIELDS_KEY] = len(extra)
    block.add_row(row_number, row)


# --- the columnar path for plain blocks --------------------------------------------------------------


def _is_plain(data: bytes) -> bool:
    """One record per line: no quoting (a quoted field may hold a delimiter or a line break),
    no lone carriage return, no NUL (the csv module's error). Blank lines need no check: they
    have the wrong number of fields, which makes the columnar reader refuse the block."""
    return b'"' not in data and b"\0" not in data and data.count(b"\r") == data.count(b"\r\n")


def _prepare_plain_block(spec: PreparationSpec, layout: CsvLayout, data: bytes, first_line: int) -> PreparedBlock | None:
    """The block's columns parsed in C (pyarrow), and every check of
    ``CachedRowValidator.validate_fields`` made once per distinct value of a column instead of
    once per row. Rows in a common shape are then pseudonymised in one tight loop; any other row
    goes through ``_add_record`` exactly as on the record path. None: not a block this path takes
    (the record path then reads it and reports what is wrong)."""
    p_cpr, p_ydelse, p_overgang = layout.fast_positions[:3]
    if min(p_cpr, p_ydelse, p_overgang) < 0 or layout.width < 2:
        return None
    table = _read_plain(layout, data)
    if table is None:
        return None
    state = _state(spec)
    columns = [table.column(i).combine_chunks() for i in range(layout.width)]
    checked = _check_columns(state.validator, layout, columns)
    outcome_index, outcomes = _outcomes(state, checked)
    return _build_plain(spec, state, layout, columns, first_line, checked.numbers, checked.fritaget, outcome_index, outcomes)


def _read_plain(layout: CsvLayout, data: bytes):
    """The block as a pyarrow table of string columns, one row per line; None when it does not
    read that way (another encoding that fails, a row of the wrong width, invalid UTF-8, a line
    the reader skipped or merged: row numbers would not hold)."""
    if layout.encoding != "utf-8":
        try:
            data = data.decode(layout.encoding).encode("utf-8")
        except UnicodeDecodeError:
            return None
    names = [f"c{i}" for i in range(layout.width)]
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1024),
            parse_options=pa_csv.ParseOptions(
                delimiter=layout.delimiter, quote_char=False, double_quote=False, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=False, check_utf8=True
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != _count_lines(data) + (0 if data.endswith((b"\n", b"\r")) else 1):
        return None
    return table


@dataclass
class _CheckedColumns:
    """Per row of a plain block: whether every check passed (``fast``), and what the checks
    found, indexed per distinct value where the value is shared."""

    fast: np.ndarray
    numbers: Any  # the CPR numbers without the dash (a pyarrow array)
    ages: np.ndarray
    male: np.ndarray
    ydelse_index: np.ndarray
    ydelser: list
    date_index: np.ndarray
    dates: list
    passiv: np.ndarray
    forsker: np.ndarray
    fritaget: np.ndarray  # exempt from Digital Post (not part of the classification outcome)


def _check_columns(validator: CachedRowValidator, layout: CsvLayout, columns: list) -> _CheckedColumns:
    """``validate_fields``'s checks, column by column, once per distinct value."""
    p_cpr, p_ydelse, p_overgang, p_samtale, p_afsluttet, p_passiv, p_forsker, _, _, p_kategori, p_fritaget = layout.fast_positions
    count = len(columns[0])
    # The CPR number's shape, its birth date and age (per distinct first seven digits), gender.
    raw_cpr = columns[p_cpr]
    fast = pc.match_substring_regex(raw_cpr, r"^[0-9]{6}-?[0-9]{4}$").to_numpy(zero_copy_only=False)
    numbers = pc.replace_substring(raw_cpr, "-", "", max_replacements=1)
    birth_ok, ages = _per_distinct(
        pc.utf8_slice_codeunits(numbers, 0, 7), lambda part: _birth(validator, part), (False, 0)
    )
    fast &= birth_ok
    # gender from the last digit: odd is a man
    genders = pc.utf8_slice_codeunits(numbers, 9, 10).to_numpy(zero_copy_only=False)
    male = np.isin(genders, ["1", "3", "5", "7", "9"])

    if p_kategori >= 0:
        # The benefit and its visitation category decide together: one distinct value per pair.
        benefit_cells = pc.binary_join_element_wise(columns[p_ydelse], columns[p_kategori], _PAIR_SEPARATOR)
    else:
        benefit_cells = columns[p_ydelse]
    ydelse_ok, ydelse_index, ydelser = _distinct_values(benefit_cells, lambda raw: _ydelse(validator, raw))
    fast &= ydelse_ok
    date_ok, date_index, dates = _distinct_values(columns[p_overgang], lambda raw: _overgangsdato(validator, raw))
    fast &= date_ok
    for position in (p_samtale, p_afsluttet):
        if position >= 0:
            parse = validator._date if position == p_samtale else validator._bool
            ok, _, _ = _distinct_values(columns[position], lambda raw: _valid(parse(raw)))
            fast &= ok
    flags = []
    for position in (p_passiv, p_forsker, p_fritaget):
        if position >= 0:
            ok, index, values = _distinct_values(columns[position], lambda raw: _flag(validator, raw))
            fast &= ok
            flags.append(np.asarray(values, dtype=bool)[index] if len(values) else np.zeros(count, dtype=bool))
        else:
            flags.append(np.zeros(count, dtype=bool))
    passiv, forsker, fritaget = flags
    return _CheckedColumns(fast, numbers, ages, male, ydelse_index, ydelser, date_index, dates, passiv, forsker, fritaget)


def _outcomes(state: _State, checked: _CheckedColumns) -> tuple[np.ndarray, list]:
    """What each fast row becomes (state.outcome), per distinct (benefit meaning, age, gender,
    flags): each row's index into the outcomes, and the outcomes (None: not a fast row)."""
    fast, ydelser, dates = checked.fast, checked.ydelser, checked.dates
    pair = checked.ydelse_index.astype(np.int64) * max(1, len(dates)) + checked.date_index
    benefit_of_pair: dict[int, int] = {}
    for code in np.unique(pair[fast]).tolist():
        benefit_of_pair[code] = state.benefit_id(ydelser[code // max(1, len(dates))], dates[code % max(1, len(dates))])
    pairs, pair_inverse = np.unique(pair, return_inverse=True)
    benefits = np.array([benefit_of_pair.get(code, 0) for code in pairs.tolist()], dtype=np.int64)[pair_inverse]
    key = (((benefits * 1024 + np.clip(checked.ages, 0, 1023)) * 2 + checked.male) * 2 + checked.passiv) * 2 + checked.forsker
    outcome_keys, outcome_index = np.unique(np.where(fast, key, -1), return_inverse=True)
    outcomes = []
    for code in outcome_keys.tolist():
        if code < 0:
            outcomes.append(None)
            continue
        benefit, rest = divmod(code, 1024 * 8)
        age, rest = divmod(rest, 8)
        gender = "M" if rest & 4 else "K"
        outcomes.append(state.outcome_of(benefit, age, gender, bool(rest & 2), bool(rest & 1)))
    return outcome_index, outcomes


def _build_plain(
    spec: PreparationSpec,
    state: _State,
    layout: CsvLayout,
    columns: list,
    first_line: int,
    numbers,
    fritaget: np.ndarray,
    outcome_index: np.ndarray,
    outcomes: list,
) -> PreparedBlock:
    """Per row: the name and phone rules (mostly distinct values), crypto and encoding; a row
    that is not fast goes through ``_add_record``."""
    p_navn, p_telefon = layout.fast_positions[7], layout.fast_positions[8]
    validator = state.validator
    block = _Builder(spec, state)
    number_list = numbers.to_pylist()
    fritaget_list = fritaget.tolist()
    navn_list = columns[p_navn].to_pylist() if p_navn >= 0 else None
    phones = _common_phones(validator, columns[p_telefon]) if p_telefon >= 0 else None
    phone = validator._phone
    column_lists = None
    pending: list[tuple] = []
    for i, outcome_at in enumerate(outcome_index.tolist()):
        outcome = outcomes[outcome_at]
        navn = None
        if outcome is not None and navn_list is not None:
            navn = " ".join(navn_list[i].split()) or None
            if navn is not None and len(navn) > MAX_TEXT_LENGTH:
                outcome = None
        if outcome is None:
            if pending:
                block.add_classified(pending)
                pending = []
            if column_lists is None:
                column_lists = [column.to_pylist() for column in columns]
            _add_record(block, validator.validate_fields, layout, first_line + i, [values[i] for values in column_lists])
            continue
        if phones is None:
            phone_e164 = phone_warning = None
        else:
            phone_e164 = phones[0][i]
            phone_warning = None
            if phone_e164 is _MISSING:
                phone_e164, phone_warning = phone(phones[1][i])
        pending.append((first_line + i, number_list[i], outcome, navn, phone_e164, phone_warning, fritaget_list[i]))
    if pending:
        block.add_classified(pending)
    return block.finish()


def _common_phones(validator: CachedRowValidator, raw):
    """(E.164 number, None for a blank cell, or _MISSING: ask ``_phone``) per row, and the raw
    cells. The common cell, eight digits of a valid Danish prefix, is "+45" and the digits, as
    ``_phone`` gives; everything else is left to ``_phone``."""
    eight_digits = pc.match_substring_regex(raw, r"^[0-9]{8}$").to_numpy(zero_copy_only=False)
    prefix_ok, _ = _per_distinct(
        pc.utf8_slice_codeunits(raw, 0, 3),
        lambda prefix: (len(prefix) == 3 and prefix.isdigit() and validator._phone(prefix + "00000")[0] is not None, 0),
        (False, 0),
    )
    common = eight_digits & prefix_ok
    raw_list = raw.to_pylist()
    e164 = pc.binary_join_element_wise("+45", raw, "").to_pylist()
    blank = pc.equal(raw, "").to_numpy(zero_copy_only=False)
    values = [
        number if is_common else (None if is_blank else _MISSING)
        for number, is_common, is_blank in zip(e164, common.tolist(), blank.tolist(), strict=True)
    ]
    return values, raw_list


def _per_distinct(values, compute, invalid: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``compute`` (value -> (ok, number)) once per distinct value; the results per row."""
    encoded = values.dictionary_encode()
    results = [compute(value) for value in encoded.dictionary.to_pylist()] or [invalid]
    index = encoded.indices.to_numpy(zero_copy_only=False)
    ok = np.array([result[0] for result in results], dtype=bool)[index]
    numbers = np.array([result[1] for result in results], dtype=np.int64)[index]
    return ok, numbers


def _distinct_values(values, compute) -> tuple[np.ndarray, np.ndarray, list]:
    """``compute`` (value -> (ok, parsed)) once per distinct value: (ok per row, index of the
    row's distinct value, the parsed distinct values)."""
    encoded = values.dictionary_encode()
    results = [compute(value) for value in encoded.dictionary.to_pylist()]
    index = encoded.indices.to_numpy(zero_copy_only=False)
    ok = np.array([result[0] for result in results], dtype=bool)[index] if results else np.zeros(len(index), dtype=bool)
    return ok, index, [result[1] for result in results]


def _birth(validator: CachedRowValidator, part: str) -> tuple[bool, int]:
    if len(part) != 7 or not (part.isascii() and part.isdigit()):
        return False, 0
    birth = validator._birth_and_age(part)
    return (False, 0) if birth is None else (True, birth[1])


_PAIR_SEPARATOR = "\x1f"  # joins a benefit cell and its category cell; a control character no export holds


def _ydelse(validator: CachedRowValidator, raw: str) -> tuple[bool, tuple | None]:
    cells = raw.split(_PAIR_SEPARATOR)
    if len(cells) > 2:
        return False, None  # the separator inside a cell: the record path reads the row
    ydelse = validator.benefit_key(cells[0], cells[1] if len(cells) == 2 else "")
    return ydelse is not None, ydelse


def _overgangsdato(validator: CachedRowValidator, raw: str) -> tuple[bool, object]:
    value = validator._date(raw)
    return not (value is None or value is _INVALID), value


def _valid(value: object) -> tuple[bool, None]:
    return value is not _INVALID, None


def _flag(validator: CachedRowValidator, raw: str) -> tuple[bool, bool]:
    value = validator._bool(raw)
    return value is not _INVALID, bool(value) if value is not _INVALID else False


def prepare_rows(spec: PreparationSpec, rows: Iterable[NumberedRow]) -> PreparedBlock:
    """The same for rows a reader has already mapped (XLSX, JSON, or CSV the block path cannot take)."""
    block = _Builder(spec, _state(spec))
    for row_number, row in rows:
        block.add_row(row_number, row)
    return block.finish()


# --- building a block --------------------------------------------------------------------------------


class _Builder:
    def __init__(self, spec: PreparationSpec, state: _State) -> None:
        self.state = state
        self.out = PreparedBlock()
        self.digests: list[bytes] = []
        self.date_parts: list[str] = []
        self.nonces = b""
        self.nonce_pos = 0
        self.copy_rows: list[bytes] = []
        self.persons: list[bytes] = []
        self.maalgrupper: list[tuple[str, str, str]] = []

    def add_row(self, row_number: int, row: dict) -> None:
        result = self.state.validator.validate(row_number, row)
        if isinstance(result, list):
            self.out.rows_read += 1
            self.out.errors.extend(result)
            self.out.rejected_rows += 1
            return
        self.add_fast(row_number, _as_fast(result))

    def add_fast(self, row_number: int, fast: tuple) -> None:
        (number, _birth_date, age, ydelse, overgangsdato, passiv, forskerbeskyttet, navn, phone_e164, phone_warning, fritaget) = fast
        state = self.state
        gender = "M" if number[9] in "13579" else "K"
        benefit = state.benefit_ids.get((ydelse, overgangsdato))
        if benefit is None:
            benefit = state.benefit_id(ydelse, overgangsdato)
        outcome = state.outcome_of(benefit, age, gender, passiv, forskerbeskyttet)
        self.add_classified([(row_number, number, outcome, navn, phone_e164, phone_warning, fritaget)])

    def add_classified(self, rows: list[tuple]) -> None:
        """Valid rows whose outcome (``_State.outcome``) is known, in row order, each as
        ``(row number, CPR number, outcome, navn, phone in E.164, phone warning, exempt from
        Digital Post)``: the keyed hash,
        the encryptions and the encodings, in one loop with everything it needs in locals (this
        is the only per-row work of a plain block)."""
        out = self.out
        state = self.state
        out.rows_read += len(rows)
        digests, date_parts, copy_rows, persons, maalgrupper = (
            self.digests, self.date_parts, self.copy_rows, self.persons, self.maalgrupper
        )
        valid_rows_append, valid_outcome_append = out.valid_rows.append, out.valid_outcome.append
        pseudonym_digest = state.pseudonym_digest
        cpr_encrypt, cpr_aad = state.cpr_aead.encrypt, state.cpr_aad
        contact_encrypt, contact_aad_prefix = state.contact_aead.encrypt, state.contact_aad_prefix
        copy_prefix, copy_ciphertext_len = state.copy_prefix, state.copy_ciphertext_len
        copy_contact_key_id = state.copy_contact_key_id
        hexlify = binascii.hexlify
        nonces, pos = self.nonces, self.nonce_pos
        for row_number, number, outcome, navn, phone_e164, phone_warning, fritaget in rows:
            cpr_bytes = number.encode()
            digest = pseudonym_digest(cpr_bytes)
            digests.append(digest)
            date_parts.append(number[:6])
            valid_rows_append(row_number)
            if phone_warning is not None:
                out.warnings.append(RowError(row_number, Kolonne.TELEFON.value, phone_warning))
            code, maalgruppe, copy_tail, person_tail = outcome
            if code < 0:
                if code == UNKNOWN_BENEFIT:
                    # A benefit (or visitation category) the mapping cannot place is something to
                    # fix, not a silent exclusion: the municipality (or KL's mapping) must act on it.
                    out.errors.append(RowError(row_number, *maalgruppe))
                    out.rejected_rows += 1
                else:
                    out.exclusions[maalgruppe] += 1  # the exclusion reason, for excluded rows
                    if code == EXCLUDED_TRANSITION:
                        out.warnings.append(RowError(row_number, Kolonne.OVERGANGSDATO.value, state.transition_warning))
                valid_outcome_append(code)
                continue
            # Random nonces, drawn from the OS in bulk: one call per 4,096 citizens, not two per row.
            if pos == len(nonces):
                nonces = os.urandom(2 * _NONCE * 4096)
                pos = 0
            cpr_nonce = nonces[pos : pos + _NONCE]
            contact_nonce = nonces[pos + _NONCE : pos + 2 * _NONCE]
            pos += 2 * _NONCE
            pseudonym = hexlify(digest)
            # Exactly the plaintext shared.crypto.seal_contact writes (json.dumps, compact separators).
            contact = b'{"cpr":"%s","name":%s,"phone":%s,"exempt":%s}' % (
                cpr_bytes,
                _json_str(navn).encode() if navn is not None else b"null",
                _json_str(phone_e164).encode() if phone_e164 is not None else b"null",
                b"true" if fritaget else b"false",
            )
            # Sealed for dispatch and stored with the citizen; released only if the citizen is sampled.
            sealed = contact_encrypt(contact_nonce, contact, contact_aad_prefix + pseudonym)
            valid_outcome_append(len(persons))
            copy_rows.append(
                b"".join(
                    (
                        copy_prefix, pseudonym, copy_ciphertext_len, cpr_nonce, cpr_encrypt(cpr_nonce, cpr_bytes, cpr_aad),
                        copy_tail, (_NONCE + len(sealed)).to_bytes(4, "big"), contact_nonce, sealed, copy_contact_key_id,
                    )
                )
            )
            persons.append(b'{"pseudonym":"%s%s' % (pseudonym, person_tail))
            maalgrupper.append(maalgruppe)  # the decision (benefit, category, maalgruppe)
        self.nonces, self.nonce_pos = nonces, pos

    def finish(self) -> PreparedBlock:
        out = self.out
        out.valid_digests = b"".join(self.digests)
        out.valid_date_parts = "".join(self.date_parts)
        out.set_citizens(self.copy_rows, self.persons, self.maalgrupper)
        if len(out.errors) > 1:
            out.errors.sort(key=lambda error: error.row)
        return out


def _as_fast(row: ValidRow) -> tuple:
    return (
        row.cpr, row.birth_date, row.age, (row.ydelse, row.visitationskategori), row.overgangsdato, row.passiv, row.forskerbeskyttet, row.navn,
        row.phone_e164, row.warnings[0].message if row.warnings else None, row.fritaget_digital_post,
    )


def masked(date_part: str) -> str:
    """The masked CPR number (as ``mask_cpr``) from the date part a block reports."""
    return f"{date_part}-XXXX"


def _count_lines(data: bytes) -> int:
    """Lines as Python's universal newlines count them (\\n, \\r\\n and a lone \\r)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


assert masked("010190") == mask_cpr("0101901234")
