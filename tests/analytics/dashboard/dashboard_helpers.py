"""The demo rounds, and reading the dashboard's HTML tables back into numbers."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from html.parser import HTMLParser

from services.analytics.synthetic import AGE_BANDS, DURATION_BANDS, synthetic_round
from shared.events import Bands, SampledPerson

KOMMUNER = ["101", "147", "751"]
CSRF_FIELD = re.compile(r'name="csrftoken" value="([^"]+)"')
QUESTIONS = ("q1", "q4", "q7", "q11", "q13")  # one per theme
ROUNDS = ("2025-1", "2026-1")


def demo_round(round_id: str):
    """The demo round (deterministic: tests recompute it for independent checks). Free texts:
    q15 from everybody (distinct), q14 from 8 citizens in 751 and 3 in 147 (fewer than 5:
    never shown), none in 101. The samples carry their persons (:func:`sampled_persons`)."""
    i = ROUNDS.index(round_id)
    rnd = synthetic_round(round_id, KOMMUNER, respondents=240, seed=21 + i, questions=QUESTIONS, shift=0.4 * i)
    rnd.samples = sampled_persons(rnd, seed=i)
    seen: dict[str, int] = {}
    responses = []
    for r in rnd.responses:
        n = seen[r.kommunekode] = seen.get(r.kommunekode, 0) + 1
        answers = dict(r.answers) | {"q15": f"Svar {r.kommunekode}-{n:03d}: mere tid til samtalen"}
        if (r.kommunekode, n <= 8) == ("751", True) or (r.kommunekode, n <= 3) == ("147", True):
            answers["q14"] = f"Uddybning {r.kommunekode}-{n}"
        responses.append(r.model_copy(update={"submitted_at": r.submitted_at + timedelta(days=365 * i), "answers": answers}))
    return rnd, responses


def sampled_persons(rnd, seed: int) -> list:
    """The synthetic round's sample.drawn chunks with their persons: the respondents with their
    bands, the others with bands of their own, the youngest band twice as likely among them (so
    the young answer less, and the representativeness figures have something to say)."""
    bands = {r.pseudonym: r.bands for r in rnd.responses}
    rng = random.Random(f"persons-{seed}")
    young = (AGE_BANDS[0], *AGE_BANDS)
    chunks = []
    for chunk in rnd.samples:
        persons = []
        for summary in chunk.strata:
            for i in range(summary.sample):
                pseudonym = f"p-{rnd.round_id}-{summary.stratum}-{i}"
                found = bands.get(pseudonym) or Bands(gender=rng.choice("MK"), age_band=rng.choice(young),
                                                      duration_band=rng.choice(DURATION_BANDS))
                persons.append(SampledPerson(pseudonym=pseudonym, maalgruppe=summary.maalgruppe, stratum=summary.stratum, bands=found,
                                             inclusion_probability=summary.sample / summary.population,
                                             design_weight=summary.population / summary.sample))
        chunks.append(chunk.model_copy(update={"persons": persons}))
    return chunks


async def form_token(client, path: str = "/dashboard/login") -> str:
    """The CSRF token a page puts in its forms (its cookie lands in the client's jar)."""
    return CSRF_FIELD.search((await client.get(path)).text).group(1)


class Tables(HTMLParser):
    """Every <table> with its id or data-chart-table, as rows of cell texts (th and td)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.values: dict[str, list[str]] = {}  # table -> data-value attributes in order
        self._table = self._row = self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or a.get("data-chart-table") or f"table{len(self.tables)}"
            self.tables[self._table] = []
            self.values[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            if "data-value" in a:
                self.values[self._table].append(a["data-value"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def da_number(text: str) -> float:
    return float(text.split()[0].replace(",", "."))


REP_LABELS = {"maalgruppe": "Målgruppe", "gender": "Køn", "age_band": "Alder", "duration_band": "Forløbets varighed"}


def model_variables(page_text: str) -> tuple[tuple[str, ...], ...]:
    """Per column of the overview's representativeness (the municipality, the country): the
    variables whose every level's rate the page shows, which the propensity model then takes."""
    rates = {row[0]: row[1:] for row in Tables(page_text).tables["rep-rates"][1:]}
    columns = len(next(iter(rates.values())))
    return tuple(
        tuple(v for v, label in REP_LABELS.items()
              if all(values[col] != "— (undertrykt)" for name, values in rates.items() if name.startswith(f"{label}: ")))
        for col in range(columns)
    )
