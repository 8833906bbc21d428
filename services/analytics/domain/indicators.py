"""The published indicators of one question in one cell (domain).

For a question answered on a Likert scale plus "Ved ikke" (don't know):

* answer distribution: the share of each answer category, "Ved ikke"
  included, among everyone who answered the question;
* mean score: the mean of the scores 1..5 among valid answers (score answers;
  "Ved ikke" and no answer are left out);
* top-box share ("andel enige"): the share of valid answers in the top two
  categories (score 4 or 5 on the agreement scale);
* "Ved ikke" share: among everyone who answered the question;
* number of answers (with and without "Ved ikke").

Each share and mean is an :class:`~.estimators.Estimate` from the design
(weighted, with domain estimation when the cell cuts across strata) and, beside
it, from the unweighted design. The agreement scale follows the questionnaire
(seed 004): "Meget enig" is the most positive answer and scores 5, "Meget
uenig" scores 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .estimators import Estimate, StratifiedDesign

__all__ = [
    "AGREEMENT_SCALE",
    "CODES",
    "DONT_KNOW",
    "INDICATORS",
    "PUBLISHED_INDICATORS",
    "SCORES",
    "CellIndicators",
    "CountedIndicator",
    "IndicatorSet",
    "LikertScale",
    "cell_indicators",
]


@dataclass(frozen=True, slots=True)
class LikertScale:
    """An ordered answer scale: ``labels[0]`` scores 1, the last scores len(labels)."""

    labels: tuple[str, ...]
    dont_know: str | None = "Ved ikke"
    top_box: int = 2  # how many of the highest categories count as positive

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels) or self.dont_know in self.labels:
            raise ValueError("scale labels must be distinct")
        if not 1 <= self.top_box < len(self.labels):
            raise ValueError("top_box must leave at least one category outside")

    @classmethod
    def from_scores(cls, options: Mapping[str, int | None], *, top_box: int = 2) -> LikertScale:
        """Build a scale from answer values and their scores (None = "don't know").

        Fits how the questionnaire stores a scale, e.g. ``{"meget_enig": 5,
        ..., "meget_uenig": 1, "ved_ikke": None}``. Scores must be 1..k.
        """
        scored = {v: s for v, s in options.items() if s is not None}
        unscored = [v for v, s in options.items() if s is None]
        if sorted(scored.values()) != list(range(1, len(scored) + 1)) or len(unscored) > 1:
            raise ValueError("scores must be 1..k with at most one unscored answer")
        labels = tuple(sorted(scored, key=scored.__getitem__))
        return cls(labels, unscored[0] if unscored else None, top_box)

    @property
    def categories(self) -> tuple[str, ...]:
        """Every answer category, "Ved ikke" last."""
        return self.labels + ((self.dont_know,) if self.dont_know is not None else ())

    def score(self, label: str) -> int | None:
        """1..k for a scale answer, None for "Ved ikke"; ValueError otherwise."""
        if label == self.dont_know:
            return None
        try:
            return self.labels.index(label) + 1
        except ValueError:
            raise ValueError(f"{label!r} is not an answer on this scale") from None

    def is_top_box(self, score: int) -> bool:
        return score > len(self.labels) - self.top_box


AGREEMENT_SCALE = LikertScale(
    ("Meget uenig", "Uenig", "Hverken enig eller uenig", "Enig", "Meget enig"),
    dont_know="Ved ikke",
)


@dataclass(frozen=True, slots=True)
class IndicatorSet:
    """Indicators from one design (weighted or unweighted); None when undefined."""

    distribution: dict[str, Estimate]
    mean_score: Estimate | None
    top_box_share: Estimate | None
    dont_know_share: Estimate | None


@dataclass(frozen=True, slots=True)
class CellIndicators:
    n_answers: int  # answered the question, "Ved ikke" included
    n_valid: int  # answered on the scale
    n_dont_know: int
    weighted: IndicatorSet
    unweighted: IndicatorSet


def cell_indicators(
    design: StratifiedDesign,
    answers: Sequence[str | None],
    domain: Sequence[bool] | None = None,
    *,
    scale: LikertScale = AGREEMENT_SCALE,
    level: float = 0.95,
) -> CellIndicators:
    """Indicators of one question over ``domain`` (None: everybody).

    ``answers[i]`` is unit i's answer label, or None if it did not answer the
    question. Disclosure control is not applied here: see ``suppression``.
    """
    if len(answers) != design.n:
        raise ValueError(f"expected {design.n} answers, got {len(answers)}")
    in_domain = [True] * design.n if domain is None else [bool(d) for d in domain]
    scores = [None if a is None else scale.score(a) for a in answers]
    answered = [a is not None and d for a, d in zip(answers, in_domain)]
    valid = [s is not None and d for s, d in zip(scores, in_domain)]
    n_answers = sum(answered)
    n_valid = sum(valid)

    def indicators(d: StratifiedDesign) -> IndicatorSet:
        distribution: dict[str, Estimate] = {}
        if n_answers:
            for cat in scale.categories:
                distribution[cat] = d.proportion(
                    [None if a is None else a == cat for a in answers], in_domain, level=level
                )
        mean = top = None
        if n_valid:
            mean = d.mean([None if s is None else float(s) for s in scores], in_domain, level=level)
            top = d.proportion(
                [None if s is None else scale.is_top_box(s) for s in scores], in_domain, level=level
            )
        dont_know = distribution.get(scale.dont_know) if scale.dont_know is not None else None
        return IndicatorSet(distribution, mean, top, dont_know)

    # The counts above guard every estimate, so no EmptyDomainError escapes.
    weighted = indicators(design)
    unweighted = indicators(design.unweighted())
    return CellIndicators(
        n_answers=n_answers,
        n_valid=n_valid,
        n_dont_know=n_answers - n_valid,
        weighted=weighted,
        unweighted=unweighted,
    )


# -- the published indicators, from answer-code counts ---------------------------------------------
#
# Analytics publishes from counts of answer codes (domain/answers.py maps the answers to them):
# the scores "1".."5" of the agreement scale and "dk" for "Ved ikke". Each published indicator is
# a ratio estimator over the units whose code is in its base, of the value its code takes. Every
# path that estimates an indicator (one cell: publication.cell_estimates; many cells at once:
# publication.estimate_cells; calibrated: calibration.calibrated_estimates) reads it from here.

SCORES: tuple[str, ...] = tuple(str(score) for score in range(1, len(AGREEMENT_SCALE.labels) + 1))
DONT_KNOW = "dk"
CODES: tuple[str, ...] = SCORES + (DONT_KNOW,)


@dataclass(frozen=True, slots=True)
class CountedIndicator:
    """An indicator over answer codes: per code (CODES order) the value it takes and whether it
    is in the indicator's base; ``proportion``: the values are 0/1 (the logit interval)."""

    values: tuple[float, ...]
    in_base: tuple[bool, ...]
    proportion: bool

    def value_counts(self, codes: Mapping[str, int]) -> dict[float, int]:
        """value -> how many of ``codes``' units (code -> count) in the base take it."""
        out: dict[float, int] = {}
        for code, value, inside in zip(CODES, self.values, self.in_base):
            if inside:
                out[value] = out.get(value, 0) + codes.get(code, 0)
        return out


def _share_of(wanted: str) -> CountedIndicator:
    """The share of the answers (every code, "Ved ikke" included) that are ``wanted``."""
    return CountedIndicator(tuple(float(code == wanted) for code in CODES), (True,) * len(CODES), proportion=True)


_ON_SCALE = tuple(code != DONT_KNOW for code in CODES)  # mean and top-box: valid (scale) answers only
# In column order; the distribution is one share per score plus "Ved ikke".
PUBLISHED_INDICATORS: dict[str, CountedIndicator] = {
    "mean": CountedIndicator(tuple(float(code) if code != DONT_KNOW else 0.0 for code in CODES), _ON_SCALE, proportion=False),
    "top2_share": CountedIndicator(
        tuple(float(code != DONT_KNOW and AGREEMENT_SCALE.is_top_box(int(code))) for code in CODES), _ON_SCALE, proportion=True
    ),
    "dont_know_share": _share_of(DONT_KNOW),
    **{f"share_{score}": _share_of(score) for score in SCORES},
}
INDICATORS: tuple[str, ...] = tuple(PUBLISHED_INDICATORS)
