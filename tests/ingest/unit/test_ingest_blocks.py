"""The block path (CSV cut into byte blocks, prepared in worker processes) must give what the
row-by-row path gives: the same rows, row numbers, errors, warnings, exclusions, citizens and
events, however the file is cut."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import uuid
from datetime import date

import numpy as np
import pytest

from services.ingest.domain import ExclusionReason, classify, load_mapping, validate_row
from services.ingest.domain.fastpath import CachedRowValidator
from services.ingest.domain.readers import iter_extract_rows
from services.ingest.duplicates import SeenKeys
from services.ingest.parallel import BlockSettings, ExtractFile, prepared_blocks
from services.ingest.preparation import FAST_COLUMNS, PreparationSpec, _is_plain, _prepare_plain_block
from services.ingest.pseudonymisation import decrypt_cpr, pseudonym_for
from services.ingest.service import _drop_duplicates
from shared.crypto import SealedContact, open_contact
from shared.events import PopulationPerson

REFERENCE = date(2023, 8, 1)
HEADER = (
    "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn;Visitationskategori;"
    "Fritaget for Digital Post"
)
TODAY = date(2026, 1, 15)  # the day of the upload: later dates are row errors
KEY = os.urandom(32)


def _spec() -> PreparationSpec:
    return PreparationSpec(
        token=uuid.uuid4().hex,
        delivery_id=uuid.uuid4(),
        reference_date=REFERENCE,
        mapping_version="v2",
        round_id="r1",
        pseudonym_key=KEY,
        cpr_key=KEY,
        cpr_key_id="cpr-1",
        contact_key=KEY,
        contact_key_id="contact-1",
        today=TODAY,
    )


def _messy_extract(rows: int, seed: int = 7, *, plain: bool = False) -> str:
    """Valid rows mixed with every kind of problem, quoted values with line breaks and
    delimiters, blank lines, duplicates and CRLF line ends. ``plain``: the same problems in the
    cells, but one record per line and no quotes (what the columnar path takes)."""
    rng = random.Random(seed)
    lines = [HEADER]
    cprs = [f"{rng.randrange(1, 29):02d}{rng.randrange(1, 13):02d}{rng.randrange(40, 99):02d}-{rng.randrange(0, 4000):04d}" for _ in range(rows)]
    for i in range(rows):
        cpr = cprs[i] if rng.random() > 0.05 else cprs[rng.randrange(max(1, i))]  # some duplicates
        if rng.random() < 0.03:
            cpr = rng.choice(["320190-1234", "0101AB-1234", "", "710190-1234", " 010190-1235 "])
        ydelse = rng.choice([
            "Dagpenge", "Sygedagpenge", "Kontanthjælp - jobparat", "Ukendt ydelse", "Førtidspension", "",
            "Kontanthjælp", "Ressourceforløbsydelse", "Uddannelseshjælp",
        ])
        kategori = rng.choice(["", "Jobparat", "aktivitetsparat", "Jobafklaringsforløb", "Ressourceforløb", "Match 7", "Uddannelsesparat"])
        overgang = rng.choice(["01-01-2021", "2023-07-31", "15.06.2022", "2024-01-01", "01-01-22", "", "44562", "01-01-2030"])
        telefon = rng.choice(["", "21234567", "+45 21 23 45 67", "20012345", "999", "0045-31234567"])
        passiv = rng.choice(["nej", "nej", "ja", "", "måske"])
        fritaget = rng.choice(["", "", "nej", "ja", "x", "måske"])
        if plain:
            navn = rng.choice(["Bo Berg", "  Ib  ", "Bo\tBerg", "Bo\xa0Berg", "Ø" * 201, "", "Søren Ø"])
            samtale = rng.choice(["15-06-2023", "", "31-02-2023", "03-03-2031"])
            afsluttet = rng.choice(["nej", "ja", "", "kanske"])
        else:
            navn = rng.choice(["Bo Berg", '"Berg; Bo"', '"Bo\nBerg"', '"Søren ""Søs"" Ø"', "  Ib  "])
            samtale, afsluttet = "15-06-2023", "nej"
        line = f"{cpr};{ydelse};{overgang};{samtale};{afsluttet};{telefon};{passiv};{navn};{kategori};{fritaget}"
        if rng.random() < 0.02 and not plain:
            line += ";ekstra"
        lines.append(line)
        if rng.random() < 0.02:
            lines.append("")
    return "\r\n".join(lines) + "\r\n"


async def _collect(path, settings: BlockSettings, spec: PreparationSpec):
    seen = SeenKeys()
    out = {"rows_read": 0, "rejected": 0, "errors": [], "warnings": [], "exclusions": {}, "persons": [], "copy_rows": []}
    async for block in prepared_blocks(path, spec, settings):
        _drop_duplicates(block, seen)
        out["rows_read"] += block.rows_read
        out["rejected"] += block.rejected_rows
        out["errors"] += [(e.row, e.column, e.message) for e in block.errors]
        out["warnings"] += [(w.row, w.column, w.message) for w in block.warnings]
        for reason, count in block.exclusions.items():
            out["exclusions"][reason] = out["exclusions"].get(reason, 0) + count
        out["persons"] += block.persons
        out["copy_rows"] += block.copy_rows
    out["exclusions"] = {reason: count for reason, count in out["exclusions"].items() if count}
    return out


def _comparable(result: dict) -> dict:
    """Everything but the random nonces: persons by pseudonym, and per citizen the sealed
    contact's exemption from Digital Post (the rest of a COPY tuple holds ciphertexts: counted)."""
    persons = sorted(PopulationPerson.model_validate_json(p).model_dump().__repr__() for p in result["persons"])
    exempt = sorted(_sealed_contact(row)[1:] for row in result["copy_rows"])
    return {**result, "persons": persons, "copy_rows": len(result["copy_rows"]), "exempt": exempt}


def _copy_fields(row: bytes) -> list[bytes]:
    fields, offset = [], 2
    while offset < len(row):
        length = int.from_bytes(row[offset : offset + 4], "big", signed=True)
        fields.append(row[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return fields


def _sealed_contact(row: bytes):
    """(the opened contact, its pseudonym, whether it is exempt from Digital Post) of a COPY tuple."""
    fields = _copy_fields(row)
    pseudonym = fields[1].decode()
    sealed = SealedContact(key_id=fields[10].decode(), nonce=base64.b64encode(fields[9][:12]).decode(),
                           ciphertext=base64.b64encode(fields[9][12:]).decode())
    contact = open_contact(sealed, round_id="r1", pseudonym=pseudonym, keyring={"contact-1": KEY})
    return contact, pseudonym, contact.digital_post_exempt


@pytest.mark.parametrize(("block_bytes", "block_rows"), [(64, 3), (1000, 7), (1 << 20, 20_000)])
def test_blocks_equal_the_row_path_however_the_file_is_cut(tmp_path, block_bytes, block_rows):
    path = tmp_path / "messy.csv"
    path.write_text(_messy_extract(400), encoding="cp1252")
    spec = _spec()
    blocks = asyncio.run(_collect(ExtractFile(str(path), "momentum"), BlockSettings(block_bytes, block_rows, 0, 0), spec))
    rows = asyncio.run(_collect(iter_extract_rows(path, "momentum"), BlockSettings(block_bytes, block_rows, 0, 0), spec))
    assert blocks["rows_read"] > 380
    assert blocks["errors"] and blocks["warnings"] and blocks["exclusions"]
    assert any("appears more than once" in message for _, _, message in blocks["errors"])
    assert _comparable(blocks) == _comparable(rows)


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
@pytest.mark.parametrize(("block_bytes", "block_rows"), [(300, 5), (1 << 20, 20_000)])
def test_the_columnar_path_equals_the_row_path(tmp_path, encoding, block_bytes, block_rows):
    """Plain blocks (one record per line, no quotes) are parsed by columns and checked once per
    distinct value; every row must still come out as the row path makes it."""
    path = tmp_path / "plain.csv"
    path.write_text(_messy_extract(1500, seed=5, plain=True), encoding=encoding)
    body = path.read_bytes().split(b"\r\n", 1)[1]
    layout = _layout(path)
    spec = _spec()
    assert _is_plain(body) and _prepare_plain_block(spec, layout, body, 2) is not None  # the path is taken
    blocks = asyncio.run(_collect(ExtractFile(str(path), "momentum"), BlockSettings(block_bytes, block_rows, 0, 0), spec))
    rows = asyncio.run(_collect(iter_extract_rows(path, "momentum"), BlockSettings(block_bytes, block_rows, 0, 0), spec))
    assert blocks["rows_read"] == 1500 and blocks["persons"] and b"\r\n\r\n" in body
    messages = {message for _, _, message in blocks["errors"] + blocks["warnings"]}
    assert any("appears more than once" in m for m in messages) and len(messages) > 8
    assert any("(column visitationskategori)" in m for m in messages)
    assert any("after the day of the upload" in m for m in messages)
    assert any(column == "fritaget_digital_post" and "not a yes/no value" in m for _, column, m in blocks["errors"])
    comparable = _comparable(blocks)
    assert {exempt for _, exempt in comparable["exempt"]} == {True, False}
    assert comparable == _comparable(rows)


def test_blocks_the_columnar_path_cannot_take_go_the_record_way(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text(_messy_extract(50, seed=3, plain=True), encoding="utf-8")
    body = path.read_bytes().split(b"\r\n", 1)[1]
    layout = _layout(path)
    spec = _spec()
    line = b"010190-1235;Dagpenge;01-01-2021;15-06-2023;nej;21234567;nej;Bo Berg;;\r\n"
    assert not _is_plain(body + line.replace(b"Bo Berg", b'"Berg; Bo"'))  # quoting
    assert not _is_plain(body + line.replace(b"\r\n", b"\r"))  # old Mac line end
    assert not _is_plain(body + b"\0" + line)
    assert _prepare_plain_block(spec, layout, body + line.replace(b"Bo Berg", b"Bo Berg;ekstra"), 2) is None  # too wide
    assert _prepare_plain_block(spec, layout, body + line.replace(b"Bo Berg", b"B\xf8"), 2) is None  # not UTF-8


def _layout(path):
    from services.ingest.domain.readers import open_extract
    from services.ingest.parallel import _csv_layout

    reader = open_extract(str(path), "momentum")
    try:
        return _csv_layout(reader)
    finally:
        reader.close()


def test_worker_processes_give_the_same_result(tmp_path):
    path = tmp_path / "messy.csv"
    path.write_text(_messy_extract(3000, seed=11), encoding="utf-8")
    spec = _spec()
    in_thread = asyncio.run(_collect(ExtractFile(str(path), "momentum"), BlockSettings(20_000, 500, 0, 0), spec))
    in_processes = asyncio.run(_collect(ExtractFile(str(path), "momentum"), BlockSettings(20_000, 500, 2, 0), spec))
    assert _comparable(in_processes) == _comparable(in_thread)


def test_a_block_holds_what_the_database_and_dispatch_need(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text(HEADER + "\n010190-1235;Dagpenge;01-01-2021;15-06-2023;nej;21234567;nej;Bo Berg;;Ja\n", encoding="utf-8")
    spec = _spec()
    result = asyncio.run(_collect(ExtractFile(str(path), "momentum"), BlockSettings(1 << 20, 100, 0, 0), spec))
    [raw_person] = result["persons"]
    person = PopulationPerson.model_validate_json(raw_person)
    assert person.pseudonym == pseudonym_for("0101901235", KEY)
    assert (person.maalgruppe, person.bands.gender, person.forskerbeskyttet) == ("dagpenge", "M", False)
    assert "contact" not in json.loads(raw_person)  # contacts stay in ingest until the citizen is sampled
    # The binary COPY tuple: 11 fields; the CPR ciphertext (nonce || AES-GCM) opens under its key
    # id, the sealed contact (nonce || AES-GCM) opens for dispatch, bound to round and pseudonym.
    [row] = result["copy_rows"]
    fields, offset = [], 2
    assert int.from_bytes(row[:2], "big") == 11
    while offset < len(row):
        length = int.from_bytes(row[offset : offset + 4], "big", signed=True)
        fields.append(row[offset + 4 : offset + 4 + length])
        offset += 4 + length
    assert fields[0] == spec.delivery_id.bytes and fields[1].decode() == person.pseudonym
    assert decrypt_cpr(fields[2], key=KEY, key_id="cpr-1") == "0101901235"
    assert [f.decode() for f in fields[3:9]] == ["cpr-1", "dagpenge", "Dagpenge", "M", person.bands.age_band, person.bands.duration_band]
    sealed = SealedContact(key_id=fields[10].decode(), nonce=base64.b64encode(fields[9][:12]).decode(),
                           ciphertext=base64.b64encode(fields[9][12:]).decode())
    contact = open_contact(sealed, round_id="r1", pseudonym=person.pseudonym, keyring={"contact-1": KEY})
    assert (contact.cpr, contact.name, contact.phone_e164, contact.digital_post_exempt) == ("0101901235", "Bo Berg", "+4521234567", True)


def test_record_fast_path_equals_the_domain_functions():
    rng = random.Random(3)
    mapping = load_mapping()
    today = date(2023, 8, 15)
    validator = CachedRowValidator(REFERENCE, mapping, today)
    columns = [c.value for c in FAST_COLUMNS]
    positions = tuple(range(len(columns)))
    values = {
        "cpr": ["010190-1235", "0202852346", "320190-1234", "010124-4000", "290200-4001", "3110231234", "01019-1234", ""],
        "ydelse": [
            "Dagpenge", "  sygedagpenge ", "Kontanthjælp - jobparat", "Ukendt", "Førtidspension", "", "x" * 250,
            "Kontanthjælp", "Ressourceforløbsydelse", "Uddannelseshjælp",
        ],
        "visitationskategori": ["", "Jobparat", "aktivitetsparat", "Jobafklaringsforløb", "Ressourceforløb", "Match 9", "z" * 250],
        "overgangsdato": ["2022-01-01", "01-01-2022", "2023-07-31", "2023-09-01", "01-01-22", "", "2031-01-01"],
        "seneste_samtale": ["2022-01-01", "", "bad", "2029-05-05"],
        "forloeb_afsluttet": ["ja", "nej", "", "måske"],
        "passiv": ["ja", "nej", "", "x"],
        "forskerbeskyttet": ["ja", "", "nej"],
        "navn": ["Søren", "  Bo  Berg ", "", "y" * 250],
        "telefon": ["21234567", "+45 21 23 45 67", "20012345", "999", "+46701234567", ""],
        "fritaget_digital_post": ["ja", "", "nej", "X", "måske"],
    }
    for number in range(1, 3001):
        fields = [rng.choice(values[column]) for column in columns]
        expected = validate_row(number, dict(zip(columns, fields, strict=True)), reference_date=REFERENCE, today=today)
        fast = validator.validate_fields(fields, positions)
        if fast is None:
            continue  # handed to validate_row itself
        assert not isinstance(expected, list), fields
        cpr, birth_date, age, ydelse, overgangsdato, passiv, forsker, navn, phone, warning, fritaget = fast
        assert (cpr, birth_date, age, ydelse, overgangsdato, passiv, forsker, navn, phone, fritaget) == (
            expected.cpr, expected.birth_date, expected.age, (expected.ydelse, expected.visitationskategori),
            expected.overgangsdato, expected.passiv,
            expected.forskerbeskyttet, expected.navn, expected.phone_e164, expected.fritaget_digital_post,
        )
        assert warning == (expected.warnings[0].message if expected.warnings else None)
        classification = classify(expected, REFERENCE, mapping)
        reason, maalgruppe, age_band, duration_band = validator.classify_parts(ydelse, overgangsdato, age, passiv, forsker)
        assert (reason, maalgruppe, age_band) == (classification.exclusion_reason, classification.maalgruppe, classification.age_band)
        assert duration_band == classification.duration_band
        benefit = validator.benefit_part(ydelse, overgangsdato)
        assert benefit[3] == classification.label
        if reason is ExclusionReason.UNKNOWN_BENEFIT:
            assert benefit[4] == classification.error


def test_seen_keys_finds_every_repeat_with_its_first_row():
    rng = np.random.default_rng(1)
    keys = [rng.bytes(32) for _ in range(500)]
    stream = [keys[int(i)] for i in rng.integers(0, 500, 3000)]
    seen, first, expected, found = SeenKeys(), {}, {}, {}
    for row, key in enumerate(stream, start=2):
        if key in first:
            expected[row] = first[key]
        else:
            first[key] = row
    for start in range(0, len(stream), 97):
        part = stream[start : start + 97]
        rows = np.arange(start + 2, start + 2 + len(part), dtype=np.int32)
        for index, first_row in seen.check(b"".join(part), 32, rows).items():
            found[int(rows[index])] = first_row
    assert found == expected
    assert len(seen) == len(first)


def test_seen_keys_tell_apart_keys_that_share_their_first_half():
    """Keys are searched on their first 8 bytes; keys equal there but not after must stay apart,
    within a block and across blocks, and a real repeat among them must still be found."""
    rng = np.random.default_rng(3)
    prefix = rng.bytes(8)
    twins = [prefix + rng.bytes(24) for _ in range(6)]  # same first half, different second
    others = [rng.bytes(32) for _ in range(40)]
    stream = others[:20] + twins[:3] + [twins[1]] + others[20:] + twins[3:] + [twins[0], twins[5]]
    seen, found = SeenKeys(), {}
    for start in range(0, len(stream), 7):
        part = stream[start : start + 7]
        rows = np.arange(start + 2, start + 2 + len(part), dtype=np.int32)
        for index, first_row in seen.check(b"".join(part), 32, rows).items():
            found[int(rows[index])] = first_row
    first = {}
    expected = {}
    for row, key in enumerate(stream, start=2):
        if key in first:
            expected[row] = first[key]
        else:
            first[key] = row
    assert len(expected) == 3 and found == expected
    assert len(seen) == len(first)
