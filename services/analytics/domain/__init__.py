"""Pure statistical logic of the analytics service (no I/O).

* :mod:`.estimators` - design-based means/proportions, SEs, CIs, domains, raking.
* :mod:`.indicators` - the published indicators of a question in a cell.
* :mod:`.suppression` - primary/secondary suppression and the differencing attacker.
"""

from .estimators import (
    CalibrationError,
    EmptyDomainError,
    Estimate,
    LonelyStratumError,
    Margin,
    StratifiedDesign,
    normal_quantile,
    post_stratify,
    rake,
)
from .indicators import AGREEMENT_SCALE, CellIndicators, IndicatorSet, LikertScale, cell_indicators
from .suppression import (
    TOTAL,
    CellDecision,
    CellStatus,
    CountTable,
    PublishedTable,
    SuppressedTable,
    find_recoverable_cells,
    suppress,
    suppress_table,
)

__all__ = [
    "AGREEMENT_SCALE",
    "CalibrationError",
    "CellDecision",
    "CellIndicators",
    "CellStatus",
    "CountTable",
    "EmptyDomainError",
    "Estimate",
    "IndicatorSet",
    "LikertScale",
    "LonelyStratumError",
    "Margin",
    "PublishedTable",
    "StratifiedDesign",
    "SuppressedTable",
    "TOTAL",
    "cell_indicators",
    "find_recoverable_cells",
    "normal_quantile",
    "post_stratify",
    "rake",
    "suppress",
    "suppress_table",
]
