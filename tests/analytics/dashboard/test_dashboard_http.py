"""The dashboard over HTTP: pages carry the API's numbers, suppressed cells read as suppressed,
a municipality cannot open another's pages, downloads (PNG, SVG, PPTX with native charts, PDF)
hold the same figures, targets are drawn, and the dev login opens a server-side session."""

from __future__ import annotations

import asyncio
import io
import math
import re
import shutil

import httpx
import pytest
from pptx import Presentation

from dashboard_helpers import Tables, da_number, demo_round, form_token, model_variables
from services.analytics.dashboard import sessions
from services.analytics.dashboard.texts import level_label, question_label
from shared.auth.dev_issuer import create_app as issuer_app
from shared.auth.dev_issuer import load_clients
from shared.testing.fixtures import bearer

R = "2026-1"


async def api_rows(client, token, **params) -> list[dict]:
    r = await client.get(f"/rounds/{params.pop('round_id', R)}/indicators", params=params, headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["rows"]


async def test_overview_and_question_pages_show_the_api_numbers(client, tokens):
    kl = tokens["kl"]
    r = await client.get(f"/dashboard/r/{R}/k/751", headers=bearer(kl))
    assert r.status_code == 200, r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    page = Tables(r.text)
    own, national = [
        (await api_rows(client, kl, question="q13", dimension="maalgruppe", kommunekode=k, level="total"))[0] for k in ("751", "national")
    ]
    values = page.values["satisfaction"]
    for shown, row in zip(values, (own, national)):
        if row["suppressed"]:
            assert shown == ""
        else:
            assert math.isclose(float(shown), row["mean"], rel_tol=1e-12)
    assert f"{national['mean']:.2f}".replace(".", ",") in r.text
    rates = (await client.get(f"/rounds/{R}/response-rates", headers=bearer(kl))).json()["rows"]
    national_rate = next(x for x in rates if x["kommunekode"] == "national")
    assert page.tables["rates"][2][0] == "Hele landet"
    assert page.tables["rates"][2][2] == str(national_rate["answers"])
    assert '<img src="/dashboard/r/2026-1/k/751/chart/themes.svg"' in r.text and 'alt="De fem temaer.' in r.text

    # English.
    r = await client.get(f"/dashboard/r/{R}/k/751", params={"lang": "en"}, headers=bearer(kl))
    assert r.status_code == 200 and '<html lang="en">' in r.text and "Whole country" in r.text
    assert f"{national['mean']:.2f}" in r.text

    # Question page: the distribution table equals the API's shares.
    r = await client.get(f"/dashboard/r/{R}/k/national/q/q13", headers=bearer(kl))
    assert r.status_code == 200
    dist = Tables(r.text).tables["dist-q13"]
    assert dist[0] == ["", "Hele landet"]
    assert dist[1][0] == "Meget tilfreds"
    assert dist[1][1].startswith(f"{100 * national['share_5']:.0f} %")
    assert dist[6][1].startswith(f"{100 * national['dont_know_share']:.0f} %")


async def test_breakdowns_show_suppressed_cells_as_suppressed_never_zero(client, tokens):
    kl = tokens["kl"]
    rows = await api_rows(client, kl, question="q13")
    hidden = [r for r in rows if r["suppressed"] and r["kommunekode"] != "national"]
    assert hidden, "the synthetic round has suppressed cells"
    checked = 0
    for cell in hidden:
        if cell["level"] == "total":
            continue
        k, dim, level = cell["kommunekode"], cell["dimension"], cell["level"]
        r = await client.get(f"/dashboard/r/{R}/k/{k}/breakdowns", params={"question": "q13"}, headers=bearer(kl))
        assert r.status_code == 200
        table = Tables(r.text).tables[f"bd-{dim}-q13"]
        labels = {"M": "Mænd", "K": "Kvinder"}
        row = next(x for x in table[1:] if x[0].lower() == labels.get(level, level).lower())
        assert row[1] == "— (undertrykt)", row
        checked += 1
        # the published ones carry the API's mean (2 decimals) and a caution star when flagged
        for other in [c for c in rows if c["kommunekode"] == k and c["dimension"] == dim and not c["suppressed"]]:
            label = "I alt" if other["level"] == "total" else labels.get(other["level"], other["level"])
            shown = next(x for x in table[1:] if x[0].lower() == label.lower())[1]
            assert math.isclose(da_number(shown), other["mean"], abs_tol=0.005001)
            assert shown.endswith("*") == other["caution"]
        if checked >= 3:
            break
    assert checked


async def test_municipality_cannot_open_another_municipality(client, tokens):
    aarhus = bearer(tokens["aarhus"])
    assert (await client.get(f"/dashboard/r/{R}/k/751", headers=aarhus)).status_code == 200
    assert (await client.get(f"/dashboard/r/{R}/k/national", headers=aarhus)).status_code == 200
    for path in ("", "/q/q13", "/breakdowns", "/trends", "/fair", "/compare", "/texts", "/targets", "/chart/themes.png",
                 "/chart/bd-gender-q13.pptx", "/chart/compare.pptx", "/chart/fair-q13.png", "/report.pptx", "/report.pdf"):
        r = await client.get(f"/dashboard/r/{R}/k/101{path}", headers=aarhus)
        assert r.status_code == 403, (path, r.status_code)
        # a page that says why, and the way back
        assert r.headers["content-type"].startswith("text/html") and "<h1>Ingen adgang</h1>" in r.text, path
        assert "resultaterne for København" in r.text and 'href="/dashboard/"' in r.text, path
    r = await client.post(f"/dashboard/r/{R}/k/101/targets", data={"question": "q13", "value": "1"}, headers=aarhus)
    assert r.status_code == 403
    r = await client.get(f"/dashboard/r/{R}/k/751", headers=bearer(tokens["noscope"]), params={"lang": "en"})
    assert r.status_code == 403 and "does not have the right to read results" in r.text and "Log in as another user" in r.text
    r = await client.get(f"/dashboard/r/{R}/k/751/q/q99", headers=aarhus)
    assert r.status_code == 404 and "<h1>Siden findes ikke</h1>" in r.text and "Spørgsmålet findes ikke" in r.text
    # no token: a browser is sent to the login page
    r = await client.get(f"/dashboard/r/{R}/k/751")
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login?next=")
    # the home page of a one-municipality user goes straight to its latest round
    r = await client.get("/dashboard/", headers=aarhus)
    assert r.status_code == 303 and r.headers["location"] == f"/dashboard/r/{R}/k/751"


async def test_dev_login_opens_a_session_with_an_httponly_lax_cookie(client, app, dev_issuer, monkeypatch):
    monkeypatch.delenv("DASHBOARD_DEV_LOGIN", raising=False)
    monkeypatch.delenv("DASHBOARD_TOKEN_URL", raising=False)
    app.state.dashboard_token_transport = httpx.ASGITransport(app=issuer_app(dev_issuer, load_clients()))

    async def login(**fields) -> httpx.Response:
        return await client.post("/dashboard/login", data={**fields, "csrftoken": await form_token(client)})

    try:
        r = await client.get("/dashboard/login")
        assert r.status_code == 200 and 'name="client_secret"' in r.text
        r = await login(client_id="aarhus-bi", client_secret="wrong", next="/dashboard/")
        assert r.status_code == 401 and "Login mislykkedes" in r.text
        r = await login(client_id="momentum-dev", client_secret="dev-secret-momentum")
        assert r.status_code == 401  # a client without aggregates:read gets no session
        r = await login(client_id="aarhus-bi", client_secret="dev-secret-aarhus", next=f"/dashboard/r/{R}/k/751/trends")
        assert r.status_code == 303 and r.headers["location"] == f"/dashboard/r/{R}/k/751/trends"
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(sessions.HTTP_COOKIE)).lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/dashboard" in cookie
        assert (await client.get(f"/dashboard/r/{R}/k/751")).status_code == 200
        assert (await client.get(f"/dashboard/r/{R}/k/101")).status_code == 403
        r = await client.post("/dashboard/logout", data={"csrftoken": await form_token(client, f"/dashboard/r/{R}/k/751")})
        assert r.status_code == 303
        assert (await client.get(f"/dashboard/r/{R}/k/751")).status_code == 303
        # an open redirect is refused
        r = await login(client_id="aarhus-bi", client_secret="dev-secret-aarhus", next="https://evil.example/")
        assert r.headers["location"] == "/dashboard/"
    finally:
        del app.state.dashboard_token_transport
    token = await form_token(client)
    monkeypatch.setenv("DASHBOARD_DEV_LOGIN", "false")
    r = await client.post("/dashboard/login", data={"client_id": "aarhus-bi", "client_secret": "dev-secret-aarhus", "csrftoken": token})
    assert r.status_code == 403


def chart_values(pptx_bytes: bytes) -> list[dict[str, list]]:
    deck = Presentation(io.BytesIO(pptx_bytes))
    out = []
    for slide in deck.slides:
        for shape in slide.shapes:
            if shape.has_chart:
                chart = shape.chart
                out.append({"title": slide.shapes.title.text, "categories": list(chart.plots[0].categories),
                            **{s.name: list(s.values) for s in chart.plots[0].series}})
    return out


async def test_chart_downloads_hold_the_api_numbers(client, tokens):
    kl = tokens["kl"]
    base = f"/dashboard/r/{R}/k/147"
    r = await client.get(f"{base}/chart/bd-maalgruppe-q13.png", headers=bearer(kl))
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n" and r.headers["content-type"] == "image/png"
    r = await client.get(f"{base}/chart/bd-maalgruppe-q13.svg", headers=bearer(kl))
    assert r.status_code == 200 and b"<svg" in r.content[:500]
    r = await client.get(f"{base}/chart/bd-maalgruppe-q13.pptx", headers=bearer(kl))
    assert r.status_code == 200
    [chart] = chart_values(r.content)
    rows = await api_rows(client, kl, question="q13", dimension="maalgruppe")
    for name, k in (("Frederiksberg", "147"), ("Hele landet", "national")):
        by_level = {x["level"]: x for x in rows if x["kommunekode"] == k}
        expected = [by_level["total"]["mean"]] + [by_level[lvl]["mean"] for lvl in sorted(set(by_level) - {"total"})]
        assert len(chart[name]) == len(expected)
        for got, want in zip(chart[name], expected):
            assert (got is None and want is None) or math.isclose(got, want, rel_tol=1e-12), (name, chart[name], expected)
    assert any(v is None for v in chart["Frederiksberg"] + chart["Hele landet"]) == any(x["suppressed"] for x in rows if x["kommunekode"] in ("147", "national"))
    assert (await client.get(f"{base}/chart/nope.png", headers=bearer(kl))).status_code == 404
    assert (await client.get(f"{base}/chart/dist-q99.png", headers=bearer(kl))).status_code == 404


async def test_round_deck_and_pdf(client, tokens):
    kl = tokens["kl"]
    r = await client.get(f"/dashboard/r/{R}/k/751/report.pptx", headers=bearer(kl))
    assert r.status_code == 200 and r.headers["content-disposition"].endswith('.pptx"')
    charts = chart_values(r.content)
    assert len(charts) == 10  # themes, questions, distribution, 4 breakdowns, trend, comparable municipalities, fair
    short = {q: question_label(q, "da") for q in ("q1", "q4", "q7", "q11", "q13")}
    questions = next(c for c in charts if c["categories"] == list(short.values()))
    totals = {(x["question"], x["kommunekode"]): x for x in await api_rows(client, kl, dimension="maalgruppe", level="total")}
    for name, k in (("Aarhus", "751"), ("Hele landet", "national")):
        for q, got in zip(short, questions[name]):
            want = totals[(q, k)]["mean"]
            assert (got is None and want is None) or math.isclose(got, want, rel_tol=1e-12)
    trend = next(c for c in charts if c["categories"] == ["2025-1", "2026-1"])
    api_trend = (await client.get("/trends", params={"question": "q13", "kommunekode": "national", "indicator": "mean"}, headers=bearer(kl))).json()["rows"]
    assert [round(v, 12) for v in trend["Hele landet"]] == [round(x["value"], 12) for x in api_trend]

    r = await client.get(f"/dashboard/r/{R}/k/751/report.pdf", headers=bearer(kl))
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(r.content)).pages) == 1 + 2 * 10


async def test_targets_are_stored_and_drawn(client, tokens):
    kbh = bearer(tokens["kbh"])
    base = f"/dashboard/r/{R}/k/101"
    r = await client.post(f"{base}/targets", data={"question": "q13", "indicator": "mean", "value": "4,2"}, headers=kbh)
    assert r.status_code == 303
    assert (await client.post(f"{base}/targets", data={"question": "q13", "value": "7"}, headers=kbh)).status_code == 400
    r = await client.get(f"{base}/targets", headers=kbh)
    assert Tables(r.text).tables["targets"][1][:3] == ["Samlet tilfredshed", "Gennemsnit (1–5)", "4,20"]
    r = await client.get(f"{base}/trends", params={"question": "q13"}, headers=kbh)
    assert "Mål: 4,2" in r.text
    r = await client.get(f"{base}/chart/trend-q13.pptx", headers=kbh)
    [chart] = chart_values(r.content)
    assert chart["Mål: 4,2"] == [4.2, 4.2]
    r = await client.get(f"{base}", headers=kbh)
    assert "Mål: 4,2" in r.text
    # another municipality does not see Copenhagen's target
    r = await client.get(f"/dashboard/r/{R}/k/751/trends", params={"question": "q13"}, headers=bearer(tokens["aarhus"]))
    assert "Mål: 4,2" not in r.text
    await client.post(f"{base}/targets", data={"question": "q13", "indicator": "mean", "delete": "1"}, headers=kbh)
    assert "Ingen mål sat" in (await client.get(f"{base}/targets", headers=kbh)).text


async def test_free_texts_per_municipality_with_the_count_rule(client, tokens):
    aarhus, kl = bearer(tokens["aarhus"]), bearer(tokens["kl"])
    r = await client.get(f"/dashboard/r/{R}/k/751/texts", params={"question": "q14"}, headers=aarhus)
    assert r.status_code == 200
    assert 'data-count="8"' in r.text
    shown = re.findall(r"<li>(Uddybning[^<]*)</li>", r.text)
    assert sorted(shown) == sorted(f"Uddybning 751-{i}" for i in range(1, 9))
    # Copenhagen's and Svendborg's texts never appear on Aarhus' page, and Aarhus may not open theirs
    assert "Svar 101-" not in r.text and "Svar 147-" not in r.text
    for path in ("/dashboard/r/2026-1/k/147/texts", "/dashboard/r/2026-1/k/national/texts"):
        assert (await client.get(path, headers=aarhus)).status_code == 403
    # 147 has 3 free texts to q14: fewer than 5, so none is shown and the count is not given
    r = await client.get(f"/dashboard/r/{R}/k/147/texts", params={"question": "q14"}, headers=kl)
    assert 'data-suppressed="true"' in r.text and "Uddybning" not in r.text and "data-count" not in r.text
    # q15: everybody; listed alphabetically, paged
    r = await client.get(f"/dashboard/r/{R}/k/751/texts", params={"question": "q15"}, headers=aarhus)
    count = int(r.text.split('data-count="')[1].split('"')[0])
    assert count > 50
    texts = re.findall(r"<li>(Svar 751-[^<]*)</li>", r.text)
    assert len(texts) == 50 and texts == sorted(texts)
    r2 = await client.get(f"/dashboard/r/{R}/k/751/texts", params={"question": "q15", "page": 2}, headers=aarhus)
    more = re.findall(r"<li>(Svar 751-[^<]*)</li>", r2.text)
    assert len(texts) + len(more) == min(count, 100) and not set(texts) & set(more)
    # KL reads the whole country
    r = await client.get(f"/dashboard/r/{R}/k/national/texts", params={"question": "q14"}, headers=kl)
    assert r.status_code == 200 and 'data-count="11"' in r.text
    assert (await client.get(f"/dashboard/r/{R}/k/751/texts", params={"question": "q99"}, headers=kl)).status_code == 404


@pytest.mark.skipif(not shutil.which("libreoffice"), reason="needs LibreOffice (apt-get install -y --no-install-recommends libreoffice-impress-nogui)")
async def test_deck_opens_in_libreoffice(client, tokens, tmp_path):
    r = await client.get(f"/dashboard/r/{R}/k/101/report.pptx", headers=bearer(tokens["kl"]))
    deck = tmp_path / "round.pptx"
    deck.write_bytes(r.content)
    proc = await asyncio.create_subprocess_exec(
        "libreoffice", f"-env:UserInstallation=file://{tmp_path}/lo-profile", "--headless", "--convert-to", "pdf",
        "--outdir", str(tmp_path), str(deck), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, (out, err)
    from pypdf import PdfReader

    pdf = PdfReader(str(tmp_path / "round.pdf"))
    assert len(pdf.pages) == 1 + 10  # title slide and one slide per chart
    assert "København" in pdf.pages[1].extract_text()


async def test_pages_say_which_release_they_show(client, tokens):
    kl = tokens["kl"]
    latest = (await client.get(f"/rounds/{R}/releases", headers=bearer(kl))).json()[-1]
    for path in ("", "/q", "/breakdowns"):
        r = await client.get(f"/dashboard/r/{R}/k/751{path}", headers=bearer(kl))
        assert r.status_code == 200, r.text
        shown = re.search(r'<p class="release">([^<]*)</p>', r.text).group(1)
        assert re.fullmatch(rf"Foreløbige tal · udgivelse {latest['release']} · \d{{1,2}}\. [a-zæø]+ \d{{4}} \d{{2}}:\d{{2}}", shown), shown
    r = await client.get(f"/dashboard/r/{R}/k/751", params={"lang": "en"}, headers=bearer(kl))
    assert f"Preliminary figures · release {latest['release']} · " in r.text


def deck_text(content: bytes) -> str:
    """Every word a reader meets in a deck: shapes, tables, notes, charts' categories and series."""
    parts = []
    for slide in Presentation(io.BytesIO(content)).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
            if shape.has_chart:
                plot = shape.chart.plots[0]
                parts += [str(c) for c in plot.categories] + [s.name for s in plot.series]
        if slide.has_notes_slide:
            parts.append(slide.notes_slide.notes_text_frame.text)
    return "\n".join(parts)


BARE_ID = re.compile(r"\bq\d{1,2}\b|\bKommune \d{3,4}\b|\bMunicipality \d{3,4}\b")


@pytest.mark.parametrize("lang", ["da", "en"])
async def test_deck_and_pdf_name_municipalities_and_questions_in_words(client, tokens, lang):
    """The demo round's deck and PDF, as a committee reads them: municipalities and questions by
    name (the 98 names as data), never a bare question id or "Kommune 101"."""
    from pypdf import PdfReader

    kl = bearer(tokens["kl"])
    for kommune, name in (("101", "København"), ("147", "Frederiksberg"), ("751", "Aarhus")):
        pptx = await client.get(f"/dashboard/r/{R}/k/{kommune}/report.pptx", params={"lang": lang}, headers=kl)
        pdf = await client.get(f"/dashboard/r/{R}/k/{kommune}/report.pdf", params={"lang": lang}, headers=kl)
        assert pptx.status_code == 200 and pdf.status_code == 200
        pdf_text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        for label, text in (("pptx", deck_text(pptx.content)), ("pdf", pdf_text)):
            assert not BARE_ID.findall(text), (kommune, label, sorted(set(BARE_ID.findall(text))))
            assert name in text, (kommune, label)
            assert question_label("q13", lang) in text and question_label("q1", lang) in text, (kommune, label)
    # target groups by their display names
    r = await client.get(f"/dashboard/r/{R}/k/751/breakdowns", params={"question": "q13"}, headers=kl)
    assert "Aktivitetsparate" in r.text and ">aktivitetsparate<" not in r.text


def test_the_98_municipalities_are_data():
    from services.analytics.dashboard.texts import municipalities, municipality_name

    names = municipalities()
    assert len(names) == 98 and len(set(names.values())) == 98
    assert all(re.fullmatch(r"[1-8]\d\d", code) for code in names)
    assert (names["101"], names["147"], names["751"], names["400"], names["825"]) == ("København", "Frederiksberg", "Aarhus", "Bornholm", "Læsø")
    assert municipality_name("0101", "da") == "København"
    assert municipality_name("999", "da") == "Kommune 999"


async def test_the_service_address_leads_to_the_dashboard(client, tokens):
    r = await client.get("/")
    assert r.status_code == 307 and r.headers["location"] == "/dashboard/"
    r = await client.get("/", headers=bearer(tokens["kl"]), follow_redirects=True)
    assert r.status_code == 200 and str(r.url).endswith("/dashboard/") and "Aarhus" in r.text


def _own_cells(round_id: str, kommune: str | None):
    """The demo round's sampled citizens and who of them answered, as SampleCells, counted from
    the events themselves (an independent count of what the page rests on)."""
    from services.analytics.domain.representativeness import SampleCell

    rnd, responses = demo_round(round_id)
    answered = {r.pseudonym for r in responses}
    cells: dict[tuple, list] = {}
    for chunk in rnd.samples:
        for p in chunk.persons:
            if kommune is None or chunk.kommunekode == kommune:
                key = ((chunk.kommunekode,) if kommune is None else ()) + (p.maalgruppe, p.bands.gender, p.bands.age_band,
                                                                            p.bands.duration_band)
                c = cells.setdefault((key, p.design_weight), [0, 0])
                c[0] += 1
                c[1] += p.pseudonym in answered
    return [SampleCell(key, w, s, a) for (key, w), (s, a) in sorted(cells.items())]


def _project(cells, variables: tuple[str, ...], model: tuple[str, ...]):
    """The cells with only ``model``'s values."""
    from services.analytics.domain.representativeness import SampleCell

    at = [variables.index(v) for v in model]
    return [SampleCell(tuple(c.values[j] for j in at), c.weight, c.sampled, c.answered) for c in cells]


async def test_the_overview_shows_how_representative_the_answers_are(client, tokens):
    """R-indicator, CV and partial R-indicators for the municipality and the country, as the domain
    computes them from the sample and the answers of the release; the municipality as a variable
    of the country's model, and its name in the reading, only for KL; a plain Danish reading."""
    from services.analytics.domain.representativeness import representativeness

    variables = ("maalgruppe", "gender", "age_band", "duration_band")
    r = await client.get(f"/dashboard/r/{R}/k/751", headers=bearer(tokens["aarhus"]))
    assert r.status_code == 200
    page = Tables(r.text)
    # The model takes the variables whose every level the page shows (the release published it).
    own_model, country_model = model_variables(r.text)
    assert "age_band" in own_model and "age_band" in country_model
    aarhus = representativeness(_project(_own_cells(R, "751"), variables, own_model), own_model)
    country = representativeness(_project(_own_cells(R, None), ("kommunekode", *variables), ("kommunekode", *country_model)),
                                 ("kommunekode", *country_model))
    indicators = {row[0]: row[1:] for row in page.tables["rep-indicators"][1:]}
    fmt = lambda v: f"{v:.2f}".replace(".", ",")  # noqa: E731
    assert indicators["R-indikator"] == [fmt(aarhus.r_indicator), fmt(country.r_indicator)]
    assert indicators["Variationskoefficient for svarsandsynligheden"] == [fmt(aarhus.cv), fmt(country.cv)]
    assert indicators["Delvis R-indikator: kommune"] == ["–", "— (undertrykt)"]
    # The demo's non-respondents lean young (dashboard_helpers.sampled_persons): Aarhus' R below
    # 0.8 and the country's between 0.8 and 0.9, age the variable that matters most.
    assert aarhus.r_indicator < 0.8 <= country.r_indicator < 0.9
    text = " ".join(re.sub(r"<[^>]+>", " ", r.text).split())
    assert "Ligner svarene befolkningen?" in text and "Aarhus: Svarene ligner ikke befolkningen godt" in text
    assert "Forskellen er størst på alder: borgere på 18-29 år svarer mindre end borgere på" in text
    assert "Hele landet: Svarene ligner befolkningen rimeligt" in text
    # Rates of the sampled by background: the line total and each shown level equal the count.
    rates = {row[0]: row[1:] for row in page.tables["rep-rates"][1:]}
    mine = _own_cells(R, "751")
    total = sum(c.answered for c in mine) / sum(c.sampled for c in mine)
    assert rates["I alt"][0] == f"{100 * total:.0f} %"
    labels = {"maalgruppe": "Målgruppe", "gender": "Køn", "age_band": "Alder", "duration_band": "Forløbets varighed"}
    for j, (variable, label) in enumerate(labels.items()):
        levels = {c.values[j] for c in mine}
        for level in levels:
            sampled = sum(c.sampled for c in mine if c.values[j] == level)
            answered = sum(c.answered for c in mine if c.values[j] == level)
            shown = rates[f"{label}: {level_label(level, 'da')}"][0]
            if min(answered, sampled - answered) < 5:
                assert shown == "— (undertrykt)", (variable, level)
            elif shown != "— (undertrykt)":
                assert shown == f"{100 * answered / sampled:.0f} %", (variable, level)

    # KL sees the municipality's partial R-indicator of the country's model.
    r = await client.get(f"/dashboard/r/{R}/k/751", headers=bearer(tokens["kl"]))
    indicators = {row[0]: row[1:] for row in Tables(r.text).tables["rep-indicators"][1:]}
    assert indicators["Delvis R-indikator: kommune"][1] == fmt(country.partial_unconditional["kommunekode"])
    # In English too.
    r = await client.get(f"/dashboard/r/{R}/k/751", params={"lang": "en"}, headers=bearer(tokens["aarhus"]))
    assert "Do the answers resemble the population?" in r.text and "R-indicator" in r.text
