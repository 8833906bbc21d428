"""Rows in, storable citizens out: validation, classification and pseudonymisation of one
delivery, a block at a time.

This is the per-row hot path of a national extract (a million rows), so it is written for speed
while keeping one meaning: every row goes through ``CachedRowValidator`` (whose results equal
``validate_row`` + ``classify``, see ``tests/ingest/unit``), and whatever is unusual falls back to
``validate_row`` itself, so error messages come from one place.

A block is pure CPU work with no shared state besides per-process caches, so blocks run in
worker processes (``services.ingest.parallel``) while the service copies earlier blocks into
PostgreSQL. A block's output is what the database and the bus need, already encoded:

- ``copy_rows``: each included citizen as a tuple in PostgreSQL's binary COPY format
  (see ``CITIZEN_COLUMNS``), so the service only concatenates bytes;
- ``persons``: each included citizen as the JSON of a ``PopulationPerson``, so an event chunk is
  a join of these (``services.ingest.events``);
- per valid row, the first 16 bytes of its keyed hash and its row number: duplicates are a
  property of the whole delivery, so they are found by the service, in row order, across blocks
  (``services.ingest.duplicates``).

No CPR number leaves a block in clear: only ciphertexts, keyed hashes and the masked date part.
"""

from __future__ import annotations

import binascii
import csv
import hashlib
import io
import os
import struct
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from json.encoder import encode_basestring_ascii as _json_str

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.ingest.domain.classification import ExclusionReason, load_mapping
from services.ingest.domain.cpr import mask_cpr
from services.ingest.domain.errors import ExtractFormatError
from services.ingest.domain.fastpath import CachedRowValidator
from services.ingest.domain.profiles import Kolonne
from services.ingest.domain.readers import EXTRA_FIELDS_KEY, NumberedRow
from services.ingest.domain.text import is_blank
from services.ingest.domain.validation import RowError, ValidRow

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
)

# valid_outcome codes besides a citizen index (>= 0)
UNKNOWN_BENEFIT = -1
EXCLUDED_BASE = -100  # EXCLUDED_BASE - i: excluded for EXCLUSION_ORDER[i]
EXCLUSION_ORDER = tuple(ExclusionReason)

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
    # One entry per included citizen:
    copy_rows: list[bytes] = field(default_factory=list)
    persons: list[bytes] = field(default_factory=list)
    maalgrupper: list[str] = field(default_factory=list)


class _State:
    """Per process and delivery: validator caches, cipher objects and encoded constants."""

    def __init__(self, spec: PreparationSpec) -> None:
        mapping = load_mapping(spec.mapping_version)
        self.validator = CachedRowValidator(spec.reference_date, mapping)
        key = spec.pseudonym_key
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        # HMAC-SHA256 with the key's pads hashed once: identical output to hmac.digest, at a
        # fraction of the cost (OpenSSL 3 sets up the MAC from scratch on every one-shot call).
        self.hmac_inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self.hmac_outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self.cpr_aead = AESGCM(spec.cpr_key)
        self.cpr_aad = spec.cpr_key_id.encode()
        self.contact_aead = AESGCM(spec.contact_key)
        self.contact_aad_prefix = f"{spec.round_id}|".encode()
        # Binary COPY: field count, the delivery id, and the pseudonym's length prefix.
        self.copy_prefix = struct.pack("!hi", len(CITIZEN_COLUMNS), 16) + spec.delivery_id.bytes + struct.pack("!i", 64)
        key_id = spec.cpr_key_id.encode()
        self.copy_ciphertext_len = struct.pack("!i", _NONCE + 10 + 16)  # nonce + 10 digits + tag
        self.copy_key_id = struct.pack("!i", len(key_id)) + key_id
        self.benefit_ids: dict[tuple, int] = {}  # (ydelse, overgangsdato) -> benefit_id()
        self.benefit_numbers: dict[tuple, int] = {}
        self.benefits: list[tuple] = []
        self.outcomes: dict[tuple, tuple] = {}  # see outcome()
        self.contact_key_id_json = _json_str(spec.contact_key_id).encode()
        self.unknown_benefit_message = (
            f"benefit (ydelse) is not in the maalgruppe mapping {mapping.version}; use the benefit's name as "
            "the case system exports it, or ask KL to add this name to the mapping"
        )

    def benefit_id(self, ydelse: str, overgangsdato: date) -> int:
        """A small number for what a (benefit, transition date) pair means for classification,
        so rows share outcomes across dates with the same meaning."""
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
        exclusion reason, COPY fields after the CPR key id, PopulationPerson JSON between the
        pseudonym and the contact nonce)``; code is 0 for an included citizen, else
        UNKNOWN_BENEFIT or an EXCLUDED_BASE code."""
        ydelse, *meaning = self.benefits[benefit]
        reason, maalgruppe, age_band, duration_band = self.validator.person_part(tuple(meaning), age, passiv, forskerbeskyttet)
        if reason is ExclusionReason.UNKNOWN_BENEFIT:
            return UNKNOWN_BENEFIT, None, None, None
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
        person_middle = (
            f'","maalgruppe":{_json_str(maalgruppe)},"bands":{{"gender":{_json_str(gender)},'
            f'"age_band":{_json_str(age_band)},"duration_band":{_json_str(duration_band)}}},'
            + ('"forskerbeskyttet":true,' if forskerbeskyttet else "")
            + '"contact":{"key_id":'
        ).encode() + self.contact_key_id_json + b',"nonce":"'
        return 0, maalgruppe, copy_tail, person_middle


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
    """
    try:
        text = data.decode(layout.encoding)
    except UnicodeDecodeError as exc:
        line = first_line + _count_lines(data[: exc.start])
        raise ExtractFormatError(f"line {line}: bytes that are not valid {layout.encoding_name}") from None
    state = _state(spec)
    block = _Builder(spec, state)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
    width = layout.width
    positions = layout.fast_positions
    validate_fields = state.validator.validate_fields
    add_fast = block.add_fast
    base = first_line - 1
    last = 0
    try:
        for fields in records:
            row_number = base + last + 1
            last = records.line_num
            if len(fields) == width:
                fast = validate_fields(fields, positions)
                if fast is not None:
                    add_fast(row_number, fast)
                    continue
            if all(is_blank(value) for value in fields):
                continue
            row = {column: fields[index] if index < len(fields) else None for column, index in layout.column_index}
            extra = [value for value in fields[width:] if not is_blank(value)]
            if extra:
                row[EXTRA_FIELDS_KEY] = len(extra)
            block.add_row(row_number, row)
    except csv.Error as exc:
        raise ExtractFormatError(f"line {base + last + 1}: malformed CSV ({exc})") from None
    return block.finish()


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

    def add_row(self, row_number: int, row: dict) -> None:
        result = self.state.validator.validate(row_number, row)
        if isinstance(result, list):
            self.out.rows_read += 1
            self.out.errors.extend(result)
            self.out.rejected_rows += 1
            return
        self.add_fast(row_number, _as_fast(result))

    def add_fast(self, row_number: int, fast: tuple) -> None:
        (number, _birth_date, age, ydelse, overgangsdato, passiv, forskerbeskyttet, navn, phone_e164, phone_warning) = fast
        out = self.out
        state = self.state
        out.rows_read += 1
        cpr_bytes = number.encode()
        inner = state.hmac_inner.copy()
        inner.update(cpr_bytes)
        outer = state.hmac_outer.copy()
        outer.update(inner.digest())
        digest = outer.digest()
        self.digests.append(digest)
        self.date_parts.append(number[:6])
        out.valid_rows.append(row_number)
        if phone_warning is not None:
            out.warnings.append(RowError(row_number, Kolonne.TELEFON.value, phone_warning))
        gender = "M" if number[9] in "13579" else "K"
        benefit = state.benefit_ids.get((ydelse, overgangsdato))
        if benefit is None:
            benefit = state.benefit_id(ydelse, overgangsdato)
        key = (benefit, age, gender, passiv, forskerbeskyttet)
        outcome = state.outcomes.get(key)
        if outcome is None:
            outcome = state.outcome(benefit, age, gender, passiv, forskerbeskyttet)
            if len(state.outcomes) < 100_000:
                state.outcomes[key] = outcome
        code, maalgruppe, copy_tail, person_middle = outcome
        if code < 0:
            if code == UNKNOWN_BENEFIT:
                # A benefit the mapping does not know is something to fix, not a silent
                # exclusion: the municipality (or KL's mapping) must act on it.
                out.errors.append(RowError(row_number, Kolonne.YDELSE.value, state.unknown_benefit_message))
                out.rejected_rows += 1
            else:
                out.exclusions[maalgruppe] += 1  # the exclusion reason, for excluded rows
            out.valid_outcome.append(code)
            return
        # Random nonces, drawn from the OS in bulk: one call per 4,096 citizens instead of two per row.
        pos = self.nonce_pos
        if pos == len(self.nonces):
            self.nonces = os.urandom(2 * _NONCE * 4096)
            pos = 0
        cpr_nonce = self.nonces[pos : pos + _NONCE]
        contact_nonce = self.nonces[pos + _NONCE : pos + 2 * _NONCE]
        self.nonce_pos = pos + 2 * _NONCE
        pseudonym = binascii.hexlify(digest)
        # Exactly the plaintext shared.crypto.seal_contact writes (json.dumps, compact separators).
        contact = b'{"cpr":"%s","name":%s,"phone":%s,"exempt":false}' % (
            cpr_bytes,
            _json_str(navn).encode() if navn is not None else b"null",
            _json_str(phone_e164).encode() if phone_e164 is not None else b"null",
        )
        sealed = state.contact_aead.encrypt(contact_nonce, contact, state.contact_aad_prefix + pseudonym)
        out.valid_outcome.append(len(out.persons))
        out.copy_rows.append(
            b"".join(
                (
                    state.copy_prefix,
                    pseudonym,
                    state.copy_ciphertext_len,
                    cpr_nonce,
                    state.cpr_aead.encrypt(cpr_nonce, cpr_bytes, state.cpr_aad),
                    copy_tail,
                )
            )
        )
        out.persons.append(
            b"".join(
                (
                    b'{"pseudonym":"',
                    pseudonym,
                    person_middle,
                    binascii.b2a_base64(contact_nonce, newline=False),
                    b'","ciphertext":"',
                    binascii.b2a_base64(sealed, newline=False),
                    b'"}}',
                )
            )
        )
        out.maalgrupper.append(maalgruppe)

    def finish(self) -> PreparedBlock:
        out = self.out
        out.valid_digests = b"".join(self.digests)
        out.valid_date_parts = "".join(self.date_parts)
        if len(out.errors) > 1:
            out.errors.sort(key=lambda error: error.row)
        return out


def _as_fast(row: ValidRow) -> tuple:
    return (
        row.cpr, row.birth_date, row.age, row.ydelse, row.overgangsdato, row.passiv, row.forskerbeskyttet, row.navn,
        row.phone_e164, row.warnings[0].message if row.warnings else None,
    )


def masked(date_part: str) -> str:
    """The masked CPR number (as ``mask_cpr``) from the date part a block reports."""
    return f"{date_part}-XXXX"


def _count_lines(data: bytes) -> int:
    """Lines as Python's universal newlines count them (\\n, \\r\\n and a lone \\r)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


assert masked("010190") == mask_cpr("0101901234")
