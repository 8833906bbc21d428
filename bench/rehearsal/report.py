"""The rehearsal's figures as text: per phase, per process, the targets and the books."""

from __future__ import annotations

import os

from bench.rehearsal.play import Rehearsal, pct

PROCESSES = ("ingest", "sampling", "dispatch", "responses", "analytics", "postgres", "broker", "driver")


def report(rehearsal: Rehearsal, books: dict | None) -> str:
    lines = []
    out = lines.append
    r = rehearsal
    out("")
    out(f"round {r.round_id}: scale {r.scale}, {sum(r.sizes.values()):,} citizens delivered, {r.sampled:,} sampled, "
        f"{len(r.answered):,} answered ({len(r.answered) / max(r.sampled, 1):.0%}); peak {r.peak:g} answers/s; "
        f"broker {r.stack.broker_kind}; {os.cpu_count()} cores")
    if several := {name: len(p) for name, p in r.stack.replicas.items() if len(p) > 1}:
        out("replicas (CPU and memory below are their sums): " + ", ".join(f"{name} {n}" for name, n in several.items()))
    out("")
    out("phase                                   wall s  load(1m)   CPU s per process: " + " ".join(f"{p:>9}" for p in PROCESSES))
    for f in r.phases:
        if f.name in ("start", "done"):
            continue
        out(f"{f.name:<38} {f.wall:>7.1f}  {f.load[0]:>7.2f}   {'':19}" + " ".join(f"{f.cpu.get(p, 0.0):>9.1f}" for p in PROCESSES))
    out("")
    out("phase                                   peak RSS MB per process:   " + " ".join(f"{p:>9}" for p in PROCESSES))
    for f in r.phases:
        if f.name in ("start", "done"):
            continue
        out(f"{f.name:<38} {'':28}" + " ".join(f"{f.peak_rss_mb.get(p, 0.0):>9.0f}" for p in PROCESSES))
    out("")
    services = PROCESSES[:5]
    out("phase                                   max consumer lag / outbox backlog (the services' /metrics): "
        + " ".join(f"{p:>13}" for p in services))
    for f in r.phases:
        if f.name in ("start", "done"):
            continue
        out(f"{f.name:<38} {'':60}" + " ".join(f"{f.max_lag.get(p, 0):>6.0f}/{f.max_backlog.get(p, 0):<6.0f}" for p in services))
    out("")
    out("requests per phase (ms; errors; retried later)")
    kinds = ("page", "page_pending", "submit", "overview", "bi", "bi_no_release")
    for f in r.phases:
        cells = []
        for kind in kinds:
            ok = r.latency.ok.get((f.name, kind), [])
            errors = r.latency.errors.get((f.name, kind), 0)
            if ok or errors:
                cells.append(f"{kind} n={len(ok)} p50 {pct(ok, 50):.1f} p99 {pct(ok, 99):.1f} err {errors}")
        if cells:
            out(f"  {f.name:<36} " + "; ".join(cells))
    for (phase, kind), samples in r.latency.samples.items():
        out(f"  errors {phase} / {kind}: {', '.join(samples)}")
    if r.faults_done:
        out("")
        out("faults")
        for fault in r.faults_done:
            seconds = f"back after {fault.seconds:.1f} s" if fault.seconds else fault.note
            out(f"  {fault.service:<10} during {fault.when}: {seconds}")
    if "fieldwork_timed_out" in r.marks:
        out("")
        out(f"fieldwork ended early: {r.marks['fieldwork_timed_out']}")
    out("")
    out("targets (while the five share the machine)")
    for what, value, held in targets(r):
        out(f"  {'HELD  ' if held else 'MISSED'} {what}: {value}")
    if books is not None:
        out("")
        out("books")
        for c in books["checks"]:
            out(f"  {'OK    ' if c['held'] else 'WRONG '} {c['what']}: {c['detail']}")
    out("")
    out(f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}; logs in {r.stack.work / 'logs'}")
    return "\n".join(lines)


def targets(r: Rehearsal) -> list[tuple[str, str, bool]]:
    found = []
    m = r.marks
    if "invitations_done" in m:
        whole = m["invitations_done"] - m["scheduled"]
        rate = r.sampled / whole if whole else float("nan")
        found.append(("letters ≥ 667/s (invitation wave, from the schedule to the last letter)",
                      f"{r.sampled:,} in {whole:.1f} s = {rate:,.0f}/s", rate >= 667))
    wave = "invitation wave"
    page, submit = r.latency.ok.get((wave, "page"), []), r.latency.ok.get((wave, "submit"), [])
    errors = r.latency.errors.get((wave, "page"), 0) + r.latency.errors.get((wave, "submit"), 0)
    found.append(("answer pages and submits p99 < 100 ms, 0 errors, during the invitation wave",
                  f"page p99 {pct(page, 99):.1f} ms (n={len(page)}), submit p99 {pct(submit, 99):.1f} ms (n={len(submit)}), "
                  f"{errors} errors", bool(page) and pct(page, 99) < 100 and pct(submit, 99) < 100 and errors == 0))
    bi = [ms for (phase, kind), values in r.latency.ok.items() if kind == "bi" for ms in values]
    bi_errors = sum(n for (phase, kind), n in r.latency.errors.items() if kind == "bi")
    found.append(("BI reads p99 < 20 ms (releases served, all phases)",
                  f"p50 {pct(bi, 50):.1f} ms, p99 {pct(bi, 99):.1f} ms (n={len(bi)}), {bi_errors} errors",
                  bool(bi) and pct(bi, 99) < 20))
    if "first_release_read" in m:
        found.append(("published figures during fieldwork (the first release served to BI)",
                      f"{m['first_release_read'] - m['scheduled']:.1f} s after the schedule", True))
    else:
        found.append(("published figures during fieldwork (the first release served to BI)", "none before the end", False))
    if "final_release_seconds" in m:
        found.append(("final release cut", f"in {m['final_release_seconds']:.1f} s", True))
    return found
