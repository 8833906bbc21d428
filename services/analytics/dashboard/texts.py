"""Danish first, English with ?lang=en. Labels of the kl_core questionnaire are a copy
(kl_core_labels.json, taken from services/responses' published kl_core_v1.json, with a short
text per question for chart axes, slides and tables): analytics never imports another
service's code. Municipalities are named from municipalities.csv: the 98 kommunekoder and
names of Danmarks Adresseregister's kommunekodeliste (as HL7 Denmark's DK Core code system
dk-core-municipality-codes publishes it, without 411 Christiansø, which is no municipality)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LANGS = ("da", "en")

TEXTS: dict[str, dict[str, str]] = {
    "da": {
        "app": "Borgerblik – resultater",
        "skip": "Spring til indhold",
        "overview": "Overblik",
        "questions": "Spørgsmål",
        "breakdowns": "Fordelt på baggrund",
        "trends": "Udvikling",
        "fair": "Fair sammenligning",
        "targets": "Mål",
        "report": "Rapport",
        "round": "Runde",
        "round_overviews": "Rundernes forløb (KL's operatør)",
        "release_preliminary": "Foreløbige tal · udgivelse {n} · {when}",
        "release_final": "Endelige tal · udgivelse {n} · {when}",
        "kommune": "Kommune",
        "national": "Hele landet",
        "response_rate": "Svarprocent",
        "answers": "Svar",
        "invited": "Inviterede",
        "satisfaction": "Samlet tilfredshed",
        "themes": "De fem temaer",
        "theme": "Tema",
        "question": "Spørgsmål",
        "mean": "Gennemsnit (1–5)",
        "top2": "Andel 4 eller 5",
        "ci": "95 %-konfidensinterval",
        "n": "Antal svar",
        "suppressed": "undertrykt",
        "suppressed_note": "— undertrykt: færre end {min} svar, eller skjult for at beskytte en lille celle. Vises aldrig som 0.",
        "caution": "få svar",
        "caution_note": "* få svar (under {n}): læs med forsigtighed.",
        "download_png": "Hent som PNG",
        "download_svg": "Hent som SVG",
        "download_pptx": "Hent som PowerPoint-dias",
        "deck": "Hele runden som PowerPoint",
        "pdf": "Hele runden som PDF",
        "data_table": "Tallene bag figuren",
        "share": "Andel",
        "distribution": "Svarfordeling",
        "dont_know": "Ved ikke",
        "target": "Mål",
        "target_line": "Mål: {value}",
        "no_target": "Ingen mål sat.",
        "set_target": "Sæt mål",
        "save": "Gem",
        "delete": "Slet",
        "value": "Værdi",
        "indicator": "Indikator",
        "login": "Log ind",
        "logout": "Log ud",
        "client_id": "Klient-id",
        "client_secret": "Klienthemmelighed",
        "login_intro": "Lokal udvikling: log ind med en udviklerklient fra deploy/dev-clients.json. I drift sidder dashboardet bag Fælleskommunal Adgangsstyring (KOMBIT) via en SAML/OIDC-broker.",
        "login_failed": "Login mislykkedes: klient-id eller hemmelighed er forkert, eller klienten må ikke læse resultater.",
        "login_slowed": "For mange mislykkede login. Vent lidt, og prøv igen.",
        "login_disabled": "Udviklerlogin er slået fra her. Brug kommunens login (Fælleskommunal Adgangsstyring).",
        "session_ended": "Din session er udløbet eller afsluttet. Log ind igen.",
        "logout_everywhere": "Log ud på alle enheder",
        "choose": "Vælg runde og kommune",
        "no_rounds": "Der er endnu ingen offentliggjorte runder.",
        "maalgruppe": "Målgruppe",
        "gender": "Køn",
        "age_band": "Alder",
        "duration_band": "Forløbets varighed",
        "total": "I alt",
        "change": "Ændring",
        "significant": "Signifikant ændring",
        "yes": "ja",
        "no": "nej",
        "raw": "Rå score",
        "adjusted": "Justeret score",
        "adjusted_for": "Justeret for {dim}",
        "not_computable": "kan ikke beregnes (en celle er undertrykt)",
        "theme_note": "Et temas score er gennemsnittet af dets spørgsmåls vægtede gennemsnit; er et spørgsmål undertrykt, er temaet det også.",
        "weighted_note": "Tal er vægtede estimater (designvægte); 95 %-konfidensinterval i tabellen.",
        "language": "English",
        "forbidden": "Du har ikke adgang til denne kommune.",
        "targets_intro": "Kommunens politiske mål, fx samlet tilfredshed mindst 4,2. Målene vises som linjer i figurerne.",
        "compare_national": "{kommune} mod hele landet",
        "fair_method": "",
        "compare": "Sammenlignelige kommuner",
        "comparable": "Sammenlignelige kommuner",
        "comparable_members": "Sammenlignelige kommuner: {members}.",
        "comparable_none": "Der er for få andre kommuner i runden til en sammenligningsgruppe.",
        "distance": "Afstand (forskelsindeks)",
        "members": "Kommunerne i sammenligningsgruppen",
        "composition": "Sammensætning",
        "expected": "Forventet ud fra sammensætningen",
        "adjusted_note": "Justeret score = landsgennemsnit + (kommunens rå score − den score, sammensætningen af dens borgere i populationen lader forvente). Se metoden på siden Fair sammenligning.",
        "coefficients": "Modellens effekter (forskel til referencegruppen, øvrige variable holdt fast)",
        "reference": "reference",
        "effect": "Effekt",
        "texts": "Fritekstsvar",
        "texts_intro": "Borgernes egne ord, allerede renset for personoplysninger, når svaret blev afgivet. Svarene vises i alfabetisk orden uden baggrundsoplysninger. Færre end {min} fritekstsvar på et spørgsmål vises ikke.",
        "texts_suppressed": "— undertrykt: færre end {min} fritekstsvar",
        "texts_count": "{n} fritekstsvar",
        "texts_none": "Ingen fritekstsvar.",
        "page": "Side",
        "next": "Næste side",
        "previous": "Forrige side",
        "login_oidc": "Log ind med kommunens login (Fælleskommunal Adgangsstyring)",
        "login_oidc_intro": "Du sendes til kommunens login via KOMBITs Fælleskommunal Adgangsstyring og tilbage hertil.",
        "login_denied": "Login lykkedes, men du har ingen rolle, der giver adgang til resultaterne. Kontakt kommunens brugeradministrator.",
        "logged_in": "Du er logget ind",
        "continue": "Fortsæt",
        "refused_403": "Ingen adgang",
        "refused_404": "Siden findes ikke",
        "why_kommune": "Du har ikke adgang til resultaterne for {kommune}. En kommunes brugere ser deres egen kommune og hele landet; KL ser alle.",
        "why_scope": "Din bruger har ikke rettigheden til at læse resultater. Kontakt kommunens brugeradministrator, eller log ind med en anden bruger.",
        "why_texts_all": "Fritekstsvar fra hele landet er kun for KL. Du kan læse din egen kommunes fritekstsvar.",
        "why_no_release": "Runden {round} har endnu ingen offentliggjorte tal. Siderne kommer, når runden er udgivet.",
        "why_no_round": "Der findes ingen runde {round}.",
        "why_question": "Spørgsmålet findes ikke i denne runde.",
        "why_rates_only": "Runden {round} er i dataindsamling: indtil resultaterne udgives, offentliggøres kun hvor mange der har svaret, ikke hvad de har svaret (så intet svar kan regnes ud af to udgivelser). Svarprocenten står på rundens overblik.",
        "rates_only_note": "Dataindsamlingen er i gang. Indtil resultaterne udgives, viser siderne kun svarprocenten: hvor mange der har svaret, ikke hvad de har svaret, så ingen borgers svar kan regnes ud af to udgivelser. Resultaterne kommer med den endelige udgivelse efter dataindsamlingen.",
        "rep_heading": "Ligner svarene befolkningen?",
        "rep_intro": "Svarer nogle grupper mindre end andre, kan tallene hælde mod dem, der svarer mest. Her er svarprocenten af de udtrukne borgere (også dem, der ikke kunne kontaktes) efter baggrund, og R-indikatoren fra en model for, hvem der svarer. Tallene følger udgivelsen.",
        "rep_good": "Svarene ligner befolkningen godt: alle grupper svarer nogenlunde lige meget.",
        "rep_fair": "Svarene ligner befolkningen rimeligt, men nogle grupper svarer mærkbart mindre end andre.",
        "rep_skewed": "Svarene ligner ikke befolkningen godt: nogle grupper svarer meget mindre end andre, så tallene kan hælde mod dem, der svarer mest.",
        "rep_unknown": "Det kan ikke måles endnu, om svarene ligner befolkningen: der er for få svar, for få der ikke har svaret, eller grupper hvis tal er skjult for at beskytte borgerne.",
        "rep_gap": "Forskellen er størst på {variable}: {low} svarer mindre end {high}.",
        "rep_gap_hidden": "Forskellen er størst på {variable}.",
        "rep_gap_kommuner": "Forskellen er størst mellem kommunerne.",
        "rep_r": "R-indikator",
        "rep_r_note": "R-indikatoren er 1, når alle grupper svarer lige meget, og lavere jo mere ulige. Fra 0,9 ligner svarene befolkningen godt, fra 0,8 rimeligt.",
        "rep_cv": "Variationskoefficient for svarsandsynligheden",
        "rep_partial": "Delvis R-indikator: {variable}",
        "rep_rates": "Svarprocent efter baggrund",
        "rep_rate_of_sampled": "Svarprocent af de udtrukne",
        "rep_hidden_note": "— undertrykt: færre end {min} har svaret eller mangler at svare, eller skjult for at beskytte en lille gruppe.",
        "rep_var_maalgruppe": "målgruppe",
        "rep_var_gender": "køn",
        "rep_var_age_band": "alder",
        "rep_var_duration_band": "forløbets varighed",
        "rep_var_kommunekode": "kommune",
        "rep_level_age_band": "borgere på {level} år",
        "rep_level_duration_band": "borgere med forløb på {level}",
        "why_chart": "Figuren findes ikke.",
        "why_per_kommune": "Denne side findes for en kommune, ikke for hele landet.",
        "why_oidc_off": "Kommunens login er ikke sat op her.",
        "why_403": "Du har ikke adgang til denne side.",
        "why_404": "Adressen passer ikke til en side i dashboardet.",
        "back_home": "Til forsiden: runder og kommuner",
        "login_other": "Log ind som en anden bruger",
    },
    "en": {
        "app": "Borgerblik – results",
        "skip": "Skip to content",
        "overview": "Overview",
        "questions": "Questions",
        "breakdowns": "Breakdowns",
        "trends": "Development",
        "fair": "Fair comparison",
        "targets": "Targets",
        "report": "Report",
        "round": "Round",
        "round_overviews": "The rounds' progress (KL's operator; in Danish)",
        "release_preliminary": "Preliminary figures · release {n} · {when}",
        "release_final": "Final figures · release {n} · {when}",
        "kommune": "Municipality",
        "national": "Whole country",
        "response_rate": "Response rate",
        "answers": "Answers",
        "invited": "Invited",
        "satisfaction": "Overall satisfaction",
        "themes": "The five themes",
        "theme": "Theme",
        "question": "Question",
        "mean": "Mean (1–5)",
        "top2": "Share 4 or 5",
        "ci": "95 % confidence interval",
        "n": "Answers",
        "suppressed": "suppressed",
        "suppressed_note": "— suppressed: fewer than {min} answers, or hidden to protect a small cell. Never shown as 0.",
        "caution": "few answers",
        "caution_note": "* few answers (below {n}): read with caution.",
        "download_png": "Download PNG",
        "download_svg": "Download SVG",
        "download_pptx": "Download PowerPoint slide",
        "deck": "Whole round as PowerPoint",
        "pdf": "Whole round as PDF",
        "data_table": "The figures behind the chart",
        "share": "Share",
        "distribution": "Answer distribution",
        "dont_know": "Don't know",
        "target": "Target",
        "target_line": "Target: {value}",
        "no_target": "No targets set.",
        "set_target": "Set target",
        "save": "Save",
        "delete": "Delete",
        "value": "Value",
        "indicator": "Indicator",
        "login": "Log in",
        "logout": "Log out",
        "client_id": "Client id",
        "client_secret": "Client secret",
        "login_intro": "Local development: log in with a developer client from deploy/dev-clients.json. In production the dashboard sits behind KOMBIT's Fælleskommunal Adgangsstyring via a SAML/OIDC broker.",
        "login_failed": "Login failed: wrong client id or secret, or the client may not read results.",
        "login_slowed": "Too many failed logins. Wait a while and try again.",
        "login_disabled": "Developer login is disabled here. Use your municipality's login (Fælleskommunal Adgangsstyring).",
        "session_ended": "Your session has expired or ended. Please log in again.",
        "logout_everywhere": "Log out on all devices",
        "choose": "Choose round and municipality",
        "no_rounds": "No rounds have been published yet.",
        "maalgruppe": "Target group",
        "gender": "Gender",
        "age_band": "Age",
        "duration_band": "Course duration",
        "total": "Total",
        "change": "Change",
        "significant": "Significant change",
        "yes": "yes",
        "no": "no",
        "raw": "Raw score",
        "adjusted": "Adjusted score",
        "adjusted_for": "Adjusted for {dim}",
        "not_computable": "cannot be computed (a cell is suppressed)",
        "theme_note": "A theme's score is the average of its questions' weighted means; if a question is suppressed, so is the theme.",
        "weighted_note": "Figures are weighted estimates (design weights); 95 % confidence interval in the table.",
        "language": "Dansk",
        "forbidden": "You do not have access to this municipality.",
        "targets_intro": "The municipality's political targets, e.g. overall satisfaction at least 4.2. Targets are drawn as lines in the charts.",
        "compare_national": "{kommune} against the whole country",
        "fair_method": "",
        "compare": "Comparable municipalities",
        "comparable": "Comparable municipalities",
        "comparable_members": "Comparable municipalities: {members}.",
        "comparable_none": "There are too few other municipalities in the round for a comparison group.",
        "distance": "Distance (dissimilarity index)",
        "members": "The municipalities in the comparison group",
        "composition": "Composition",
        "expected": "Expected from the composition",
        "adjusted_note": "Adjusted score = national mean + (the municipality's raw score − the score the composition of its population predicts). See the method on the Fair comparison page.",
        "coefficients": "The model's effects (difference from the reference group, other variables held fixed)",
        "reference": "reference",
        "effect": "Effect",
        "texts": "Free-text answers",
        "texts_intro": "The citizens' own words, scrubbed of personal data when the answer was given. Answers are listed alphabetically without background information. Fewer than {min} free-text answers to a question are not shown.",
        "texts_suppressed": "— suppressed: fewer than {min} free-text answers",
        "texts_count": "{n} free-text answers",
        "texts_none": "No free-text answers.",
        "page": "Page",
        "next": "Next page",
        "previous": "Previous page",
        "login_oidc": "Log in with your municipality's login (Fælleskommunal Adgangsstyring)",
        "login_oidc_intro": "You are sent to your municipality's login through KOMBIT's Fælleskommunal Adgangsstyring and back here.",
        "login_denied": "You logged in, but you have no role that gives access to the results. Contact your municipality's user administrator.",
        "logged_in": "You are logged in",
        "continue": "Continue",
        "refused_403": "No access",
        "refused_404": "The page does not exist",
        "why_kommune": "You do not have access to the results of {kommune}. A municipality's users see their own municipality and the whole country; KL sees all.",
        "why_scope": "Your user does not have the right to read results. Contact your municipality's user administrator, or log in as another user.",
        "why_texts_all": "Free-text answers from the whole country are for KL only. You can read your own municipality's free-text answers.",
        "why_no_release": "Round {round} has no published figures yet. Its pages come when the round is released.",
        "why_no_round": "There is no round {round}.",
        "why_question": "The question does not exist in this round.",
        "why_rates_only": "Round {round} is collecting answers: until its results are released, only how many have answered is published, not what they answered (so no answer can be worked out from two releases). The response rate is on the round's overview.",
        "rates_only_note": "Answers are being collected. Until the results are released, the pages show the response rate only: how many have answered, not what they answered, so no citizen's answer can be worked out from two releases. The results come with the final release after fieldwork.",
        "rep_heading": "Do the answers resemble the population?",
        "rep_intro": "When some groups answer less than others, the figures can lean towards those who answer most. Here is the response rate of the sampled citizens (those who could not be contacted included) by background, and the R-indicator from a model of who answers. The figures follow the release.",
        "rep_good": "The answers resemble the population well: every group answers about as much as the others.",
        "rep_fair": "The answers resemble the population reasonably, but some groups answer noticeably less than others.",
        "rep_skewed": "The answers do not resemble the population well: some groups answer much less than others, so the figures can lean towards those who answer most.",
        "rep_unknown": "Whether the answers resemble the population cannot be measured yet: too few answers, too few still to answer, or groups whose figures are hidden to protect the citizens.",
        "rep_gap": "The difference is largest by {variable}: {low} answer less than {high}.",
        "rep_gap_hidden": "The difference is largest by {variable}.",
        "rep_gap_kommuner": "The difference is largest between the municipalities.",
        "rep_r": "R-indicator",
        "rep_r_note": "The R-indicator is 1 when every group answers equally, and lower the more unequal. From 0.9 the answers resemble the population well, from 0.8 reasonably.",
        "rep_cv": "Coefficient of variation of the response propensity",
        "rep_partial": "Partial R-indicator: {variable}",
        "rep_rates": "Response rate by background",
        "rep_rate_of_sampled": "Response rate of the sampled",
        "rep_hidden_note": "— suppressed: fewer than {min} have answered or have yet to answer, or hidden to protect a small group.",
        "rep_var_maalgruppe": "target group",
        "rep_var_gender": "gender",
        "rep_var_age_band": "age",
        "rep_var_duration_band": "duration of the course",
        "rep_var_kommunekode": "municipality",
        "rep_level_age_band": "citizens aged {level}",
        "rep_level_duration_band": "citizens with a course of {level}",
        "why_chart": "The chart does not exist.",
        "why_per_kommune": "This page exists for a municipality, not for the whole country.",
        "why_oidc_off": "Municipal login is not configured here.",
        "why_403": "You do not have access to this page.",
        "why_404": "The address does not match a page of the dashboard.",
        "back_home": "To the start page: rounds and municipalities",
        "login_other": "Log in as another user",
    },
}

# Target groups by the display names of ingest's central mapping (maalgrupper_v2.json: both
# concepts' groups), gender and the bands as a reader says them.
LEVEL_LABELS = {
    "da": {"M": "Mænd", "K": "Kvinder", "dagpenge": "Dagpenge", "sygedagpenge": "Sygedagpenge", "jobparate": "Jobparate",
           "job_og_uddannelsesparate": "Job- og uddannelsesparate", "aktivitetsparate": "Aktivitetsparate",
           "jobafklaring": "Jobafklaring", "total": "I alt"},
    "en": {"M": "Men", "K": "Women", "dagpenge": "Unemployment benefit", "sygedagpenge": "Sickness benefit",
           "jobparate": "Job-ready", "job_og_uddannelsesparate": "Job- and education-ready", "aktivitetsparate": "Activity-ready",
           "jobafklaring": "Job clarification", "<6 mdr": "<6 months", "6-12 mdr": "6–12 months", "12+ mdr": "12+ months",
           "<6 mdr.": "<6 months", "6-12 mdr.": "6–12 months", "12-24 mdr.": "12–24 months", "24+ mdr.": "24+ months",
           "total": "Total"},
}


def group_label(variable: str, level: str, lang: str) -> str:
    """A level of a background variable as the subject of a sentence ("mænd", "borgere på 18-29
    år", a municipality's name)."""
    if variable == "kommunekode":
        return municipality_name(level, lang)
    label = level_label(level, lang)
    template = TEXTS[lang].get(f"rep_level_{variable}")
    return template.format(level=label) if template else label[:1].lower() + label[1:]


def lang_of(value: str | None) -> str:
    return value if value in LANGS else "da"


def texts(lang: str) -> dict[str, str]:
    return TEXTS[lang]


def level_label(level: str, lang: str) -> str:
    return LEVEL_LABELS[lang].get(level, level)


@lru_cache(maxsize=1)
def questionnaire() -> dict:
    return json.loads((Path(__file__).parent / "kl_core_labels.json").read_text(encoding="utf-8"))


def themes() -> list[dict]:
    return questionnaire()["themes"]


def question_text(question: str, lang: str) -> str:
    for theme in themes():
        for q in theme["questions"]:
            if q["id"] == question:
                return q["text"][lang]
    return question


def question_label(question: str, lang: str) -> str:
    """The question's short text (axes, legends, slide titles); its id only for a question the
    questionnaire does not know."""
    for theme in themes():
        for q in theme["questions"]:
            if q["id"] == question:
                return (q.get("short") or q["text"])[lang]
    return question


@lru_cache(maxsize=1)
def municipalities() -> dict[str, str]:
    """kommunekode (3 digits, as stored) -> the municipality's name."""
    with (Path(__file__).parent / "municipalities.csv").open(encoding="utf-8", newline="") as handle:
        return {row["kommunekode"]: row["navn"] for row in csv.DictReader(handle)}


def municipality_name(kommunekode: str, lang: str) -> str:
    """The municipality's name; a code outside the list is said to be one ("Kommune 999")."""
    return municipalities().get(kommunekode.lstrip("0").zfill(3)) or f"{texts(lang)['kommune']} {kommunekode}"


def question_scale(question: str) -> str:
    for theme in themes():
        for q in theme["questions"]:
            if q["id"] == question:
                return q["scale"]
    return "enighed"


def code_label(question: str, code: str, lang: str) -> str:
    scale = questionnaire()["scales"].get(question_scale(question), {})
    return scale.get(code, {}).get(lang, code)


def fmt_number(value: float | None, lang: str, digits: int = 2) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if lang == "da" else text


def fmt_percent(value: float | None, lang: str, digits: int = 0) -> str:
    if value is None:
        return "—"
    text = f"{100 * value:.{digits}f}"
    return (text.replace(".", ",") + " %") if lang == "da" else text + " %"


MONTHS = {
    "da": ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober", "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"),
}


@lru_cache(maxsize=1)
def _danish_time() -> ZoneInfo | None:
    try:
        return ZoneInfo("Europe/Copenhagen")
    except ZoneInfoNotFoundError:
        return None


def fmt_datetime(moment: datetime, lang: str) -> str:
    """Danish local time ("6. december 2026 14:00"; "6 December 2026 14:00" in English); in UTC,
    said so, where the time zone database is missing."""
    zone = _danish_time()
    local = moment.astimezone(zone) if zone is not None else moment
    day = f"{local.day}. " if lang == "da" else f"{local.day} "
    text = f"{day}{MONTHS[lang][local.month - 1]} {local.year} {local:%H:%M}"
    return text if zone is not None else f"{text} UTC"


def release_label(phase: str, release: int, built_at: datetime, lang: str) -> str:
    return texts(lang)[f"release_{phase}"].format(n=release, when=fmt_datetime(built_at, lang))
