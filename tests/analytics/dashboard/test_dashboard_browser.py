"""The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by Playwright's Python
package; no browser download), served by uvicorn on a free port over the module's two demo
rounds: log in through the dev login form, open every page, check the charts load and their
tables carry the API's numbers, check another municipality's page is refused, and run axe-core
(npm axe-core, installed next to this file) for WCAG 2.1 A/AA on each page."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest


from dashboard_helpers import Tables
from services.analytics.dashboard.texts import question_label
from shared.auth.dev_issuer import create_app as issuer_app
from shared.auth.dev_issuer import load_clients
from shared.testing.fixtures import bearer, served
from shared.testing.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from shared.testing.browser import axe_audit as audit
from shared.testing.browser import axe_source as load_axe

HERE = Path(__file__).resolve().parent
R = "2026-1"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def axe_source() -> str:
    return load_axe(HERE)


@pytest.fixture(scope="module")
async def live(app_and_client, dev_issuer):
    app, _ = app_and_client
    app.state.dashboard_token_transport = httpx.ASGITransport(app=issuer_app(dev_issuer, load_clients()))
    # The module's app already runs its lifespan (consumers, publication cache): serve it as is.
    async with served(app) as url:
        yield url
    del app.state.dashboard_token_transport


@pytest.fixture(scope="module")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def charts_loaded(page) -> int:
    """Every chart image decoded (a broken or refused image has naturalWidth 0)."""
    await page.wait_for_load_state("load")
    sizes = await page.evaluate("Array.from(document.querySelectorAll('figure.chart img')).map(i => i.complete ? i.naturalWidth : -1)")
    assert sizes and all(s > 0 for s in sizes), sizes
    return len(sizes)


async def test_pages_in_chromium_with_axe(live, browser, axe_source, client, tokens):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    csp_errors: list[str] = []
    page.on("console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)

    await page.goto(f"{live}/dashboard/r/{R}/k/751")
    assert "/dashboard/login" in page.url
    await audit(page, axe_source, "login")
    await page.get_by_label("Klient-id").fill("aarhus-bi")
    await page.get_by_label("Klienthemmelighed").fill("dev-secret-aarhus")
    await page.get_by_role("button", name="Log ind").click()
    await page.wait_for_url(f"**/dashboard/r/{R}/k/751")
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["bb_dashboard_session"]["httpOnly"] and cookies["bb_dashboard_session"]["sameSite"] == "Lax"

    kl = tokens["kl"]
    q13 = (await client.get(f"/rounds/{R}/indicators", params={"question": "q13", "dimension": "maalgruppe", "level": "total"}, headers=bearer(kl))).json()["rows"]
    means = {r["kommunekode"]: r["mean"] for r in q13}

    pages = [("", "overview", 2), ("/q", "questions", 1), ("/q/q13", "question", 1), ("/breakdowns?question=q13", "breakdowns", 4),
             ("/trends?question=q13", "trends", 1), ("/fair?question=q13", "fair", 1), ("/compare", "compare", 1), ("/texts?question=q14", "texts", 0),
             ("/targets", "targets", 0)]
    for suffix, label, n_charts in pages:
        for lang in ("da", "en"):
            sep = "&" if "?" in suffix else "?"
            await page.goto(f"{live}/dashboard/r/{R}/k/751{suffix}" + (f"{sep}lang=en" if lang == "en" else ""))
            if n_charts:
                assert await charts_loaded(page) == n_charts, label
            await audit(page, axe_source, f"{label} ({lang})")
    # The overview's numbers as the browser shows them.
    await page.goto(f"{live}/dashboard/r/{R}/k/751")
    tables = Tables(await page.content())
    shown = [float(v) if v else None for v in tables.values["satisfaction"]]
    for got, want in zip(shown, (means["751"], means["national"])):
        assert (got is None and want is None) or math.isclose(got, want, rel_tol=1e-12)

    # How representative the answers are: the readings and both tables, read by the browser.
    assert await page.get_by_role("heading", name="Ligner svarene befolkningen?").is_visible()
    readings = await page.locator("#rep-readings li").all_inner_texts()
    assert [r.split(":")[0] for r in readings] == ["Aarhus", "Hele landet"] and all("R-indikator" in r for r in readings)
    assert await page.get_by_role("table", name="R-indikator").is_visible()
    assert await page.get_by_role("table", name="Svarprocent efter baggrund").is_visible()

    # Keyboard: the skip link comes first.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skipnav"

    # Another municipality: refused, with a page that says why and the way back.
    response = await page.goto(f"{live}/dashboard/r/{R}/k/101")
    assert response.status == 403
    assert await page.locator("h1").inner_text() == "Ingen adgang"
    assert "resultaterne for København" in await page.locator("#why").inner_text()
    await audit(page, axe_source, "refusal 403")
    for suffix, status, says in (("/q/q99", 404, "Spørgsmålet findes ikke"), ("/chart/nope.png", 404, "Figuren findes ikke"),
                                 ("/texts?lang=en", 403, "You do not have access to the results of København")):
        response = await page.goto(f"{live}/dashboard/r/{R}/k/{'751' if status == 404 else '101'}{suffix}")
        assert response.status == status and says in await page.locator("#why").inner_text(), suffix
        await audit(page, axe_source, f"refusal {suffix}")
    response = await page.goto(f"{live}/dashboard/r/nosuchround/k/751")
    assert response.status == 404 and "nosuchround" in await page.locator("#why").inner_text()
    await audit(page, axe_source, "refusal: no such round")
    await page.get_by_role("link", name="Til forsiden: runder og kommuner").click()
    await page.wait_for_url(f"**/dashboard/r/{R}/k/751")  # Aarhus' user: the start page leads to its round
    response = await page.goto(f"{live}/dashboard/r/{R}/k/101/chart/themes.png")
    assert response.status == 403
    # The comparison group's and the adjusted figures as the browser shows them equal the fair page's source
    await page.goto(f"{live}/dashboard/r/{R}/k/751/fair?question=q13")
    fair = [float(v) for v in Tables(await page.content()).values["fair"]]
    assert math.isclose(fair[0], means["751"], rel_tol=1e-12) and math.isclose(fair[4], means["national"], rel_tol=1e-12)
    chart_rows = Tables(await page.content()).tables["fair-q13"]
    assert [r[0] for r in chart_rows[1:]] == ["Rå score", "Justeret score", "Sammenlignelige kommuner", "Hele landet"]
    await page.goto(f"{live}/dashboard/r/{R}/k/751/texts?question=q14")
    assert await page.locator("ol.free-texts li").count() == 8
    response = await page.goto(f"{live}/dashboard/r/{R}/k/147/texts?question=q14")
    assert response.status == 403
    assert csp_errors == []
    await context.close()


async def test_municipal_oidc_login_in_chromium(live, browser, axe_source, monkeypatch):
    """The whole authorization-code flow in the browser: dashboard -> broker -> callback -> the
    page asked for."""
    from oidc_provider import Provider, serve

    async with serve(Provider()) as provider:
        monkeypatch.setenv("DASHBOARD_OIDC_ISSUER", provider.base)
        monkeypatch.setenv("DASHBOARD_OIDC_CLIENT_ID", provider.client_id)
        monkeypatch.setenv("DASHBOARD_OIDC_CLIENT_SECRET", provider.client_secret)
        provider.user = {"sub": "u-9", "preferred_username": "kbh-bruger", "roles": ["borgerblik-laes"], "kommunekode": "101"}
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{live}/dashboard/r/{R}/k/101/compare")
        assert "/dashboard/login" in page.url
        await audit(page, axe_source, "login with municipal login")
        await page.get_by_role("link", name="Log ind med kommunens login (Fælleskommunal Adgangsstyring)").click()
        await page.wait_for_url(f"**/dashboard/r/{R}/k/101/compare")
        assert await charts_loaded(page) == 1
        assert "kbh-bruger" in await page.content()
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["bb_dashboard_session"]["httpOnly"] and cookies["bb_dashboard_session"]["sameSite"] == "Lax"
        response = await page.goto(f"{live}/dashboard/r/{R}/k/751")
        assert response.status == 403
        await context.close()


async def test_logout_and_an_ended_session_in_chromium(live, browser, axe_source, app):
    """Logout is a form with its CSRF token; after it, and after an idle session, the dashboard
    sends the browser to the login page, which says why (in Danish)."""
    import hashlib
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from services.analytics.dashboard.models import DashboardSession

    context = await browser.new_context()
    page = await context.new_page()

    async def log_in() -> None:
        await page.goto(f"{live}/dashboard/r/{R}/k/751/targets")
        await page.get_by_label("Klient-id").fill("aarhus-bi")
        await page.get_by_label("Klienthemmelighed").fill("dev-secret-aarhus")
        await page.get_by_role("button", name="Log ind").click()
        await page.wait_for_url(f"**/dashboard/r/{R}/k/751/targets")

    await log_in()
    # the targets form posts with its token and the session
    await page.get_by_label("Værdi").fill("4,1")
    await page.get_by_role("button", name="Gem").click()
    await page.wait_for_url(f"**/dashboard/r/{R}/k/751/targets")
    assert "4,10" in await page.content()
    await page.get_by_role("button", name=f"Slet {question_label('q13', 'da')}").click()
    await page.wait_for_url(f"**/dashboard/r/{R}/k/751/targets")

    await page.get_by_role("button", name="Log ud (aarhus-bi)").click()
    await page.wait_for_url("**/dashboard/login")
    await audit(page, axe_source, "logged out")
    await page.goto(f"{live}/dashboard/r/{R}/k/751")
    assert "/dashboard/login" in page.url and "ended=1" not in page.url  # the cookie went with the session

    await log_in()
    cookie = next(c["value"] for c in await context.cookies() if c["name"] == "bb_dashboard_session")
    async with app.state.runtime.uow() as uow:
        await uow.session.execute(sa.update(DashboardSession).where(DashboardSession.id_hash == hashlib.sha256(cookie.encode()).hexdigest())
                                  .values(last_seen_at=datetime.now(UTC) - timedelta(hours=2)))
        await uow.commit()
    await page.goto(f"{live}/dashboard/r/{R}/k/751")
    assert "/dashboard/login" in page.url and "ended=1" in page.url
    assert await page.locator("#session-ended").inner_text() == "Din session er udløbet eller afsluttet. Log ind igen."
    await audit(page, axe_source, "session ended")
    await context.close()
