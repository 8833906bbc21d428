"""How representative the answers are, as the dashboard shows it to a reader: per municipality
and for the country, response rates by target group, gender, age band and duration band, the
R-indicator, the coefficient of variation of the response propensities and the partial
R-indicators (domain/representativeness.py), with a plain-language reading.

Everything is counted as of the release the page shows (the answers counted up to its round
version, against the sample from sample.drawn), so the figures move with the releases, which
follow the answers during fieldwork, and agree with the release's response rates.

What a reader is shown, and why:

* a rate (answered / sampled) only where the release shown published that cell's respondents
  (the response-rate table for the target group, the respondent tables for gender, age band and
  duration band) at the count the rate is of: the dashboard adds no respondent count the
  release's audited suppression hid, so a reader of both learns nothing the release did not
  say. A release that publishes rates only has no gender, age or duration tables, so those
  lines are hidden until the first release with answers;
* and only where at least ``min_count`` answered and at least ``min_count`` did not (either
  count would show through the rate, as on the round overview); the page shows each line's
  total, so a line with a single hidden level hides its smallest shown level too (the hidden
  one would be the total less the others);
* the R-indicator and the CV only where the whole municipality (or the country) has
  ``min_count`` answers and ``min_count`` non-answers, from a propensity model of the variables
  whose every level shows its rate: a main-effects logistic fit reproduces each level's weighted
  response rate, so a variable with a hidden level in the model could give that rate back;
  such a variable is left out of the model, and has no partial R-indicator;
* the municipality as a variable (the country's model) only to a reader who may see every
  municipality (``kommuner:all``); the reading then names the least- and most-answering
  municipality, and for any other reader says only that the municipalities differ most.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.analytics.domain.publication import NATIONAL, natural_key
from services.analytics.domain.representativeness import SampleCell, quality
from services.analytics.domain.representativeness import representativeness as measure

VARIABLES = ("maalgruppe", "gender", "age_band", "duration_band")
KOMMUNE = "kommunekode"


@dataclass(frozen=True)
class Gap:
    """The variable that makes response most uneven; its least- and most-answering levels where
    the reader may see that variable's rates (else None)."""

    variable: str
    low: str | None = None
    high: str | None = None


@dataclass(frozen=True)
class Figures:
    kommune: str  # a municipality's code, or "national"
    rate: float | None  # answered / sampled over all; None where hidden
    rates: dict[str, list[tuple[str, float | None]]]  # variable -> (level, rate; None hidden), levels in order
    r_indicator: float | None  # None: too few answers or non-answers to show it
    cv: float | None
    partial: dict[str, float | None]  # variable -> unconditional partial R-indicator; None hidden
    quality: str | None  # "good", "fair", "skewed" (domain.representativeness.quality); None with r_indicator
    gap: Gap | None


def line_rates(counts: dict[str, tuple[int, int]], min_count: int,
               published: Mapping[str, int | None]) -> list[tuple[str, float | None]]:
    """One variable's levels -> (level, answered / sampled or None), by the rules above: hidden
    where the release did not publish the level's respondents at its answered count
    (``published``: level -> the release's count, None where it hid the cell), or below
    ``min_count`` answers or non-answers; a single hidden level takes its smallest shown level
    with it (smallest: fewest answers or non-answers)."""
    def small(sampled: int, answered: int) -> int:
        return min(answered, sampled - answered)

    hidden = {lvl for lvl, (s, a) in counts.items() if small(s, a) < min_count or published.get(lvl) != a}
    shown = [lvl for lvl in counts if lvl not in hidden]
    if len(hidden) == 1 and shown:
        hidden.add(min(shown, key=lambda lvl: (small(*counts[lvl]), natural_key(lvl))))
    return [(lvl, None if lvl in hidden or not counts[lvl][0] else counts[lvl][1] / counts[lvl][0])
            for lvl in sorted(counts, key=natural_key)]


def figures(sampled: Sequence[tuple], answered: Sequence[tuple], kommune: str, min_count: int, *,
            names_municipalities: bool, published: Mapping[tuple[str, str], int | None]) -> Figures | None:
    """The figures of ``kommune`` (or the country) from the round's sampled and answered counts
    (overview.service.sampled_and_answered); None where nobody of it was sampled.

    ``published``: (variable, level) -> the respondents the release shown published for
    ``kommune``'s cell of that level (None: hidden; absent: not in the release).

    ``names_municipalities``: the reader may see every municipality (the country's model then
    shows the municipality's partial R-indicator and names municipalities in the reading)."""
    national = kommune == NATIONAL
    weight: dict[tuple, float] = {}
    count: dict[tuple, int] = defaultdict(int)
    for k, *bands, w, n in sampled:
        if national or k == kommune:
            key = (k, *bands)
            weight[key] = float(w)
            count[key] += int(n)
    if not count:
        return None
    got: dict[tuple, int] = defaultdict(int)
    for k, *bands, n in answered:
        if (k, *bands) in count:
            got[(k, *bands)] += int(n)
    variables = (KOMMUNE, *VARIABLES) if national else VARIABLES
    cells = [SampleCell(key if national else key[1:], weight[key], count[key], min(got[key], count[key])) for key in sorted(count)]
    total, answers = sum(c.sampled for c in cells), sum(c.answered for c in cells)
    enough = min(answers, total - answers) >= min_count

    rates: dict[str, list[tuple[str, float | None]]] = {}
    for j, variable in enumerate(variables):
        if variable == KOMMUNE:
            continue  # another municipality's rate is not the reader's to see (the country's line is its total)
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for c in cells:
            per[c.values[j]][0] += c.sampled
            per[c.values[j]][1] += c.answered
        rates[variable] = line_rates({lvl: (s, a) for lvl, (s, a) in per.items()}, min_count,
                                     {lvl: published.get((variable, lvl)) for lvl in per})
    rate = answers / total if enough else None
    visible = {v: all(value is not None for _, value in rates[v]) for v in VARIABLES}
    if not enough or not any(visible.values()):
        return Figures(kommune, rate, rates, None, None, {}, None, None)

    # The propensity model takes the variables whose every level the reader sees (and, for the
    # country, the municipality): a variable with a hidden level stays out of it, so the fit's
    # margins are published figures.
    model = tuple(v for v in variables if v == KOMMUNE or visible[v])
    at = [variables.index(v) for v in model]
    r = measure([SampleCell(tuple(c.values[j] for j in at), c.weight, c.sampled, c.answered) for c in cells], model)
    visible[KOMMUNE] = names_municipalities
    partial = {v: r.partial_unconditional[v] if v in model and visible[v] else None for v in variables}
    worst = max(r.partial_unconditional, key=r.partial_unconditional.get)
    gap = Gap(worst)
    means = r.category_mean[worst]
    if visible[worst] and len(means) > 1:
        gap = Gap(worst, min(means, key=means.get), max(means, key=means.get))
    return Figures(kommune, rate, rates, r.r_indicator, r.cv, partial, quality(r.r_indicator), gap)
