"""Calibration's cost on a national round: raking 98 municipalities' design weights to their
frame margins and the calibrated figures of every union-of-strata cell for every question
(domain/calibration.py, what a release build adds). Prints CPU and wall seconds with the load.

    .venv/bin/python bench/analytics_calibration.py [--respondents 20000] [--questions 13]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import Counter

import numpy as np

from services.analytics.domain.answers import CODES
from services.analytics.domain.calibration import CalibrationSpec, RespondentCell, calibrate, union_figures

GROUPS = ("dagpenge", "sygedagpenge", "jobparate", "aktivitetsparate", "jobafklaring")
AGES = ("16-29", "30-39", "40-49", "50-59", "60+")
DURATIONS = ("0-3", "3-6", "6-12", "12+")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--respondents", type=int, default=20_000)
    parser.add_argument("--questions", type=int, default=13)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kommuner = [f"{k:03d}" for k in range(101, 101 + 98)]
    population, respondents, sizes = Counter(), Counter(), {}
    per_stratum = args.respondents // (len(kommuner) * len(GROUPS))
    for k in kommuner:
        for g in GROUPS:
            big_n = per_stratum * rng.randint(3, 8)
            sizes[f"{k}:{g}"] = big_n
            for _ in range(big_n):
                population[(k, g, rng.choice("KM"), rng.choice(AGES), rng.choice(DURATIONS))] += 1
            keys = [key for key in population if key[:2] == (k, g)]
            for _ in range(per_stratum):
                respondents[rng.choice(keys)] += 1
    cells = [RespondentCell(f"{k}:{g}", k, g, gender, age, d, n) for (k, g, gender, age, d), n in sorted(respondents.items())]
    counts = {}
    for q in range(1, args.questions + 1):
        m = np.zeros((len(cells), len(CODES)))
        for i, c in enumerate(cells):
            for _ in range(c.respondents):
                m[i, rng.randrange(len(CODES))] += 1
        counts[f"q{q}"] = m
    started, cpu = time.perf_counter(), time.process_time()
    cal = calibrate(cells, sizes, [(*key, n) for key, n in population.items()], CalibrationSpec())
    raked_wall, raked_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    figures = union_figures(cal, counts)
    est_wall, est_cpu = time.perf_counter() - started, time.process_time() - cpu
    load = os.getloadavg()[0]
    print(f"respondent cells {len(cells)}, respondents {sum(respondents.values())}, municipalities raked {len(cal.calibrated)}, "
          f"not raked {len(cal.problems)}")
    print(f"raking: {raked_cpu:.2f} s CPU, {raked_wall:.2f} s wall")
    print(f"figures ({len(figures)} cells x 2 indicators): {est_cpu:.2f} s CPU, {est_wall:.2f} s wall")
    print(f"load average (1 min): {load:.1f}")


if __name__ == "__main__":
    main()
