"""What disclosure control costs in published cells: the demo round and a national-size simulated
round, built by the publication of a given git revision ("before") and of the working tree
("after"), and the same round released as the release loop releases it (by both): fieldwork releases
of response rates only (scope "rates", ``--rates-releases``), more answers after each, then the
final release of every cell. Prints counts and build times; asserts nothing.

    .venv/bin/python bench/analytics_disclosure.py                  # before = abb8c3c
    .venv/bin/python bench/analytics_disclosure.py --before <rev> --national-respondents 60000
    .venv/bin/python bench/analytics_disclosure.py --rounds national --national-respondents 4000 \
        --after-only --releases-only --profile final.prof    # the rehearsal's shape: the final after 2 rates
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.analytics.domain import publication as after  # noqa: E402
from services.analytics.domain.answers import answer_code  # noqa: E402

GROUPS = ("jobparate", "aktivitetsparate", "uddannelsesparate", "aktivitetsparate_udd", "jobafklaring")
AGES = ("18-29", "30-39", "40-49", "50+")
DURATIONS = ("<6 mdr", "6-12 mdr", "12+ mdr")
QUESTIONS = tuple(f"q{i}" for i in range(1, 14))


def domain_at(revision: str):
    """The analytics domain package as it was at ``revision``, imported under another name."""
    target = Path(tempfile.mkdtemp()) / "before_domain"
    target.mkdir()
    files = subprocess.run(["git", "ls-tree", "--name-only", revision, "services/analytics/domain/"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for path in files:
        if path.endswith(".py"):
            text = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
            (target / Path(path).name).write_text(text)
    sys.path.insert(0, str(target.parent))
    return importlib.import_module("before_domain.publication")


def units_of_demo() -> list[tuple]:
    """`make demo`'s round: census of 30, 18 and 12 citizens, two thirds answer 13 questions."""
    rng = random.Random(7)
    units = []
    for k, size in {"101": 30, "147": 18, "751": 12}.items():
        for i in range(size * 2 // 3):
            units.append((f"{k}:{rng.choice(GROUPS[:3])}", rng.choice("MK"), rng.choice(AGES), rng.choice(DURATIONS),
                          {q: rng.choice([1, 2, 3, 4, 5]) for q in QUESTIONS}))
    return units


def units_of_nation(respondents: int, seed: int = 3) -> list[tuple]:
    """98 municipalities of very different sizes x 5 target groups (jobafklaring small)."""
    rng = random.Random(seed)
    sizes = [rng.choice([1, 2, 4, 8, 8, 12, 25]) for _ in range(98)]
    units = []
    scale = respondents / sum(sizes)
    for m, size in enumerate(sizes):
        k = str(101 + 7 * m)
        for g in GROUPS:
            n = int(size * scale * rng.uniform(0.1, 0.35) * (0.25 if g == "jobafklaring" else 1.0))
            for _ in range(n):
                units.append((f"{k}:{g}", rng.choice("MK"), rng.choice(AGES), rng.choice(DURATIONS),
                              {q: rng.choice([1, 2, 3, 4, 4, 5, 5, "ved_ikke", None]) for q in QUESTIONS}))
    return units


def inputs(units, module):
    tallies, people = Counter(), Counter()
    for h, g, a, d, answers in units:
        slots = (("total", "total"), ("gender", g), ("age_band", a), ("duration_band", d))
        for slot in slots:
            people[(h, *slot)] += 1
        for q, v in answers.items():
            code = answer_code(v)
            if code is not None:
                for slot in slots:
                    tallies[(h, *slot, q, code)] += 1
    n = Counter(u[0] for u in units)
    strata = {h: module.StratumInfo(h.split(":")[0], h.split(":")[1], c, c * 5) for h, c in n.items()}
    answers = [module.AnswerCount(*key, v) for key, v in tallies.items()]
    if hasattr(module, "RESPONDENTS"):
        answers += [module.AnswerCount(h, d, lvl, module.RESPONDENTS, "1", v) for (h, d, lvl), v in people.items()]
    rates = [module.RateCount(h, s.kommunekode, s.maalgruppe, "none", s.respondents * 2 + 1, s.respondents) for h, s in strata.items()]
    return strata, answers, rates


def summary(pub) -> dict:
    rows = pub.indicator_rows
    shown = [r for r in rows if not r["suppressed"]]
    cells = {(r["dimension"], r["kommunekode"], r["level"]) for r in rows}
    shown_cells = {(r["dimension"], r["kommunekode"], r["level"]) for r in shown}
    with_estimates = [r for r in shown if r.get("mean_unweighted") is not None]
    weighted = [r for r in shown if r.get("mean") is not None]
    return {
        "cells": f"{len(shown_cells)}/{len(cells)}",
        "question cells": f"{len(shown)}/{len(rows)}",
        "with estimates": len(with_estimates),
        "with weighted": len(weighted),
        "rate cells": f"{sum(not r['suppressed'] for r in pub.rate_rows)}/{len(pub.rate_rows)}",
    }


def report(name: str, units, before, rates_releases: int = 2, *, alone: bool = True, profile: str | None = None) -> None:
    print(f"\n{name}: {len(units)} respondents, {len({u[0] for u in units})} strata")
    revisions = (("before", before), ("after", after)) if before is not None else (("after", after),)
    for label, module in revisions if alone else ():
        started = time.perf_counter()
        pub = module.build_publication("r", "kl", *inputs(units, module), min_count=5)
        print(f"  {label:<34} {time.perf_counter() - started:6.1f} s  " + "  ".join(f"{k}: {v}" for k, v in summary(pub).items()))
    # A round as the release loop releases it: fieldwork releases of response rates only, each
    # followed by more answers (2 %, at least one), then the final release of every cell.
    for label, module in revisions:
        rng = random.Random(1)
        step = max(1, len(units) // 50)

        def more(previous):
            return previous + [(*rng.choice(previous)[:4], {q: rng.choice([1, 2, 3, 4, 5]) for q in QUESTIONS}) for _ in range(step)]

        baseline, current = None, units
        releases = [("rates 1", "rates")] + [(f"rates {i} (+{step})", "rates") for i in range(2, rates_releases + 1)]
        for release, scope in (*releases, (f"final after them (+{step})", "all")):
            if baseline is not None:
                current = more(current)
            counts = inputs(current, module)
            profiler = cProfile.Profile() if profile and label == "after" and scope == "all" else None
            started, cpu = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            pub = module.build_publication("r", "kl", *counts, min_count=5, baseline=baseline, scope=scope)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
            baseline = pub.baseline
            print(f"  {label} {release:<27} {time.perf_counter() - started:6.1f} s ({time.process_time() - cpu:6.1f} CPU s)  " + "  ".join(f"{k}: {v}" for k, v in summary(pub).items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="abb8c3c", help="git revision of the publication to compare with")
    parser.add_argument("--national-respondents", type=int, default=60000)
    parser.add_argument("--rates-releases", type=int, default=2, help="fieldwork releases before the final")
    parser.add_argument("--rounds", default="demo,national", help="which rounds: demo, national or both")
    parser.add_argument("--after-only", action="store_true", help="the working tree only, no revision to compare with")
    parser.add_argument("--releases-only", action="store_true", help="only the rates releases and the final after them")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the working tree's final release after the rates releases into FILE")
    args = parser.parse_args()
    before = None if args.after_only else domain_at(args.before)
    rounds = set(args.rounds.split(","))
    options = {"alone": not args.releases_only}
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if "demo" in rounds:
        report("demo round", units_of_demo(), before, args.rates_releases, **options,
               profile=args.profile if "national" not in rounds else None)
    if "national" in rounds:
        report("national-size round", units_of_nation(args.national_respondents), before, args.rates_releases, **options,
               profile=args.profile)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
