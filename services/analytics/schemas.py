"""The analytics API's response models. Every published table's columns are described once, in
``COLUMNS``: the JSON rows' models, the CSV and the OData ``$metadata`` (types and Core.Description
annotations) are all made from it, so a BI tool shows the same words as the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from services.analytics.domain.calibration import (
    CALIBRATED_INDICATORS,
    CALIBRATED_SUFFIXES,
    CalibrationSpec,
    CalibrationSpecError,
)
from services.analytics.domain.count_estimates import ESTIMATE_SUFFIXES, PROPORTIONS
from services.analytics.domain.indicators import INDICATORS
from services.analytics.domain.publication import INDICATOR_COLUMNS, RATE_COLUMNS


# The method document (docs/analytics-method.md), served by analytics at this path.
METHOD_PATH = "/method"


@dataclass(frozen=True)
class Column:
    """One published column: its type in JSON (and OData) and what it means."""

    type: type
    description: str
    nullable: bool = True


_SUPPRESSED = (
    "true: the cell is hidden to protect its respondents (fewer than the suppression threshold, suppression_threshold on the page, or hidden so that "
    "another small cell cannot be worked out); every count and figure of the row is then null. No reason is given: "
    "a reason would narrow the hidden number"
)
_CAUTION = "true: published, but on fewer respondents than caution_below (the page says how many): read with caution"
_INDICATOR_TEXT = {
    "mean": "mean score over the scale answers (1 = most negative .. 5 = most positive; \"ved ikke\" left out), points 1-5",
    "top2_share": "share of the scale answers that are 4 or 5 (\"ved ikke\" left out), a proportion 0-1",
    "dont_know_share": "share of all answers that are \"ved ikke\" (base: n_answers), a proportion 0-1",
    **{f"share_{s}": f"share of all answers (\"ved ikke\" included; base: n_answers) that are {s}, a proportion 0-1" for s in "12345"},
}
_SUFFIX_TEXT = {
    "": "Weighted estimate (stratum weights N_h / n_h, see weighting): the {ind}. Null when suppressed, "
        "when few_answers, or when weighting is unweighted",
    "_se": "Standard error of the weighted {ind} (Taylor linearisation with finite-population correction), same unit",
    "_ci_low": "Lower bound of the 95 % confidence interval of the weighted {ind} ({interval}), same unit",
    "_ci_high": "Upper bound of the 95 % confidence interval of the weighted {ind} ({interval}), same unit",
    "_unweighted": "Unweighted {ind}: the cell's answers as a simple random sample. Null when suppressed or few_answers",
    "_unweighted_se": "Standard error of the unweighted {ind} (s / sqrt(n)), same unit",
    "_population": "Weighted population size of the {ind}'s base: the sum of the weights N_h / n_h of the answers in it "
                   "(persons in the population the estimate speaks for). Null where the weighted estimate is",
    "_deff": "Design effect of the weighted {ind}: its variance over that of a simple random sample without replacement "
             "of as many answers from the population the estimate speaks for, S^2 / n (1 - n / N) with S^2 the weighted "
             "element variance, n the answers in the base and N its population (R: svymean(deff = TRUE)). Null where "
             "the weighted estimate is, and where it is undefined: all answers alike, or N = n (a census)",
    "_n_effective": "Effective sample size of the weighted {ind}: the answers in its base divided by the design effect "
                    "(persons): as many answers from a simple random sample would estimate it as precisely. Null where "
                    "the design effect is null or 0",
}
assert set(ESTIMATE_SUFFIXES) <= set(_SUFFIX_TEXT), set(ESTIMATE_SUFFIXES) - set(_SUFFIX_TEXT)
_PROPORTION_INTERVAL = (
    "the logit interval, R's svyciprop(method = \"logit\"): estimate and SE taken to the log-odds scale, +/- 1.96 SE "
    "there and back, so it stays within 0-1; for a share of exactly 0 or 1 the exact interval of 0 (or n) out of the n "
    "answers in its base"
)

_CALIBRATED_TEXT = {
    "_calibrated": "Calibrated estimate of the {ind}: the design weights raked within each municipality to the population's "
                   "margins (target group x gender, target group x age band, duration band by default; see calibration on the "
                   "page and docs/analytics-method.md). The headline figure is the weighted estimate without this suffix. Null "
                   "where the weighted estimate is, for weighting strata_pooled, and where the round has no population counts",
    "_calibrated_se": "Standard error of the calibrated {ind} (linearisation with the calibration residuals, finite-population "
                      "correction), same unit",
    "_calibrated_ci_low": "Lower bound of the 95 % confidence interval of the calibrated {ind} (estimate - 1.96 SE), same unit",
    "_calibrated_ci_high": "Upper bound of the 95 % confidence interval of the calibrated {ind} (estimate + 1.96 SE), same unit",
}
assert tuple(_CALIBRATED_TEXT) == CALIBRATED_SUFFIXES

COLUMNS: dict[str, Column] = {
    "id": Column(str, "The row's key: its identifying columns joined by \"~\" (the OData key)", nullable=False),
    "round_id": Column(str, "The survey round (e.g. 2026-1)", nullable=False),
    "questionnaire_id": Column(str, "The questionnaire the round asked; rounds of one questionnaire are comparable"),
    "question": Column(str, "The question's id in the questionnaire (q1 .. q13)", nullable=False),
    "dimension": Column(
        str,
        "What the rows break the municipality down by: maalgruppe (target group), gender, age_band, duration_band "
        "(time on the benefit); for response rates maalgruppe, arm (the dispatch strategy), mode (web, paper, phone), "
        "language (the language answered in) or followup (the adaptive follow-up arm)",
        nullable=False,
    ),
    "kommunekode": Column(str, 'The municipality\'s code (3 digits, e.g. 101), or "national" for all municipalities together',
                          nullable=False),
    "level": Column(str, 'The level of the dimension (e.g. a target group\'s key, an age band), or "total" for the whole '
                         "municipality (or the nation)", nullable=False),
    "n_respondents": Column(int, "Respondents in the cell: citizens who answered the questionnaire (persons). Null when suppressed"),
    "n_answers": Column(int, "Answers to this question in the cell, \"ved ikke\" (don't know) included (persons). "
                             "The base of dont_know_share and share_1..share_5. Null when suppressed"),
    "n_valid": Column(int, "Scale answers (1-5) to this question in the cell, \"ved ikke\" not included (persons). "
                           "The base of mean and top2_share. Null when suppressed"),
    "n_dont_know": Column(int, "\"Ved ikke\" (don't know) answers to this question in the cell (persons). Null when suppressed"),
    "suppressed": Column(bool, _SUPPRESSED, nullable=False),
    "caution": Column(bool, _CAUTION, nullable=False),
    "few_answers": Column(bool, "true: fewer than 5 scale answers to this question in the cell: its counts are "
                                "published, its estimates are not (null)", nullable=False),
    "weighting": Column(
        str,
        "What the weighted figures are: strata (each stratum municipality x target group weighted N_h / n_h), "
        "strata_pooled (the same with the cell's suppressed strata as one weighting class) or unweighted "
        "(a breakdown by gender, age or duration: weighted figures not published, null)",
    ),
    **{
        f"{ind}{suffix}": Column(float, text.format(
            ind=f"{ind} ({_INDICATOR_TEXT[ind]})" if suffix == "" else ind,
            interval=_PROPORTION_INTERVAL if ind in PROPORTIONS else "estimate +/- 1.96 SE",
        ))
        for ind in INDICATORS
        for suffix, text in _SUFFIX_TEXT.items()
        if suffix in ESTIMATE_SUFFIXES
    },
    **{
        f"{ind}{suffix}": Column(float, text.format(ind=ind))
        for ind in CALIBRATED_INDICATORS
        for suffix, text in _CALIBRATED_TEXT.items()
    },
    "invited": Column(int, "Citizens invited (the sample) in the cell (persons); published for every cell"),
    "answers": Column(int, "Respondents in the cell: citizens who answered the questionnaire (persons). Null when suppressed"),
    "response_rate": Column(float, "answers / invited, a proportion 0-1. Null when suppressed"),
    "release": Column(int, "The release of the round the figures are from (1, 2, 3 ... per round; reads serve the latest)"),
    "phase": Column(str, "The release's phase: preliminary (during fieldwork) or final (cut by the operator after fieldwork)"),
    "built_at": Column(datetime, "When the release was built (UTC, ISO 8601)"),
    "previous_round_id": Column(str, "The previous round of the same questionnaire the change is measured from (null: none)"),
    "indicator": Column(str, "Which indicator the trend row is about: mean (points 1-5) or top2_share (proportion 0-1)",
                        nullable=False),
    "value": Column(float, "The weighted indicator in this round (the national or municipal total), in the indicator's unit"),
    "se": Column(float, "Standard error of value, same unit"),
    "previous_value": Column(float, "The weighted indicator in the previous round, same unit"),
    "previous_se": Column(float, "Standard error of previous_value, same unit"),
    "change": Column(float, "value - previous_value, in the indicator's unit"),
    "change_se": Column(float, "Standard error of change (independent rounds: sqrt(se^2 + previous_se^2))"),
    "z": Column(float, "change / change_se: the two-sided z-test's statistic"),
    "p_value": Column(float, "Two-sided p-value of the z-test of no change"),
    "significant": Column(bool, "true: the change is significant at the 5 % level (|z| > 1.96); null without a previous value"),
    "previous_release": Column(int, "The release of the previous round the change is measured from"),
}


def row_model(name: str, columns: tuple[str, ...], doc: str) -> type[BaseModel]:
    fields = {}
    for c in columns:
        col = COLUMNS[c]
        annotation = col.type | None if col.nullable else col.type
        fields[c] = (annotation, Field(description=col.description))
    return create_model(name, __doc__=doc, __config__=ConfigDict(extra="forbid"), **fields)


IndicatorRow = row_model(
    "IndicatorRow",
    INDICATOR_COLUMNS,
    "One cell of an indicator table: a question x municipality (or national) x level of a dimension (or total).",
)
ResponseRateDetailRow = row_model(
    "ResponseRateDetailRow", RATE_COLUMNS, "Respondents and response rate of one municipality (or national) x level."
)


Scope = Literal["rates", "totals", "all"]
SCOPE_DESCRIPTION = (
    "what the release publishes: rates (who answered, never what: response rates only, no indicator rows), "
    "totals (national cells and each municipality's total, every question) or all (every cell)"
)


class ResponseRateRow(BaseModel):
    """Answers and response rate of one municipality (or the nation), all target groups."""

    kommunekode: str = Field(description=COLUMNS["kommunekode"].description)
    invited: int | None = Field(description=COLUMNS["invited"].description)
    answers: int | None = Field(description=COLUMNS["answers"].description)
    response_rate: float | None = Field(description=COLUMNS["response_rate"].description)
    suppressed: bool = Field(description=_SUPPRESSED)
    caution: bool = Field(False, description=_CAUTION)


class ResponseRates(BaseModel):
    round_id: str = Field(description=COLUMNS["round_id"].description)
    suppression_threshold: int = Field(description="Cells with fewer respondents than this are never shown (suppressed)")
    release: int = Field(description="the release these figures are from (1, 2, 3 ... per round)")
    phase: Literal["preliminary", "final"] = Field(description=COLUMNS["phase"].description)
    built_at: datetime = Field(description="when the release was built (UTC)")
    scope: Scope = Field(description=SCOPE_DESCRIPTION)
    rows: list[ResponseRateRow] = Field(description="The nation first, then each municipality the caller may read")


class ReleaseIn(BaseModel):
    phase: Literal["preliminary", "final"] = Field(description=COLUMNS["phase"].description)
    scope: Scope | None = Field(None, description=SCOPE_DESCRIPTION + "; a preliminary's default is the "
                                "configured preliminary scope, a final is always all")

    @model_validator(mode="after")
    def _final_publishes_everything(self) -> ReleaseIn:
        if self.phase == "final" and self.scope not in (None, "all"):
            raise ValueError('a final release publishes every cell: its scope is "all" (or leave scope out)')
        return self


class ReleaseOut(BaseModel):
    round_id: str = Field(description=COLUMNS["round_id"].description)
    release: int = Field(description="1, 2, 3 ... per round; reads are served the latest")
    phase: Literal["preliminary", "final"] = Field(description=COLUMNS["phase"].description)
    built_at: datetime = Field(description="when the release was built (UTC)")
    version: int = Field(description="the round's data version the release was built at")
    scope: Scope = Field(description=SCOPE_DESCRIPTION)
    answers_published: bool = Field(description="whether the release publishes answers (false for a rates release)")


class RoundOut(BaseModel):
    round_id: str = Field(description=COLUMNS["round_id"].description)
    questionnaire_id: str | None = Field(description=COLUMNS["questionnaire_id"].description)


class TablePage(BaseModel):
    """One page of a published table; ``columns`` lists every row's keys in order."""

    round_id: str | None = Field(None, description="The round the rows are from (null: rows of several rounds, see each row)")
    release: int | None = Field(None, description="the release the rows are from (null where rows come from several rounds' releases: see each row)")
    phase: Literal["preliminary", "final"] | None = Field(None, description=COLUMNS["phase"].description)
    built_at: datetime | None = Field(None, description="when the release was built (UTC)")
    scope: Scope | None = Field(None, description=SCOPE_DESCRIPTION + "; a rates release's indicator tables are empty")
    suppression_threshold: int = Field(description="Cells with fewer respondents than this are never shown (suppressed)")
    caution_below: int = Field(description="Published cells with fewer respondents than this have caution=true")
    total: int = Field(description="rows matching the filters, all pages")
    offset: int = Field(description="Rows skipped before this page")
    limit: int = Field(description="Largest number of rows on this page (the request's limit, at most the service's page size)")
    columns: list[str] = Field(description="The rows' columns in order (the CSV header)")


def page_model(name: str, row: type[BaseModel]) -> type[TablePage]:
    """A page of a table whose rows are ``row``."""
    return create_model(name, __base__=TablePage, rows=(list[row], Field(description="The page's rows, in table order")))


Variable = Literal["maalgruppe", "gender", "age_band", "duration_band"]
LonelyRule = Literal["adjust", "certainty", "average"]
LONELY_DESCRIPTION = (
    "The rule for a stratum (municipality x target group) with a single respondent, as R's survey.lonely.psu: "
    "adjust (its value centred at 0 rather than at its stratum's mean: conservative), certainty (it adds no variance), "
    "average (the variance is scaled up by strata / strata that are not lonely)"
)


class CalibrationProblemOut(BaseModel):
    kommunekode: str = Field(description=COLUMNS["kommunekode"].description)
    reason: Literal["no_population", "empty_category", "unknown_category", "not_converged"] = Field(
        description="Why the municipality was not calibrated (its calibrated figures are its design-weighted ones): no population "
                    "counts; a category with population but no respondent; respondents in a category the frame lacks; raking "
                    "did not converge within the bounds"
    )
    detail: str = Field(description="Which categories, or the bounds")


class CalibrationReport(BaseModel):
    margins: list[list[Variable]] = Field(description="The margins raked to, each within municipality (e.g. [maalgruppe, gender])")
    bounds: tuple[float | None, float | None] = Field(description="Bounds on g = calibrated weight / design weight (null: no bound)")
    calibrated: list[str] = Field(description="Municipalities whose weights were raked")
    problems: list[CalibrationProblemOut] = Field(description="Municipalities left at their design weights, and why")
    g_min: float | None = Field(None, description="Smallest g of the round")
    g_max: float | None = Field(None, description="Largest g of the round")
    note: str | None = Field(None, description="Why there are no calibrated figures at all, where so")


class EstimationMethod(BaseModel):
    """How a release's figures were estimated beyond the design weights (published metadata)."""

    lonely_strata: LonelyRule = Field(description=LONELY_DESCRIPTION)
    calibration: CalibrationReport | None = Field(None, description="The calibration behind the *_calibrated columns")


class IndicatorTablePage(TablePage):
    method: EstimationMethod | None = Field(None, description="How the release's figures were estimated: lonely-stratum rule, calibration")


IndicatorPage = create_model(
    "IndicatorPage", __base__=IndicatorTablePage, rows=(list[IndicatorRow], Field(description="The page's rows, in table order"))
)


class CalibrationIn(BaseModel):
    """A round's estimation settings; every field left out keeps its default."""

    model_config = ConfigDict(extra="forbid")

    margins: list[list[Variable]] | None = Field(
        None, min_length=1, description="Margins to rake to within each municipality; default [[maalgruppe, gender], "
                                        "[maalgruppe, age_band], [duration_band]]",
        examples=[[["maalgruppe", "gender"], ["maalgruppe", "age_band"], ["duration_band"]]],
    )
    bounds: tuple[float | None, float | None] | None = Field(
        None, description="Bounds (lower, upper) on g = calibrated / design weight, 0 <= lower < 1 < upper (null: no "
                          "bound on that side); default [0.2, 5.0]", examples=[[0.2, 5.0]],
    )
    lonely_strata: LonelyRule = Field("adjust", description=LONELY_DESCRIPTION)

    @model_validator(mode="after")
    def _valid_spec(self) -> CalibrationIn:
        try:
            self.spec()
        except CalibrationSpecError as exc:
            raise ValueError(str(exc)) from None
        return self

    def spec(self) -> CalibrationSpec:
        data = {}
        if self.margins is not None:
            data["margins"] = self.margins
        if self.bounds is not None:
            data["bounds"] = list(self.bounds)
        return CalibrationSpec.from_json(data)


class CalibrationOut(BaseModel):
    round_id: str = Field(description=COLUMNS["round_id"].description)
    margins: list[list[Variable]] = Field(description="Margins the next release rakes to, within each municipality")
    bounds: tuple[float | None, float | None] = Field(description="Bounds on g = calibrated / design weight (null: no bound)")
    lonely_strata: LonelyRule = Field(description=LONELY_DESCRIPTION)
    release: int | None = Field(None, description="The latest release (null: none yet)")
    method: EstimationMethod | None = Field(None, description="How the latest release's figures were estimated")
ResponseRatePage = page_model("ResponseRatePage", ResponseRateDetailRow)
