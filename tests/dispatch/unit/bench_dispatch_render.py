"""Per-letter cost of the dispatch pipeline's pure part: render the PDF, build
the MeMo message, validate it against the XSD.

Times are CPU time of this process (time.process_time), so a busy shared
machine inflates them less than wall-clock time would; the wall-clock total
is printed too.

Not a test (pytest does not collect it). Run:
    .venv/bin/python tests/dispatch/unit/bench_dispatch_render.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time

clock = time.process_time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from services.dispatch.domain.letters import ContactInfo, LetterContext, LetterKind, render_letter  # noqa: E402
from services.dispatch.domain.memo import (  # noqa: E402
    MemoRecipient,
    MemoSender,
    SurveyLetter,
    build_letter_message,
    memo_schema,
    validate_memo,
)


def main(n: int) -> None:
    sender = MemoSender("29189978", "Ringkøbing-Skjern Kommune")
    contact = ContactInfo("Jobcenter Ringkøbing-Skjern", "99 74 14 00", "jobcenter@rksk.dk")
    t0 = clock()
    memo_schema()
    print(f"schema load (once per process): {(clock() - t0) * 1000:.0f} ms")

    def ctx(i: int) -> LetterContext:
        return LetterContext(name=f"Søren Æbelø Åberg {i}", link=f"https://svar.borgerblik.dk/s/{i:012d}Xq",
                             municipality="Ringkøbing-Skjern Kommune", deadline=date(2025, 9, 15),
                             contact=contact)

    render_letter(LetterKind.INVITATION, ctx(0))  # font registration, template compile
    wall0 = time.perf_counter()
    pdf_ms, memo_ms, validate_ms, sizes = [], [], [], []
    for i in range(n):
        c = ctx(i)
        t0 = clock()
        letter = render_letter(LetterKind(list(LetterKind)[i % 3]), c)
        t1 = clock()
        survey = SurveyLetter(sender, MemoRecipient(f"{i % 10**10:010d}", c.name), letter.title,
                              letter.notification, letter.pdf, c.link, pdf_filename=letter.filename)
        built = build_letter_message(survey, validate=False)
        t2 = clock()
        build_letter_message(survey, validate=True)
        t3 = clock()
        pdf_ms.append((t1 - t0) * 1000)
        memo_ms.append((t2 - t1) * 1000)
        validate_ms.append((t3 - t2) * 1000 - memo_ms[-1])
        sizes.append(len(built.xml))

    wall_total = (time.perf_counter() - wall0) / n * 1000  # includes the unvalidated extra build
    full_ms = []
    for i in range(min(n, 50)):  # whole-document validation, PDF base64 included
        xml = build_letter_message(SurveyLetter(sender, MemoRecipient("0101901234"), "Titel", "Besked",
                                                render_letter(LetterKind.INVITATION, ctx(i)).pdf,
                                                ctx(i).link), validate=False).xml
        t0 = clock()
        validate_memo(xml)
        full_ms.append((clock() - t0) * 1000)

    paper_ms = []
    for i in range(min(n, 30)):
        t0 = clock()
        render_letter(LetterKind.INVITATION, ctx(i), paper=True)
        paper_ms.append((clock() - t0) * 1000)

    def line(label: str, values: list[float]) -> None:
        values = sorted(values)
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"{label:44s} mean {statistics.mean(values):6.2f} ms   p95 {p95:6.2f} ms")

    print(f"{n} letters")
    line("PDF render (Jinja2 + ReportLab)", pdf_ms)
    line("MeMo build (lxml, no validation)", memo_ms)
    line("MeMo XSD validation (as built)", validate_ms)
    total = [a + b + c for a, b, c in zip(pdf_ms, memo_ms, validate_ms)]
    line("total per letter", total)
    line("validate_memo on full bytes (for comparison)", full_ms)
    line("PDF render, paper letter with QR code", paper_ms)
    print(f"wall clock per letter (incl. one extra unvalidated build): {wall_total:.2f} ms")
    print(f"MeMo size mean {statistics.mean(sizes) / 1024:.1f} KiB")
    per_letter = statistics.mean(total) / 1000
    print(f"200,000 letters: {200_000 * per_letter / 60:.0f} min on one core")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
