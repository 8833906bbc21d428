"""Generated rounds built for small cells, sent as real events; the truth is kept to score the attack.

Nothing here reads analytics' code: a round is the events another service would publish
(``sample.drawn``, ``invitation.sent``, ``response.submitted``) and the list of every answer sent.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.events import Bands, InvitationSent, ResponseSubmitted, SampleDrawn, StratumSummary

GROUPS = ("dagpenge", "sygedagpenge", "jobparate", "aktivitetsparate")
GENDERS = ("K", "M")
AGE_BANDS = ("18-29", "30-39", "40-49", "50+")
DURATION_BANDS = ("<6 mdr", "6-12 mdr", "12+ mdr")
ARMS = ("A", "B")
# What the web form sends: a score 1..5 (as int or value code) or "ved ikke"; None (skipped) only
# where a round allows it.
CODE_VALUES = {1: (1, "meget_uenig"), 2: (2, "uenig"), 3: (3, "hverken_enig_eller_uenig"), 4: (4, "enig"), 5: (5, "meget_enig")}
DK = "dk"
NONE = "none"
CODES = (1, 2, 3, 4, 5, DK, NONE)


@dataclass(frozen=True)
class Respondent:
    pseudonym: str
    kommunekode: str
    maalgruppe: str
    gender: str
    age_band: str
    duration_band: str
    arm: str
    answers: dict  # question -> code in CODES

    def level(self, dimension: str) -> str:
        return getattr(self, dimension)


@dataclass
class Round:
    round_id: str
    kommuner: list[str]
    questions: tuple[str, ...]
    population: dict[tuple[str, str], int] = field(default_factory=dict)  # (k, g) -> N_h
    invited: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (k, g, arm) -> invited
    respondents: list[Respondent] = field(default_factory=list)
    samples: list = field(default_factory=list)
    invitations: list = field(default_factory=list)
    responses: list = field(default_factory=list)
    pending: list[tuple[Respondent, ResponseSubmitted]] = field(default_factory=list)  # invited, not yet answered
    seed: int = 0

    def answer(self, respondent: Respondent, event: ResponseSubmitted) -> None:
        self.respondents.append(respondent)
        self.responses.append(event)


def _skewed(rng: random.Random, levels: tuple[str, ...]) -> str:
    # Skewed bands: the first level takes most, the rest are thin (cells of 1..9).
    weights = [6.0] + [rng.choice((0.4, 1.0, 2.0)) for _ in levels[1:]]
    return rng.choices(levels, weights)[0]


def generate_round(
    round_id: str,
    seed: int,
    *,
    kommuner: tuple[str, ...] = ("101", "147", "751"),
    questions: tuple[str, ...] = ("q1", "q2", "q3"),
    stratum_sizes: tuple[int, int] = (0, 9),
    skip_rate: float = 0.0,
    spare: int = 6,
) -> Round:
    """Strata of 0..9 respondents (so most cells have 1..9), skewed bands, every answer kept.
    ``spare`` invited citizens per stratum stay unanswered, for the time attack to answer later."""
    rng = random.Random(seed)
    rnd = Round(round_id, list(kommuner), questions, seed=seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for k in kommuner:
        for g in GROUPS:
            answered = rng.randint(*stratum_sizes)
            sample = answered + spare + rng.randint(0, 4)
            population = sample * rng.randint(2, 9)
            rnd.population[(k, g)] = population
            stratum = f"{k}:{g}"
            rnd.samples.append(
                SampleDrawn(
                    round_id=round_id, kommunekode=k, draw_id=uuid.UUID(int=rng.getrandbits(128)), seed=seed, chunk_no=0,
                    final=True, chunk_count=1, persons=[],
                    strata=[StratumSummary(stratum=stratum, maalgruppe=g, population=population, sample=sample)],
                )
            )
            for i in range(sample):
                pseudonym = f"p-{round_id}-{stratum}-{i}"
                arm = ARMS[i % 2]
                rnd.invited[(k, g, arm)] = rnd.invited.get((k, g, arm), 0) + 1
                rnd.invitations.append(
                    InvitationSent(
                        round_id=round_id, kommunekode=k, pseudonym=pseudonym, step="invitation", channel="digital_post",
                        maalgruppe=g, stratum=stratum, arm=arm, sent_at=start,
                    )
                )
                codes = {}
                for q in questions:
                    if skip_rate and rng.random() < skip_rate:
                        codes[q] = NONE
                    else:
                        codes[q] = rng.choices((1, 2, 3, 4, 5, DK), (1, 1.5, 2, 4, 3, 1))[0]
                person = Respondent(pseudonym, k, g, rng.choice(GENDERS), _skewed(rng, AGE_BANDS), _skewed(rng, DURATION_BANDS), arm, codes)
                event = ResponseSubmitted(
                    round_id=round_id, kommunekode=k, pseudonym=pseudonym, questionnaire_id="kl_core", questionnaire_version=1,
                    mode="web", maalgruppe=g, stratum=stratum,
                    bands=Bands(gender=person.gender, age_band=person.age_band, duration_band=person.duration_band),
                    design_weight=population / sample, arm=arm,
                    answers={q: _wire(rng, c) for q, c in codes.items()},
                    submitted_at=start + timedelta(days=1, seconds=rng.randrange(86400)),
                )
                if i < answered:
                    rnd.answer(person, event)
                else:
                    rnd.pending.append((person, event))
    rng.shuffle(rnd.pending)
    return rnd


def _wire(rng: random.Random, code) -> object:
    if code == NONE:
        return None
    if code == DK:
        return "ved_ikke"
    return rng.choice(CODE_VALUES[code])
