"""Synthetic events of a round (sample.drawn strata, frame.margins, invitation.sent, response.submitted), for
tests and bench/analytics_*.py. Answers mix integer scores and value codes, as the responses
service may send either."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.events import Bands, FrameMargins, InvitationSent, PopulationCell, ResponseSubmitted, SampleDrawn, StratumSummary

GROUPS = ("dagpenge", "sygedagpenge", "jobparate", "aktivitetsparate")
AGE_BANDS = ("18-29", "30-39", "40-49", "50+")
DURATION_BANDS = ("<6 mdr", "6-12 mdr", "12+ mdr")
QUESTIONS = tuple(f"q{i}" for i in range(1, 14))
VALUES = (1, 2, 3, 4, 5, "meget_uenig", "uenig", "hverken_enig_eller_uenig", "enig", "meget_enig", "ved_ikke", None)
VALUE_WEIGHTS = (1, 2, 3, 6, 5, 1, 1, 2, 4, 4, 1.5, 1)


@dataclass
class SyntheticRound:
    round_id: str
    samples: list[SampleDrawn] = field(default_factory=list)
    invitations: list[InvitationSent] = field(default_factory=list)
    responses: list[ResponseSubmitted] = field(default_factory=list)
    population: dict[str, int] = field(default_factory=dict)  # stratum -> N_h
    margins: list[FrameMargins] = field(default_factory=list)  # the population per cell, one event per municipality


def synthetic_round(
    round_id: str,
    kommuner: list[str],
    *,
    respondents: int,
    seed: int = 1,
    arms: tuple[str | None, ...] = ("A", "B"),
    questions: tuple[str, ...] = QUESTIONS,
    shift: float = 0.0,
    invite_factor: tuple[int, int] = (3, 5),
    modes: tuple[str, ...] = ("web",),
    languages: tuple[str, ...] = ("da",),
) -> SyntheticRound:
    """About ``respondents`` answers spread unevenly over municipalities x target groups (some
    strata get only a handful, so suppression has work to do). ``shift`` tilts answers upward."""
    rng = random.Random(seed)
    how = random.Random(f"{seed}-how")  # modes and languages from their own stream: the rest stays as without them
    out = SyntheticRound(round_id)
    strata = [(k, g) for k in kommuner for g in GROUPS]
    shares = [rng.uniform(0.05, 1.0) * (0.05 if i % 7 == 3 else 1.0) for i in range(len(strata))]
    total_share = sum(shares)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    weights = [w * (1 + shift * (v in (4, 5, "enig", "meget_enig"))) for v, w in zip(VALUES, VALUE_WEIGHTS)]
    for (k, g), share in zip(strata, shares):
        stratum = f"{k}:{g}"
        answered = max(1, round(respondents * share / total_share))
        sample = answered * rng.randint(*invite_factor)
        population = sample * rng.randint(1, 8)
        out.population[stratum] = population
        out.samples.append(
            SampleDrawn(
                round_id=round_id, kommunekode=k, draw_id=uuid.UUID(int=rng.getrandbits(128)), seed=seed, chunk_no=0,
                final=True, chunk_count=1, persons=[],
                strata=[StratumSummary(stratum=stratum, maalgruppe=g, population=population, sample=sample)],
            )
        )
        for i in range(sample):
            pseudonym = f"p-{round_id}-{stratum}-{i}"
            arm = arms[i % len(arms)] if arms else None
            out.invitations.append(
                InvitationSent(
                    round_id=round_id, kommunekode=k, pseudonym=pseudonym, step="invitation", channel="digital_post",
                    maalgruppe=g, stratum=stratum, arm=arm, sent_at=start,
                )
            )
            if i < answered:
                out.responses.append(
                    ResponseSubmitted(
                        round_id=round_id, kommunekode=k, pseudonym=pseudonym, questionnaire_id="kl_core",
                        questionnaire_version=1, mode=how.choice(modes), language=how.choice(languages),
                        maalgruppe=g, stratum=stratum,
                        bands=Bands(gender=rng.choice("MK"), age_band=rng.choice(AGE_BANDS), duration_band=rng.choice(DURATION_BANDS)),
                        design_weight=population / sample, arm=arm,
                        answers={q: rng.choices(VALUES, weights)[0] for q in questions} | {"q15": "fri tekst"},
                        submitted_at=start + timedelta(days=1, seconds=rng.randrange(86400)),
                    )
                )
    out.margins = population_margins(out, seed)
    return out


def population_margins(rnd: SyntheticRound, seed: int) -> list[FrameMargins]:
    """frame.margins for the round: each stratum's N_h split over gender x age band x duration
    band. Every respondent's cell holds at least its respondents; the rest of the population
    leans to older citizens and women (from its own random stream, so the answers above do not
    change), so the population's mix differs from the respondents'."""
    rng = random.Random(seed * 7919 + 17)
    cells = [(g, a, d) for g in "KM" for a in AGE_BANDS for d in DURATION_BANDS]
    lean = [(1.4 if g == "K" else 1.0) * (1 + AGE_BANDS.index(a)) for g, a, _ in cells]
    answered = Counter((r.stratum, r.bands.gender, r.bands.age_band, r.bands.duration_band) for r in rnd.responses)
    by_kommune: dict[str, list[PopulationCell]] = {}
    for stratum, population in rnd.population.items():
        k, g = stratum.split(":")
        counts = Counter({c: answered[(stratum, *c)] for c in cells})
        for c in rng.choices(cells, lean, k=population - sum(counts.values())):
            counts[c] += 1
        by_kommune.setdefault(k, []).extend(
            PopulationCell(maalgruppe=g, bands=Bands(gender=c[0], age_band=c[1], duration_band=c[2]), population=n)
            for c, n in sorted(counts.items()) if n
        )
    draw_id = uuid.UUID(int=rng.getrandbits(128))
    return [
        FrameMargins(round_id=rnd.round_id, kommunekode=k, draw_id=draw_id, chunk_no=0, final=True, chunk_count=1,
                     population=sum(c.population for c in of_k), cells=of_k)
        for k, of_k in sorted(by_kommune.items())
    ]
