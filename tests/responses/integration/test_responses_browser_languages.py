"""Every language in headless Chromium (served by uvicorn against real PostgreSQL and a real
broker): the demo questionnaire answered from the language chosen on the first page to the
receipt, and axe-core (WCAG 2.1 A/AA) on every page in every language, error states included;
Arabic is laid out right to left, mirrored (measured boxes, and a screenshot for people)."""

from __future__ import annotations

import sqlalchemy as sa
import pytest

from responses_helpers import issue, token_hash
from services.responses.domain.languages import LANGUAGES, direction
from services.responses.models import Response
from shared.testing.browser import needs_chromium
from test_responses_browser import Checked

pytestmark = needs_chromium


def _q(lang: str) -> str:
    return "" if lang == "da" else f"?lang={lang}"


async def _answer_every_choice(page) -> None:
    """Choose the second option of every radio group on the page, by its label."""
    names = await page.evaluate("[...new Set([...document.querySelectorAll('input[type=radio]')].map(e => e.name))]")
    for name in names:
        await page.locator(f'label[for="{name}-2"]').click()


async def _language_of(page) -> tuple[str, str]:
    return await page.get_attribute("html", "lang"), await page.get_attribute("html", "dir")


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_demo_questionnaire_answered_in_every_language(live, browser, axe_source, kafka_bootstrap, module_env, lang):
    app, base = live
    [token] = await issue(app, kafka_bootstrap, module_env["KAFKA_TOPIC_PREFIX"])
    context = await browser.new_context(viewport={"width": 375, "height": 740})
    page = await context.new_page()
    checked = Checked(page, axe_source)

    await page.goto(f"{base}/s/{token}")
    if lang != "da":  # the citizen picks the language on the first page
        await page.locator(f'.survey-choose-lang a[hreflang="{lang}"]').click()
        await page.wait_for_url(f"{base}/s/{token}{_q(lang)}")
    assert await _language_of(page) == (lang, direction(lang))
    await checked.audit(f"{lang}: start page")

    await page.locator("main a.button-primary").click()
    for n in range(1, 6):
        await page.wait_for_url(f"{base}/s/{token}/side/{n}{_q(lang)}")
        assert await _language_of(page) == (lang, direction(lang))
        assert await page.locator('main [lang="da"]').count() == 0  # nothing fell back to Danish
        await checked.audit(f"{lang}: page {n}")
        await _answer_every_choice(page)
        if n < 5:
            await page.locator('button[value="next"]').click()

    await page.locator('button[value="submit"]').click()  # q13 answered: q14 is added first
    await page.wait_for_selector("#q14")
    await checked.audit(f"{lang}: page 5 with the follow-up question")
    await page.locator("#q15").fill("x" * 2001)
    await page.locator('button[value="submit"]').click()
    await page.wait_for_selector(".alert-error")
    await checked.audit(f"{lang}: page 5 with an error")
    await page.locator("#q15").fill("Mere tid")
    await page.locator('button[value="submit"]').click()
    await page.wait_for_url(f"{base}/s/{token}/tak{_q(lang)}")
    assert await _language_of(page) == (lang, direction(lang))
    await checked.audit(f"{lang}: thank-you page")
    await context.close()

    async with app.state.runtime.sessionmaker() as session:
        row = (await session.execute(sa.select(Response).where(Response.token_hash == token_hash(token)))).scalar_one()
    assert row.language == lang
    assert row.answers["q1"] == "enig" and row.answers["q13"] == "tilfreds" and row.answers["q15"] == "Mere tid"


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_every_other_page_passes_axe_in_every_language(live, browser, axe_source, kafka_bootstrap, module_env, lang):
    from datetime import timedelta

    app, base = live
    prefix = module_env["KAFKA_TOPIC_PREFIX"]
    token, saving = await issue(app, kafka_bootstrap, prefix, 2)
    [expired] = await issue(app, kafka_bootstrap, prefix, expires_in=timedelta(days=-1))
    q = _q(lang)
    context = await browser.new_context()
    page = await context.new_page()
    checked = Checked(page, axe_source)

    await page.goto(f"{base}/s/{saving}/side/1{q}")
    await page.locator('button[value="save"]').click()
    await page.wait_for_url(f"{base}/s/{saving}/gemt{q}")
    await checked.audit(f"{lang}: saved page")

    await page.goto(f"{base}/s/{token}/afmeld{q}")
    await checked.audit(f"{lang}: opt-out page")
    await page.locator("main button.button-primary").click()
    await page.wait_for_url(f"{base}/s/{token}/afmeldt{q}")
    await checked.audit(f"{lang}: opted-out page")

    for path, status, label in [
        (f"/s/{token}{q}", 409, "opted-out link"),
        (f"/s/{expired}{q}", 410, "expired link"),
        (f"/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA{q}", 404, "unknown link"),
        (f"/s/{saving}/nope{q}", 404, "no such page"),
        (f"/tilgaengelighed{q}", 200, "accessibility statement"),
    ]:
        response = await page.goto(base + path)
        assert response.status == status, label
        assert await _language_of(page) == (lang, direction(lang)), label
        await checked.audit(f"{lang}: {label}")

    await page.goto(f"{base}/s/{saving}/side/2{q}")
    await context.clear_cookies()
    await page.locator('button[value="next"]').click()
    await page.wait_for_selector("main h1")
    assert await _language_of(page) == (lang, direction(lang))
    await checked.audit(f"{lang}: CSRF failure page")
    await context.close()


async def _text_box(page, selector: str) -> dict:
    """The box of the text inside ``selector`` (not of the block, which spans the column)."""
    return await page.evaluate(
        """(selector) => { const range = document.createRange();
            range.selectNodeContents(document.querySelector(selector));
            const r = range.getBoundingClientRect(); return {left: r.left, right: r.right}; }""",
        selector,
    )


async def _layout(page) -> dict:
    form = await page.locator("main form").bounding_box()
    legend = await _text_box(page, "#q1-legend")
    label = await _text_box(page, 'label[for="q1-1"]')
    radio = await page.locator("#q1-1").bounding_box()
    forward = await page.locator('button[value="next"]').bounding_box()
    save = await page.locator('button[value="save"]').bounding_box()
    site = await _text_box(page, ".survey-site")
    return {"form_left": form["x"], "form_right": form["x"] + form["width"], "legend": legend, "label": label,
            "radio_left": radio["x"], "radio_right": radio["x"] + radio["width"], "forward": forward["x"], "save": save["x"],
            "site": site}


async def test_arabic_is_right_to_left_and_mirrored(live, browser, axe_source, kafka_bootstrap, module_env, tmp_path):
    """Measured in the browser at desktop width: in Arabic the question starts at the right edge,
    each radio stands to the right of its label, the forward button is right of the save
    button and the site name is at the right; in Danish each is the other way round. The answer
    scale keeps its reading order (best first, top to bottom). The language is switched with a
    plain link, JavaScript off."""
    app, base = live
    [token] = await issue(app, kafka_bootstrap, module_env["KAFKA_TOPIC_PREFIX"])
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{base}/s/{token}/side/1")
    danish = await _layout(page)
    await page.screenshot(path=str(tmp_path / "page1-da.png"), full_page=True)
    await page.locator('.survey-langs a[hreflang="ar"]').click()  # switch on any page, no JavaScript
    await page.wait_for_url(f"{base}/s/{token}/side/1?lang=ar")
    assert await _language_of(page) == ("ar", "rtl")
    arabic = await _layout(page)
    await page.screenshot(path=str(tmp_path / "page1-ar.png"), full_page=True)

    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 24  # the form group's padding and error border

    # Danish: from the left edge; Arabic: from the right edge, and not from the left.
    assert near(danish["legend"]["left"], danish["form_left"]) and not near(danish["legend"]["right"], danish["form_right"])
    assert near(arabic["legend"]["right"], arabic["form_right"]) and not near(arabic["legend"]["left"], arabic["form_left"])
    assert danish["radio_right"] <= danish["label"]["left"] and arabic["radio_left"] >= arabic["label"]["right"]
    assert danish["forward"] < danish["save"] and arabic["forward"] > arabic["save"]
    assert danish["site"]["left"] < 640 < arabic["site"]["left"]
    # The scale in reading order: best first, from the top, in both directions.
    for n in range(1, 6):
        upper, lower = await page.locator(f"#q1-{n}").bounding_box(), await page.locator(f"#q1-{n + 1}").bounding_box()
        assert upper["y"] < lower["y"]
    assert await page.locator('label[for="q1-1"]').inner_text() == "أوافق بشدة"
    # Numbers and the link stay readable: the page count keeps its digits in order.
    assert "الصفحة 1 من 5" in await page.locator(".survey-progress").inner_text()
    assert (tmp_path / "page1-ar.png").stat().st_size > 10_000
    await context.close()
