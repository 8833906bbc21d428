"""Corpus-style tests of the extract readers, with files generated in tmp_path."""

from __future__ import annotations

import io
import json
import random
import tracemalloc
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from openpyxl.styles import Alignment

from services.ingest.domain.errors import ExtractFormatError
from services.ingest.domain.readers import (
    EXTRA_FIELDS_KEY,
    ExtractFormat,
    detect_format,
    iter_extract_rows,
    open_extract,
)

STANDARD_HEADERS = [
    "CPR-nummer",
    "Ydelse",
    "Overgangsdato",
    "Seneste samtale",
    "Forløb afsluttet",
    "Telefon",
    "Passiv",
    "Navn",
]
FASIT_HEADERS = [
    "CPR nr",
    "Forsørgelsesydelse",
    "Dato for overgang til aktuel ydelse",
    "Dato seneste samtale",
    "Afsluttet forløb (ja/nej)",
    "Telefonnr.",
    "Passiv (ja/nej)",
    "Fulde navn",
    "Forskerbeskyttelse",
]
ROW_1 = [
    "0101801234",
    "Kontanthjælp - jobparat",
    "01-02-2023",
    "2023-07-01",
    "nej",
    "20 12 34 56",
    "nej",
    "Søren Ærø Åberg",
]
ROW_2 = ["0202902345", "Sygedagpenge", "15.03.2023", "", "ja", "", "x", "Bølle Bø"]


def csv_bytes(rows: list[list[str]], *, delimiter: str = ";", encoding: str = "utf-8", newline: str = "\r\n") -> bytes:
    return "".join(delimiter.join(row) + newline for row in rows).encode(encoding)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def read_all(source: object, profile: str = "standard", **kwargs: object) -> list[tuple[int, dict]]:
    return list(iter_extract_rows(source, profile, **kwargs))


# --- CSV ------------------------------------------------------------------------------------------


def test_cp1252_csv_with_danish_headers_and_names(tmp_path: Path) -> None:
    path = write(tmp_path, "fasit.csv", csv_bytes([FASIT_HEADERS, ROW_1 + ["ja"], ROW_2 + [""]], encoding="cp1252"))
    with open_extract(path, "fasit") as reader:
        assert reader.encoding == "cp1252"
        assert reader.delimiter == ";"
        rows = list(reader)
    assert [number for number, _ in rows] == [2, 3]
    first = rows[0][1]
    assert first["navn"] == "Søren Ærø Åberg"
    assert first["ydelse"] == "Kontanthjælp - jobparat"
    assert first["forloeb_afsluttet"] == "nej"
    assert first["forskerbeskyttet"] == "ja"


def test_utf8_bom_does_not_leak_into_the_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbf" + csv_bytes([STANDARD_HEADERS, ROW_1]))
    with open_extract(path, "standard") as reader:
        assert reader.encoding == "utf-8-sig"
        rows = list(reader)
    assert rows[0][1]["cpr"] == "0101801234"


def test_utf8_without_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.csv", csv_bytes([STANDARD_HEADERS, ROW_1]))
    with open_extract(path, "standard") as reader:
        assert reader.encoding == "utf-8"
        assert list(reader)[0][1]["navn"] == "Søren Ærø Åberg"


def test_late_non_utf8_byte_switches_the_whole_file_to_cp1252(tmp_path: Path) -> None:
    ascii_rows = [["0101801234", "Dagpenge", "01-02-2022", "", "nej", "", "nej", "Jens"]] * 5000
    content = csv_bytes([STANDARD_HEADERS[:4] + ["Forloeb afsluttet"] + STANDARD_HEADERS[5:]] + ascii_rows)
    content += "0101801234;Dagpenge;01-02-2022;;nej;;nej;Søren\r\n".encode("cp1252")
    with open_extract(write(tmp_path, "late.csv", content), "standard") as reader:
        assert reader.encoding == "cp1252"
        assert list(reader)[-1][1]["navn"] == "Søren"


def test_utf16_unicode_text_export_with_tabs(tmp_path: Path) -> None:
    # Excel's "Unicode text" export: UTF-16 with a BOM, tab-separated.
    path = write(tmp_path, "unicode.txt", csv_bytes([STANDARD_HEADERS, ROW_1], delimiter="\t", encoding="utf-16"))
    with open_extract(path, "standard") as reader:
        assert reader.delimiter == "\t"
        assert list(reader)[0][1]["navn"] == "Søren Ærø Åberg"


@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    row = [value.replace(",", " ") for value in ROW_1]
    path = write(tmp_path, "d.csv", csv_bytes([STANDARD_HEADERS, row], delimiter=delimiter))
    with open_extract(path, "standard") as reader:
        assert reader.delimiter == delimiter
        assert list(reader)[0][1]["ydelse"] == "Kontanthjælp - jobparat"


def test_comma_delimited_with_quoted_commas_and_semicolons(tmp_path: Path) -> None:
    content = (
        ",".join(STANDARD_HEADERS)
        + "\n"
        + '0101801234,"Kontanthjælp - jobparat",2023-02-01,,nej,,nej,"Hansen, Jens; jr."\n'
    ).encode()
    with open_extract(write(tmp_path, "c.csv", content), "standard") as reader:
        assert reader.delimiter == ","
        assert list(reader)[0][1]["navn"] == "Hansen, Jens; jr."


def test_header_delimiter_chosen_by_columns_not_by_count(tmp_path: Path) -> None:
    # More commas than semicolons in the header text, yet ";" is the delimiter.
    headers = STANDARD_HEADERS[:-1] + ["Navn, fulde, med, mellemnavne"]
    content = csv_bytes([headers, ROW_1])
    with open_extract(write(tmp_path, "h.csv", content), "standard") as reader:
        assert reader.delimiter == ";"


def test_mangled_headers_in_csv(tmp_path: Path) -> None:
    headers = [
        "cpr nummer",
        "YDELSE",
        "overgangsdato ",
        "Seneste  samtale",
        "Forl?b afsluttet",
        "telefon",
        "PASSIV",
        "navn",
    ]
    rows = read_all(write(tmp_path, "m.csv", csv_bytes([headers, ROW_1])))
    assert rows[0][1]["forloeb_afsluttet"] == "nej"


def test_row_numbers_are_physical_lines(tmp_path: Path) -> None:
    content = (
        "\r\n"  # a blank first line
        + ";".join(STANDARD_HEADERS)
        + "\r\n"
        + ";".join(ROW_1)
        + "\r\n"
        + ";;;;;;;\r\n"  # Excel's trailing empty rows
        + '0202902345;Sygedagpenge;15.03.2023;;ja;;x;"Navn over\r\nto linjer"\r\n'
        + ";".join(ROW_1)
        + "\r\n"
    ).encode()
    with open_extract(write(tmp_path, "n.csv", content), "standard") as reader:
        assert reader.header_row_number == 2
        rows = list(reader)
    assert [number for number, _ in rows] == [3, 5, 7]
    assert rows[1][1]["navn"] == "Navn over\r\nto linjer"


def test_title_line_above_the_header(tmp_path: Path) -> None:
    content = (
        "Udtræk fra KMD Momentum 01-08-2023\r\n\r\n" + ";".join(STANDARD_HEADERS) + "\r\n" + ";".join(ROW_1) + "\r\n"
    ).encode()
    with open_extract(write(tmp_path, "t.csv", content), "momentum") as reader:
        assert reader.header_row_number == 3
        assert [number for number, _ in reader] == [4]


def test_short_rows_get_none_and_long_rows_are_flagged(tmp_path: Path) -> None:
    content = csv_bytes([STANDARD_HEADERS, ROW_1[:3], ROW_1 + ["ekstra", ""], ROW_1 + ["", ""]])
    rows = read_all(write(tmp_path, "s.csv", content))
    assert rows[0][1]["telefon"] is None
    assert rows[1][1][EXTRA_FIELDS_KEY] == 1
    assert EXTRA_FIELDS_KEY not in rows[2][1]


def test_unnamed_column_inside_the_header_is_not_an_extra_field(tmp_path: Path) -> None:
    headers = [*STANDARD_HEADERS[:2], "", *STANDARD_HEADERS[2:]]
    row = [*ROW_1[:2], "intern note", *ROW_1[2:]]
    rows = read_all(write(tmp_path, "u.csv", csv_bytes([headers, row])))
    assert EXTRA_FIELDS_KEY not in rows[0][1]
    assert rows[0][1]["overgangsdato"] == "01-02-2023"


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, "h.csv", csv_bytes([STANDARD_HEADERS]))) == []


def test_missing_columns_are_named_with_the_headers_found(tmp_path: Path) -> None:
    headers = ["CPR-nummer", "Ydelse", "Overgangsdato", "Telefon", "Sagsbehandler"]
    path = write(
        tmp_path, "missing.csv", csv_bytes([headers, ["0101801234", "Dagpenge", "2023-01-01", "20123456", "Bo"]])
    )
    with pytest.raises(ExtractFormatError) as info:
        read_all(path)
    message = str(info.value)
    for missing in ("seneste_samtale", "forloeb_afsluttet", "passiv"):
        assert missing in message
    assert '"Seneste samtale"' in message  # what the header should be called
    assert '"Sagsbehandler"' in message  # what was found
    assert "0101801234" not in message


def test_data_without_header_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "noheader.csv", csv_bytes([ROW_1, ROW_2]))
    with pytest.raises(ExtractFormatError, match="no header row found") as info:
        read_all(path)
    message = str(info.value)
    assert "0101801234" not in message
    assert "Søren" not in message


def test_duplicated_header_is_refused(tmp_path: Path) -> None:
    headers = STANDARD_HEADERS + ["Telefonnummer"]
    with pytest.raises(ExtractFormatError, match="several headers mean telefon"):
        read_all(write(tmp_path, "dup.csv", csv_bytes([headers, ROW_1 + ["20123456"]])))


@pytest.mark.parametrize("content", [b"", b"   \r\n\r\n  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(ExtractFormatError, match="empty"):
        read_all(write(tmp_path, "empty.csv", content))


def test_binary_garbage(tmp_path: Path) -> None:
    garbage = random.Random(2023).randbytes(8192)
    path = write(tmp_path, "garbage.csv", garbage)
    assert detect_format(path) is ExtractFormat.CSV
    with pytest.raises(ExtractFormatError, match="binary|not a CSV"):
        read_all(path)


def test_binary_garbage_without_nul_bytes(tmp_path: Path) -> None:
    garbage = bytes(byte or 1 for byte in random.Random(7).randbytes(8192))
    with pytest.raises(ExtractFormatError, match="control characters|not a CSV"):
        read_all(write(tmp_path, "garbage.csv", garbage))


def test_file_without_line_breaks_is_refused_without_loading_it(tmp_path: Path) -> None:
    content = b";".join([b"x" * 100] * 20_000)  # 2 MB, one line
    with pytest.raises(ExtractFormatError, match="longer than"):
        read_all(write(tmp_path, "oneline.csv", content))


def test_unterminated_quote_is_reported_with_its_line(tmp_path: Path) -> None:
    content = csv_bytes([STANDARD_HEADERS, ROW_1]) + b'0101801234;"Dagpenge' + b"x" * 200_000 + b"\r\n"
    with pytest.raises(ExtractFormatError, match="line 3"):
        read_all(write(tmp_path, "quote.csv", content))


def test_caller_stream_stays_open(tmp_path: Path) -> None:
    stream = io.BytesIO(csv_bytes([STANDARD_HEADERS, ROW_1]))
    assert len(read_all(stream)) == 1
    assert not stream.closed
    stream.seek(0)
    assert len(read_all(stream)) == 1


def test_caller_stream_stays_open_after_a_format_error() -> None:
    stream = io.BytesIO(csv_bytes([["Ukendt"], ["x"]]))
    with pytest.raises(ExtractFormatError):
        read_all(stream)
    assert not stream.closed


def test_text_stream_is_refused() -> None:
    with pytest.raises(TypeError, match="binary"):
        read_all(io.StringIO("a;b"))


def _peak_bytes_while_reading(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_extract_rows(path, "standard"))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_csv_memory_stays_flat_in_file_size(tmp_path: Path) -> None:
    peaks = {}
    for rows in (4_000, 24_000):
        path = write(tmp_path, f"{rows}.csv", csv_bytes([STANDARD_HEADERS] + [ROW_1] * rows))
        count, peaks[rows] = _peak_bytes_while_reading(path)
        assert count == rows
    # Six times the file, (almost) the same peak: nothing grows with the number of rows.
    assert peaks[24_000] < peaks[4_000] + 256 * 1024, peaks
    assert peaks[24_000] < path.stat().st_size / 2, peaks


# --- XLSX -----------------------------------------------------------------------------------------


def xlsx_bytes(build) -> bytes:
    workbook = openpyxl.Workbook()
    build(workbook.active)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_with_merged_two_row_header(tmp_path: Path) -> None:
    def build(sheet) -> None:
        sheet["A1"] = "Udtræk fra Schultz Fasit, referencedato 01-08-2023"
        sheet.merge_cells("A1:I1")
        # Row 2-3: a two-row header. Single headers are merged vertically; "Datoer" and "Status"
        # are merged horizontally over their sub-headers in row 3.
        single_headers = ["CPR nr", "Forsørgelsesydelse", "Telefonnr.", "Fulde navn", "Forskerbeskyttelse"]
        for column, header in zip("ABEFI", single_headers, strict=True):
            sheet[f"{column}2"] = header
            sheet.merge_cells(f"{column}2:{column}3")
        sheet["C2"] = "Datoer"
        sheet.merge_cells("C2:D2")
        sheet["C3"], sheet["D3"] = "Dato for overgang til aktuel ydelse", "Dato seneste samtale"
        sheet["G2"] = "Status"
        sheet.merge_cells("G2:H2")
        sheet["G3"], sheet["H3"] = "Afsluttet forløb (ja/nej)", "Passiv (ja/nej)"
        sheet["A2"].alignment = Alignment(vertical="center")
        sheet.append(
            [
                "0101801234",
                "Dagpenge",
                datetime(2022, 1, 1),
                datetime(2023, 6, 1),
                20123456,
                "Jens Ærø",
                "nej",
                "ja",
                None,
            ]
        )
        sheet.append([None] * 9)
        sheet.append([101801234, "Sygedagpenge", "15-03-2023", None, None, None, "ja", "nej", "ja"])

    path = write(tmp_path, "fasit.xlsx", xlsx_bytes(build))
    with open_extract(path, "fasit") as reader:
        assert reader.format is ExtractFormat.XLSX
        assert reader.header_row_number == 3
        rows = list(reader)
    assert [number for number, _ in rows] == [4, 6]
    first = rows[0][1]
    assert first["cpr"] == "0101801234"
    assert first["overgangsdato"] == datetime(2022, 1, 1)
    assert first["passiv"] == "ja" and first["forloeb_afsluttet"] == "nej"
    assert first["telefon"] == 20123456
    assert rows[1][1]["cpr"] == 101801234
    assert rows[1][1]["forskerbeskyttet"] == "ja"


def test_xlsx_header_on_a_later_sheet(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    workbook.active.title = "Vejledning"
    workbook.active["A1"] = "Se næste ark"
    data = workbook.create_sheet("Data")
    data.append(STANDARD_HEADERS)
    data.append(ROW_1)
    path = tmp_path / "sheets.xlsx"
    workbook.save(path)
    with open_extract(path, "standard") as reader:
        assert reader.sheet_name == "Data"
        assert len(list(reader)) == 1


def test_xlsx_with_wrong_extension_is_detected_by_content(tmp_path: Path) -> None:
    path = write(
        tmp_path, "upload.tmp", xlsx_bytes(lambda sheet: [sheet.append(STANDARD_HEADERS), sheet.append(ROW_1)])
    )
    assert detect_format(path) is ExtractFormat.XLSX
    assert len(read_all(path)) == 1


def test_xlsx_missing_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path, "m.xlsx", xlsx_bytes(lambda sheet: [sheet.append(STANDARD_HEADERS[:3]), sheet.append(ROW_1[:3])])
    )
    with pytest.raises(ExtractFormatError, match="missing required columns: seneste_samtale") as info:
        read_all(path)
    assert '"Overgangsdato"' in str(info.value)
    assert "0101801234" not in str(info.value)


def test_random_bytes_named_xlsx(tmp_path: Path) -> None:
    path = write(tmp_path, "random.xlsx", random.Random(1).randbytes(4096))
    with pytest.raises(ExtractFormatError, match="XLSX"):
        read_all(path, extract_format=ExtractFormat.XLSX)


def test_truncated_xlsx(tmp_path: Path) -> None:
    complete = xlsx_bytes(lambda sheet: [sheet.append(STANDARD_HEADERS)] + [sheet.append(ROW_1) for _ in range(200)])
    path = write(tmp_path, "truncated.xlsx", complete[: len(complete) // 2])
    assert detect_format(path) is ExtractFormat.XLSX
    with pytest.raises(ExtractFormatError, match="not a readable XLSX"):
        read_all(path)


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hej")
    with pytest.raises(ExtractFormatError, match="not a readable XLSX"):
        read_all(write(tmp_path, "other.zip", buffer.getvalue()))


def test_corrupt_sheet_xml_is_reported(tmp_path: Path) -> None:
    complete = xlsx_bytes(lambda sheet: [sheet.append(STANDARD_HEADERS)] + [sheet.append(ROW_1) for _ in range(50)])
    source, target = io.BytesIO(complete), io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as damaged:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) * 2 // 3]  # cut inside the sheet data
            damaged.writestr(item, data)
    with pytest.raises(ExtractFormatError, match="could not be read after row"):
        read_all(write(tmp_path, "corrupt.xlsx", target.getvalue()))


def test_legacy_xls_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "old.xls", bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 512)
    with pytest.raises(ExtractFormatError, match=r"\.xls"):
        read_all(path)


# --- JSON -----------------------------------------------------------------------------------------


def json_rows() -> list[dict]:
    return [
        dict(zip(STANDARD_HEADERS, ROW_1, strict=True)),
        {**dict(zip(STANDARD_HEADERS, ROW_2, strict=True)), "Ekstra": 1},
    ]


def test_json_array(tmp_path: Path) -> None:
    path = write(tmp_path, "rows.json", json.dumps(json_rows(), ensure_ascii=False, indent=2).encode())
    with open_extract(path, "standard") as reader:
        assert reader.format is ExtractFormat.JSON
        rows = list(reader)
    assert [number for number, _ in rows] == [1, 2]
    assert rows[1][1]["ydelse"] == "Sygedagpenge"


def test_json_array_with_canonical_keys_and_bom(tmp_path: Path) -> None:
    rows = [
        {
            "cpr": "0101801234",
            "ydelse": "Dagpenge",
            "overgangsdato": "2022-01-01",
            "seneste_samtale": None,
            "forloeb_afsluttet": False,
            "telefon": 20123456,
            "passiv": False,
        }
    ]
    path = write(tmp_path, "canon.json", b"\xef\xbb\xbf" + json.dumps(rows).encode())
    assert read_all(path)[0][1]["telefon"] == 20123456


def test_ndjson(tmp_path: Path) -> None:
    content = "\n".join(json.dumps(row, ensure_ascii=False) for row in json_rows()) + "\n\n"
    rows = read_all(write(tmp_path, "rows.ndjson", content.encode()))
    assert [number for number, _ in rows] == [1, 2]
    assert rows[0][1]["navn"] == "Søren Ærø Åberg"


def test_json_keys_may_vary_between_rows(tmp_path: Path) -> None:
    first, second = json_rows()
    del second["Navn"]
    rows = read_all(write(tmp_path, "vary.json", json.dumps([first, second]).encode()))
    assert rows[1][1].get("navn") is None and rows[1][1]["cpr"] == "0202902345"


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"[]", "no rows"),
        (b'[{"CPR-nummer": "0101801234"}]', "missing required columns"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps(json_rows())[:-30].encode(), "malformed JSON"),
        (b'{"rows": [\n{"a": 1}]}', "NDJSON"),
        (b"{}\n{oops}\n", "missing required columns|line 2"),
    ],
)
def test_bad_json(tmp_path: Path, content: bytes, pattern: str) -> None:
    with pytest.raises(ExtractFormatError, match=pattern) as info:
        read_all(write(tmp_path, "bad.json", content), extract_format=ExtractFormat.JSON)
    assert "0101801234" not in str(info.value)


def test_json_format_is_detected(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path, "a.txt", b"  \n[{}]")) is ExtractFormat.JSON
    assert detect_format(write(tmp_path, "b.txt", b'{"a": 1}\n')) is ExtractFormat.JSON
    assert detect_format(write(tmp_path, "c.txt", b"CPR;Ydelse")) is ExtractFormat.CSV
