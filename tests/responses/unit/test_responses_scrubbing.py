"""The free-text scrubber on a corpus of realistic answers, plus targeted edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.responses.domain.scrubbing import scrub, scrub_with_report

CORPUS = json.loads((Path(__file__).parent / "scrubbing_corpus.json").read_text(encoding="utf-8"))["cases"]


def test_corpus_is_big_and_balanced() -> None:
    removing = [c for c in CORPUS if "expected" in c]
    keeping = [c for c in CORPUS if "expected" not in c]
    assert len(CORPUS) >= 40
    assert len(removing) >= 20 and len(keeping) >= 20
    assert len({c["id"] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_corpus(case: dict) -> None:
    expected = case.get("expected", case["text"])
    assert scrub(case["text"]) == expected
    assert scrub(expected) == expected  # the expected output is itself clean


@pytest.mark.parametrize(
    "cpr",
    [
        "0101901234",
        "010190-1234",
        "010190 - 1234",
        "010190–1234",
        "010190 1234",
        "010190.1234",
        "01.01.90-1234",
        "01.01.90 1234",
        "01-01-90-1234",
        "01 01 90 1234",
        "01.01.1990-1234",
        "010190\u00a01234",
    ],
)
def test_cpr_formats(cpr: str) -> None:
    assert scrub(f"Mit CPR er {cpr}.") == "Mit CPR er [CPR]."


@pytest.mark.parametrize(
    "phone",
    [
        "20304050",
        "20 30 40 50",
        "20-30-40-50",
        "20.30.40.50",
        "2030 4050",
        "2030-4050",
        "2030 40 50",
        "+4520304050",
        "+45 20304050",
        "+45 20 30 40 50",
        "+45-2030-4050",
        "0045 20 30 40 50",
        "004520304050",
        "(+45) 2030 4050",
        "45 20 30 40 50",
        "+45 12 34 56 78",
    ],
)
def test_phone_formats(phone: str) -> None:
    assert scrub(f"Ring på {phone} i morgen") == "Ring på [TELEFON] i morgen"


@pytest.mark.parametrize(
    "text",
    [
        "Jeg fik 12.000 kr. om måneden",
        "Beløbet var 24500000 kr",
        "Beløbet var DKK 24500000",
        "Det kostede kr. 25000000",
        "Mødet var 12-05-2023",
        "Mødet var 12.05.2023 kl. 10.15",
        "Fra 2019-2020 var jeg syg",
        "Fra 2019 – 2020 var jeg syg",
        "Jeg har søgt 3000-4000 job",
        "12345678",  # Danish subscriber numbers do not start with 1
        "Sagsnummer 2023-0012345",
        "Kontonummer 1234 5678901234",
        "Tabel: 2022 2023 2024 2025",
        "Der var 0,25304050 i forskel",
        "Version 1.20304050",
        "320304050 er for langt",
    ],
)
def test_numbers_that_are_not_personal_data_are_kept(text: str) -> None:
    assert scrub(text) == text


@pytest.mark.parametrize(
    "email",
    [
        "mette@example.dk",
        "Mette.Hansen@aarhus.dk",
        "jens+jobcenter@mail.co.uk",
        "søren_ø@hotmail.com",
        "k.holm-98@live.dk",
        "mette(at)aarhus.dk",
        "mette [at] aarhus.dk",
    ],
)
def test_email_formats(email: str) -> None:
    assert scrub(f"Skriv til {email}, tak.") == "Skriv til [EMAIL], tak."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mit navn er Zofia", "Mit navn er [NAVN]"),
        ("min kontaktperson: Ibrahim", "min kontaktperson: [NAVN]"),
        ("Tak, Lise!", "Tak, [NAVN]!"),
        ("«Mette» sagde nej", "«[NAVN]» sagde nej"),
        ("Jeg talte med Hans Jensen", "Jeg talte med [NAVN]"),
        ("Hans Jensen ringede", "[NAVN] ringede"),
        ("Vi aftalte med Per", "Vi aftalte med [NAVN]"),
        ("Per Holm var fin", "[NAVN] var fin"),
        ("Jensens kontor", "[NAVN] kontor"),
        ("mødet med jens nielsen", "mødet med [NAVN]"),
        ("mødet med per nielsen", "mødet med [NAVN]"),
        ("skriv til hansen", "skriv til [NAVN]"),
        ("sagsbehandler lars", "sagsbehandler [NAVN]"),
        ("A.P. Møller er et firma", "[NAVN] er et firma"),
    ],
)
def test_names(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hans bil var i stykker.",
        "Per uge skal jeg søge 10 job.",
        "Liv og glade dage i jobcentret.",
        "Mark og skov.",
        "Bo ikke langt fra jobcentret, hvis du kan.",
        "Jeg har været på Bornholm og i Lund.",
        "Sagsbehandleren var sød.",
        "Jobcenter Aarhus, Jobcenter København og Aalborg Kommune.",
        "Kurset hed Fremtidens Job.",
        "Min sagsbehandler, Jobcentret og A-kassen talte ikke sammen.",
        "Ifølge Jobnet skulle jeg søge 2 job om ugen.",
        "Systemet hedder Momentum, og det er fra KMD.",
        "Jeg har brugt MitID, Digital Post og e-Boks.",
        "Jeg bor på Jens Baggesens Vej.",
        "Vi mødtes på Niels Bohrs Allé.",
        "Skolen ligger på Baggesensvej.",
        "CV, KL, STAR og HK er forkortelser.",
        "I skal lytte. I har ikke tid.",
        "Dagpenge, Sygedagpenge og Jobafklaring er ydelser.",
    ],
)
def test_capitalised_words_that_are_not_names_are_kept(text: str) -> None:
    assert scrub(text) == text


def test_report_counts_kinds_without_recording_values() -> None:
    result = scrub_with_report("Mette Hansen, 010190-1234, 20 30 40 50, mette@example.dk og Lars")
    assert result.text == "[NAVN], [CPR], [TELEFON], [EMAIL] og [NAVN]"
    assert result.counts == {"navn": 2, "cpr": 1, "telefon": 1, "email": 1}
    assert result.changed
    assert "Mette" not in repr(result)


def test_clean_text_is_untouched() -> None:
    result = scrub_with_report("Det var en god oplevelse.")
    assert result.text == "Det var en god oplevelse."
    assert result.counts == {} and not result.changed


def test_empty_and_whitespace() -> None:
    assert scrub("") == ""
    assert scrub("  \n ") == "  \n "


def test_decomposed_letters_are_normalised_or_kept_in_one_word() -> None:
    assert scrub("Jeg talte med Rene\u0301 i går") == "Jeg talte med [NAVN] i går"  # NFC: René
    # "ø" has no decomposition, so o + combining stroke stays two code points: still one word.
    assert scrub("Sagsbehandler So\u0338ren hjalp") == "Sagsbehandler [NAVN] hjalp"
