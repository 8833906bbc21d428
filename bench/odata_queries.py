"""What the OData feed's query evaluation costs over a national round's indicator rows (no I/O):
parsing with odata-query, the compiled $filter over every row, $orderby, and the row keys.

    .venv/bin/python bench/odata_queries.py [--kommuner 98] [--questions 13]

Prints milliseconds per step (median of 5) for a few queries BI tools send.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from services.analytics import odata
from services.analytics.domain.publication import INDICATOR_COLUMNS

LEVELS = {
    "maalgruppe": ["total", "dagpenge", "sygedagpenge", "job_og_uddannelsesparate", "aktivitetsparate", "jobafklaring"],
    "gender": ["total", "K", "M"],
    "age_band": ["total", "16-29", "30-39", "40-49", "50-59", "60+"],
    "duration_band": ["total", "0-6 mdr", "6-12 mdr", "12-24 mdr", "24+ mdr"],
}
QUERIES = {
    "round and question (equalities)": {"$filter": "round_id eq 'r1' and question eq 'q13'"},
    "parenthesised, or, not, in": {"$filter": "((dimension eq 'maalgruppe') and (mean gt 3 or not (kommunekode in ('101', '751'))))"},
    "startswith and contains": {"$filter": "startswith(question, 'q1') and contains(level, 'parat')"},
    "sort then top": {"$orderby": "mean desc", "$top": "20"},
    "two-key sort": {"$orderby": "kommunekode,n_valid desc"},
}


def national_rows(kommuner: int, questions: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    codes = ["national"] + [str(101 + i) for i in range(kommuner)]
    rows = []
    for q in range(1, questions + 1):
        for dimension, levels in LEVELS.items():
            for kommune in codes:
                for level in levels:
                    row = dict.fromkeys(INDICATOR_COLUMNS)
                    suppressed = rng.random() < 0.2
                    row.update(round_id="r1", questionnaire_id="kl_core", question=f"q{q}", dimension=dimension,
                               kommunekode=kommune, level=level, suppressed=suppressed, caution=False, few_answers=False,
                               weighting="strata", n_valid=None if suppressed else rng.randint(5, 400),
                               mean=None if suppressed else round(rng.uniform(1, 5), 3))
                    rows.append(row)
    return rows


def median_ms(step, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kommuner", type=int, default=98)
    parser.add_argument("--questions", type=int, default=13)
    args = parser.parse_args()
    es = odata.ENTITY_SETS["Indicators"]
    rows = national_rows(args.kommuner, args.questions)
    print(f"{len(rows)} indicator rows ({args.kommuner} municipalities, {args.questions} questions)")
    stamp = {"release": 3, "phase": "final", "built_at": "2026-03-01T10:00:00Z"}
    print(f"  every row made an entity (key, release): {median_ms(lambda: [odata.entity(es, r, stamp) for r in rows]):.1f} ms")
    keyed = [odata.entity(es, r, stamp) for r in rows]
    for name, params in QUERIES.items():
        parse = median_ms(lambda: odata.parse_query(params, es))
        query = odata.parse_query(params, es)
        evaluate = median_ms(lambda: odata.sort_rows([r for r in keyed if query.filter(r)], query.orderby))
        kept = len([r for r in keyed if query.filter(r)])
        print(f"  {name:34s} parse {parse:6.2f} ms, filter+sort {evaluate:7.1f} ms ({kept} rows kept)")


if __name__ == "__main__":
    main()
