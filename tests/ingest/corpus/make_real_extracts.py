"""Writes the real-shaped extract corpus beside this file: ``python tests/ingest/corpus/make_real_extracts.py``.

Extracts shaped the way KMD Momentum and Schultz Fasit export them (issue #21): Danish headers
that differ between vendors and releases, the visitation category in a column of its own next
to the benefit, a title row above the header, Windows-1252 or UTF-8 with a BOM, ``;`` or ``,``,
Excel serial dates, CPR numbers that lost their leading zero in Excel. ``EXPECTED`` says what
each file must get; ``tests/ingest/test_real_extracts.py`` checks it through the HTTP API. Every
CPR number is synthetic; names and phone numbers are made up.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent
REFERENCE_DATE = date(2023, 8, 1)

# (CPR, benefit, visitation category, transition date, latest conversation, name): every benefit
# and category combination the case systems use, so all five target groups are met.
CITIZENS = [
    ("0503701231", "Dagpenge", "Jobparat", date(2022, 1, 3), date(2023, 6, 15), "Søren Ærø"),
    ("1204851232", "Sygedagpenge", "", date(2023, 3, 1), date(2023, 7, 1), "Åse Øster"),
    ("2306901233", "Kontanthjælp", "Jobparat", date(2022, 5, 2), date(2023, 5, 20), "Bo Berg"),
    ("0107751234", "Kontanthjælp", "Aktivitetsparat", date(2021, 6, 1), date(2023, 4, 11), "Ida Ibsen"),
    ("1508991235", "Uddannelseshjælp", "Uddannelsesparat", date(2022, 9, 1), date(2023, 6, 2), "Ali Aziz"),
    ("0909004236", "Uddannelseshjælp", "Åbenlyst uddannelsesparat", date(2023, 1, 9), date(2023, 7, 3), "Mia Møller"),
    ("3011024237", "Uddannelseshjælp", "Aktivitetsparat", date(2022, 2, 14), date(2023, 5, 5), "Per Præst"),
    ("0202661238", "Ressourceforløbsydelse", "Ressourceforløb", date(2020, 11, 1), date(2023, 6, 30), "Lis Lund"),
    ("0808711239", "Ressourceforløbsydelse", "Jobafklaringsforløb", date(2022, 8, 1), date(2023, 7, 14), "Jens Juul"),
    ("1912631240", "Ledighedsydelse", "", date(2023, 5, 1), date(2023, 7, 20), "Karen Krogh"),
]
EXPECTED_GROUPS = {"dagpenge": 1, "sygedagpenge": 1, "job_og_uddannelsesparate": 4, "aktivitetsparate": 3, "jobafklaring": 1}


def _cpr(number: str) -> str:
    return f"{number[:6]}-{number[6:]}"


def _dmy(value: date) -> str:
    return value.strftime("%d-%m-%Y")


def _excel_serial(value: date) -> int:
    return (value - date(1899, 12, 30)).days


def momentum_csv() -> bytes:
    """KMD Momentum: cp1252, ';', CRLF, a title row, 'Startdato ydelse', 'Visitationskategori'."""
    lines = [
        "Borgerundersøgelse - udtræk fra KMD Momentum pr. 01-08-2023;;;;;;;;",
        "CPR-nummer;Ydelse;Visitationskategori;Startdato ydelse;Seneste samtale;Forløb afsluttet;Mobilnummer;Passiv;Navn",
    ]
    for i, (cpr, ydelse, kategori, start, samtale, navn) in enumerate(CITIZENS):
        phone = f"2{i}345678" if i % 3 else ""
        lines.append(f"{_cpr(cpr)};{ydelse};{kategori};{_dmy(start)};{_dmy(samtale)};Nej;{phone};Nej;{navn}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def fasit_csv() -> bytes:
    """Schultz Fasit: UTF-8 with a BOM, ',', 'Dato for skift', 'Match', Excel serial dates as text
    (a "General" column saved as CSV)."""
    lines = ["Cpr-nummer,Forsørgelsesydelse,Match,Dato for skift,Sidste samtale,Sag afsluttet,Telefonnr.,Passiv markering,Fulde navn"]
    for i, (cpr, ydelse, kategori, start, samtale, navn) in enumerate(CITIZENS):
        phone = f"+45 3{i} 12 34 56" if i % 2 else ""
        lines.append(f"{cpr},{ydelse},{kategori},{_excel_serial(start)},{_dmy(samtale)},nej,{phone},,{navn}")
    return b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode("utf-8")


def fasit_xlsx() -> bytes:
    """Schultz Fasit as a workbook: a title row, 'Ydelse startdato', 'Visitation', dates as Excel
    serial numbers, CPR numbers as numbers (the leading zero lost)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Borgere"
    sheet.append(["Udtræk til borgerundersøgelsen, Schultz Fasit"])
    sheet.append(["CPR nr", "Ydelse", "Visitation", "Ydelse startdato", "Dato seneste samtale", "Forløb afsluttet",
                  "Mobil", "Passiv", "Navn"])
    for cpr, ydelse, kategori, start, samtale, navn in CITIZENS:
        sheet.append([int(cpr), ydelse, kategori or None, _excel_serial(start), _excel_serial(samtale), "nej", None, "nej", navn])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# A KL standard file with a title row and one bad row of every kind issue #21 names. Data rows
# are counted from 1 under the header, lines from 1 at the top of the file (title, header).
MIXED_ROWS = [
    # data row, CPR, benefit, category, transition, latest conversation
    (1, "0503701231", "Dagpenge", "", "03-01-2022", "15-06-2023"),  # good
    (2, "1204851232", "Kontanthjælp", "", "01-03-2023", "01-07-2023"),  # category missing
    (3, "2306901233", "Ressourceforløbsydelse", "Match 3", "02-05-2022", "20-05-2023"),  # category unknown
    (4, "0107751234", "Kontanthjælp - jobparat", "Aktivitetsparat", "01-06-2021", "11-04-2023"),  # contradiction
    (5, "1508991235", "Kontanthjælpsydelse", "Jobparat", "01-09-2022", "02-06-2023"),  # benefit unknown
    (6, "0909001236", "Sygedagpenge", "", "09-01-2023", "03-07-2031"),  # conversation in the future
    (7, "3011021237", "Dagpenge", "", "01-09-2023", "05-05-2023"),  # transition after the reference date
    (8, "0202661238", "Kontanthjælp", "Jobparat", "44562", "30-06-2023"),  # Excel serial date: good
    (9, "3202661238", "Dagpenge", "", "01-01-2022", "30-06-2023"),  # no such birth date
]
MIXED_EXPECTED_ERRORS = {  # data row -> column
    2: "visitationskategori",
    3: "visitationskategori",
    4: "visitationskategori",
    5: "ydelse",
    6: "seneste_samtale",
    9: "cpr",
}
MIXED_EXPECTED_WARNINGS = {7: "overgangsdato"}


def mixed_csv() -> bytes:
    lines = [
        "Udtræk pr. 1. august 2023",
        "CPR-nummer;Ydelse;Visitationskategori;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn",
    ]
    for _, cpr, ydelse, kategori, start, samtale in MIXED_ROWS:
        lines.append(f"{_cpr(cpr)};{ydelse};{kategori};{start};{samtale};nej;;nej;Test Testesen")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def new_vendor_csv() -> bytes:
    """A vendor release with headers no built-in profile knows ('Personident', 'Ydelsesskift
    dato', 'Borgerens målgruppekategori'): accepted after one profile registration."""
    lines = ["Personident;Ydelse;Borgerens målgruppekategori;Ydelsesskift dato;Seneste samtale;Forløb afsluttet;Telefon;Passiv"]
    for cpr, ydelse, kategori, start, samtale, _ in CITIZENS:
        lines.append(f"{_cpr(cpr)};{ydelse};{kategori};{_dmy(start)};{_dmy(samtale)};nej;;nej")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


FILES = {
    "real_momentum_cp1252_title.csv": momentum_csv,
    "real_fasit_utf8_bom_serial.csv": fasit_csv,
    "real_fasit_title_serial.xlsx": fasit_xlsx,
    "real_mixed_bad_rows.csv": mixed_csv,
    "real_new_vendor_headers.csv": new_vendor_csv,
}


def main() -> None:
    for name, make in FILES.items():
        (HERE / name).write_bytes(make())


if __name__ == "__main__":
    main()
