"""The overview's pure rules: the figures per municipality and in total from the sources'
snapshots, what the round waits for, in Danish, and how representative the answers are so far
(no I/O; the clock passed in)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.analytics.domain.representativeness import SampleCell, reading_da
from services.analytics.domain.representativeness import representativeness as measure
from services.analytics.overview.schemas import DeliveryOut, Figures, MessageCount, Representativeness

LOCAL = ZoneInfo("Europe/Copenhagen")
TOTAL = "total"
# Dispatch's statuses of a message that has not gone out yet and may still go.
NOT_YET_SENT = ("waiting", "waiting_for_schedule", "planned", "sending")


def local(moment: datetime | None) -> str:
    """'6. december 2026 kl. 14:00', Danish local time."""
    if moment is None:
        return ""
    t = moment.astimezone(LOCAL)
    months = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober",
              "november", "december")
    return f"{t.day}. {months[t.month - 1]} {t.year} kl. {t:%H:%M}"


def waits_for(phase: str | None, definition: dict, delivered: set[str], sampling_stage: str | None,
              now: datetime) -> list[str]:
    """What the round waits for, in words for the operator (the phases' rules are ingest's:
    docs/rounds.md; this says which of them is next, with the facts the overview holds)."""
    if phase is None:
        return ["rundens definition (round.defined fra ingest) er ikke nået frem endnu"]
    kommuner = definition.get("kommuner") or []
    deadline = parse_time(definition.get("delivery_deadline"))
    match phase:
        case "planned":
            return ["den første leverance fra en kommune"]
        case "collecting_extracts":
            missing = sorted(set(kommuner) - delivered)
            items = []
            if missing:
                items.append(f"leverancer fra {len(missing)} kommune(r): {', '.join(missing)}")
            elif not kommuner:
                items.append(f"leverancer fra alle deltagende kommuner ({len(delivered)} har leveret)")
            if deadline is not None:
                items.append(f"leverancefristen {local(deadline)}" + (" er overskredet" if deadline <= now else ""))
            items.append({None: "operatørens forslag til fordeling og udtræk i sampling",
                          "proposed": "operatørens godkendelse af fordelingen og udtrækket",
                          "confirmed": "udtrækket (fordelingen er godkendt)"}.get(sampling_stage, "udtrækket"))
            return items
        case "sample_drawn":
            return ["operatørens bekræftelse af udsendelsesdatoerne (POST /rounds/{id}/schedule)"]
        case "fieldwork_scheduled":
            return [f"invitationen {local(parse_time(definition.get('invitation_at')))}"]
        case "in_fieldwork":
            coming = [r for r in (parse_time(r) for r in definition.get("reminders_at") or []) if r > now]
            items = [f"påmindelsen {local(r)}" for r in coming]
            items.append(f"feltarbejdets slutning {local(parse_time(definition.get('fieldwork_ends_at')))}")
            return items
        case "fieldwork_ended":
            return ["operatørens lukning af runden (POST /rounds/{id}/close)"]
        case "closed":
            return ["sletningen når opbevaringsperioden er udløbet, og kvittering fra alle services"]
    return []


def parse_time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def delivery_figures(figures: Figures, deliveries: list[dict]) -> None:
    """The municipality's deliveries, newest first; the current one's counts are its figures."""
    replaced = {d["supersedes"] for d in deliveries if d["supersedes"] is not None}
    ordered = sorted(deliveries, key=lambda d: d["accepted_at"], reverse=True)
    figures.deliveries = [
        DeliveryOut(delivery_id=str(d["delivery_id"]), delivered_by=d["delivered_by"], accepted_at=d["accepted_at"],
                    rows_read=d["rows_read"], rows_accepted=d["rows_valid"], rows_rejected=d["rows_rejected"],
                    rows_excluded=d["rows_excluded"], exclusions=d["exclusions"], current=d["delivery_id"] not in replaced)
        for d in ordered
    ]
    current = [d for d in figures.deliveries if d.current]
    if current:
        d = current[0]
        figures.rows_read, figures.rows_accepted = d.rows_read, d.rows_accepted
        figures.rows_rejected, figures.rows_excluded = d.rows_rejected, d.rows_excluded
        figures.delivery_exclusions = dict(d.exclusions)


def message_counts(steps: list[dict]) -> list[MessageCount]:
    """Dispatch's (step, channel, status, count) rows as one line per step and channel."""
    by_key: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for row in steps:
        by_key[(row["step"], row["channel"])][row["status"]] += row["count"]
    return [
        MessageCount(step=step, channel=channel, statuses=dict(sorted(statuses.items())),
                     planned=sum(statuses[s] for s in NOT_YET_SENT), sent=statuses["sent"], failed=statuses["failed"],
                     cancelled=statuses["cancelled"], skipped=statuses["skipped"])
        for (step, channel), statuses in sorted(by_key.items())
    ]


def answer_days(invitation_at: datetime | None, submitted: list[tuple[str, date, int]], now: datetime) -> tuple[list[date], dict[str, list[int]]]:
    """Answers per municipality on day 0, 1, ... since the invitation, from the answers counted
    per municipality and Danish calendar day (the first answer's day when there is no invitation
    date), up to today or the last answer."""
    if not submitted:
        return [], {}
    first = invitation_at.astimezone(LOCAL).date() if invitation_at else min(day for _, day, _ in submitted)
    last = max(max(day for _, day, _ in submitted), min(now.astimezone(LOCAL).date(), first + timedelta(days=366)))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    counts: dict[str, list[int]] = {}
    for kommunekode, day, n in submitted:
        index = max(0, (day - first).days)
        row = counts.setdefault(kommunekode, [0] * len(days))
        if index < len(row):
            row[index] += n
    return days, counts


def total_of(municipalities: list[Figures], days: int, target: float | None) -> Figures:
    """The round's total: sums of the municipalities' figures."""
    total = Figures(kommunekode=TOTAL, target_answers=target)
    for f in municipalities:
        for name in ("rows_read", "rows_accepted", "rows_rejected", "rows_excluded", "waiting_for_contact", "no_contact",
                     "invited", "answers"):
            setattr(total, name, getattr(total, name) + getattr(f, name))
        for name in ("frame_population", "eligible", "sample"):
            if getattr(f, name) is not None:
                setattr(total, name, (getattr(total, name) or 0) + getattr(f, name))
        if f.expected_answers is not None:
            total.expected_answers = (total.expected_answers or 0.0) + f.expected_answers
        total.delivery_exclusions = dict(Counter(total.delivery_exclusions) + Counter(f.delivery_exclusions))
        total.frame_exclusions = dict(Counter(total.frame_exclusions) + Counter(f.frame_exclusions))
        total.deliveries = total.deliveries + f.deliveries
        total.capped = total.capped or f.capped
    lines: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for f in municipalities:
        for m in f.messages:
            lines[(m.step, m.channel)].update(m.statuses)
    total.messages = message_counts([{"step": s, "channel": c, "status": st, "count": n}
                                     for (s, c), statuses in lines.items() for st, n in statuses.items()])
    total.answers_by_day = [sum(f.answers_by_day[i] if i < len(f.answers_by_day) else 0 for f in municipalities)
                            for i in range(days)]
    rates(total)
    total.target_answers = target
    return total


def rates(figures: Figures) -> None:
    if figures.sample:
        figures.response_rate = figures.answers / figures.sample
        if figures.expected_answers is not None:
            figures.expected_rate = figures.expected_answers / figures.sample


def now_utc() -> datetime:
    return datetime.now(UTC)


# -- representativeness: response rates by band, R-indicator ------------------------------------------

BAND_DIMENSIONS = ("gender", "age_band", "duration_band")


def representativeness(
    sampled: list[tuple], answered: list[tuple], min_count: int
) -> tuple[dict[str, Representativeness], Representativeness | None]:
    """Per municipality and for the whole round: response rates by band (hidden where fewer than
    ``min_count`` answered or did not answer), the R-indicator, CV and partial R-indicators of
    a propensity model on the frame variables (the municipality too, nationally).

    ``sampled``: (kommunekode, maalgruppe, gender, age_band, duration_band, design weight,
    citizens); ``answered``: (kommunekode, maalgruppe, gender, age_band, duration_band, citizens)."""
    weight: dict[tuple, float] = {}
    count: dict[tuple, int] = defaultdict(int)
    for k, g, gender, age, duration, w, n in sampled:
        weight[(k, g, gender, age, duration)] = float(w)
        count[(k, g, gender, age, duration)] += int(n)
    got: dict[tuple, int] = defaultdict(int)
    for k, g, gender, age, duration, n in answered:
        if (k, g, gender, age, duration) in count:
            got[(k, g, gender, age, duration)] += int(n)
    variables = ("maalgruppe", *BAND_DIMENSIONS)

    def figures(keys: list[tuple], with_kommune: bool) -> Representativeness:
        cells = [
            SampleCell((key[0], *key[1:]) if with_kommune else key[1:], weight[key], count[key], min(got[key], count[key]))
            for key in keys
        ]
        names = ("kommunekode", *variables) if with_kommune else variables
        total, answers = sum(c.sampled for c in cells), sum(c.answered for c in cells)
        rates: dict[str, dict[str, float | None]] = {}
        for j, dim in enumerate(BAND_DIMENSIONS, start=1):
            per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for key in keys:
                per[key[1 + j]][0] += count[key]
                per[key[1 + j]][1] += min(got[key], count[key])
            rates[dim] = {lvl: (a / s if a >= min_count and s - a >= min_count else None) for lvl, (s, a) in sorted(per.items())}
        if answers == 0 or answers == total:
            return Representativeness(sampled=total, answered=answers, response_rates=rates,
                                      reading="Ingen forskel at måle endnu: " + ("ingen har svaret." if answers == 0 else "alle har svaret."))
        r = measure(cells, names)
        return Representativeness(sampled=total, answered=answers, r_indicator=r.r_indicator, cv=r.cv,
                                  partial_r=r.partial_unconditional, response_rates=rates, reading=reading_da(r))

    by_kommune: dict[str, list[tuple]] = defaultdict(list)
    for key in count:
        by_kommune[key[0]].append(key)
    municipal = {k: figures(sorted(keys), False) for k, keys in by_kommune.items()}
    national = figures(sorted(count), True) if count else None
    return municipal, national
