"""Writes the bad-extract corpus beside this file: ``python tests/ingest/corpus/make_corpus.py``.

The files are committed; this script documents how each was made (and remakes them). Every CPR
number here is synthetic; names and phone numbers are made up.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent
HEADER = ["CPR-nummer", "Ydelse", "Overgangsdato", "Seneste samtale", "Forløb afsluttet", "Telefon", "Passiv", "Navn"]
GOOD = [
    ["010190-1235", "Dagpenge", "01-01-2022", "15-06-2023", "nej", "12 34 56 78", "nej", "Søren Ærø"],
    ["020285-2346", "Sygedagpenge", "01-03-2023", "01-07-2023", "nej", "+45 23 45 67 89", "nej", "Åse Øster"],
    ["030375-3457", "Kontanthjælp - aktivitetsparat", "01-06-2021", "", "ja", "", "nej", "Bo Berg"],
    ["040465-4568", "Ressourceforløbsydelse - jobafklaringsforløb", "2022-02-01", "2023-05-01", "nej", "31313131", "nej", "Ida Ibsen"],
]


def csv_text(rows, delimiter=";", header=HEADER) -> str:
    return "\r\n".join(delimiter.join(cells) for cells in [header, *rows]) + "\r\n"


def write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)


def main() -> None:
    # Danish Excel's "CSV (semikolonsepareret)": Windows-1252, ';', CRLF.
    write("good_cp1252_semicolon.csv", csv_text(GOOD).encode("cp1252"))
    write("good_utf8_bom_comma.csv", b"\xef\xbb\xbf" + csv_text(GOOD, delimiter=",").encode("utf-8"))
    # Latin-1 is what some tools write; æøå are the same bytes as in cp1252.
    write("good_latin1_tab.csv", csv_text(GOOD, delimiter="\t").encode("latin-1"))
    write("wrong_delimiter_pipe.csv", csv_text(GOOD, delimiter="|").encode("utf-8"))
    write("missing_columns.csv", csv_text([r[:3] for r in GOOD], header=HEADER[:3]).encode("utf-8"))
    write("empty.csv", b"")
    write("blank_lines.csv", b"\r\n \r\n\r\n")
    write("binary_garbage.csv", bytes(range(256)) * 64)
    bad_cprs = [
        ["320190-1234", "Dagpenge", "01-01-2022", "", "nej", "", "nej", "Ugyldig dato"],  # day 32
        ["710190-1234", "Dagpenge", "01-01-2022", "", "nej", "", "nej", "Erstatning"],  # substitute number (day + 60)
        ["01019-1234", "Dagpenge", "01-01-2022", "", "nej", "", "nej", "For kort"],  # 9 digits
        ["0101AB-1234", "Dagpenge", "01-01-2022", "", "nej", "", "nej", "Bogstaver"],
        ["", "Dagpenge", "01-01-2022", "", "nej", "", "nej", "Mangler"],
        ["010190-1235", "Dagpenge", "2022-13-01", "", "nej", "", "nej", "Forkert dato"],  # bad overgangsdato
        ["050595-5679", "Ukendt ydelse", "01-01-2022", "", "nej", "", "nej", "Ukendt"],  # benefit not mapped
        ["060696-6780", "Dagpenge", "01-01-2022", "", "nej", "999", "nej", "Dårlig telefon"],  # phone: warning only
    ]
    write("invalid_cprs.csv", csv_text(GOOD[1:] + bad_cprs).encode("utf-8"))
    duplicates = GOOD + [GOOD[0], ["0101901235", "Sygedagpenge", "01-01-2023", "", "nej", "", "nej", "Samme igen"]]
    write("duplicates.csv", csv_text(duplicates).encode("utf-8"))
    # An unterminated quote late in the file swallows the rest of it into one field, beyond the
    # CSV field limit: the reader fails mid-stream, after the good rows were read and copied.
    broken = '070797-7891;"Dagpenge;01-01-2022;;nej;;nej;Brudt' + "x" * 200_000 + "\r\n"
    write("unterminated_quote.csv", (csv_text(GOOD) + broken).encode("utf-8"))

    # XLSX with a title row and a merged two-row header ("Datoer" over the two date columns).
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Udtræk"
    sheet.append(["Borgerundersøgelse - udtræk pr. 1. august 2023"])
    sheet.append(["CPR-nummer", "Ydelse", "Datoer", None, "Forløb afsluttet", "Telefon", "Passiv", "Navn"])
    sheet.append([None, None, "Overgangsdato", "Seneste samtale", None, None, None, None])
    for cell_range in ("A2:A3", "B2:B3", "C2:D2", "E2:E3", "F2:F3", "G2:G3", "H2:H3"):
        sheet.merge_cells(cell_range)
    for row in GOOD:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    write("merged_header.xlsx", buffer.getvalue())
    write("truncated.xlsx", buffer.getvalue()[: len(buffer.getvalue()) // 2])
    # A zip that is not a workbook.
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    write("zip_not_workbook.xlsx", other.getvalue())
    # Legacy Excel 97-2003 signature.
    write("legacy.xls", bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 504)


if __name__ == "__main__":
    main()
