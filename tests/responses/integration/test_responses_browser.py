"""The real form in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python
package; no browser download), served by uvicorn on a free port against real PostgreSQL and a
real broker: fill, save, resume, submit, opt out, keyboard only, with JavaScript off, and
axe-core (npm axe-core) on every page including error states: no WCAG 2.1 A/AA violations."""

from __future__ import annotations

from datetime import timedelta



from responses_helpers import issue
from shared.testing.browser import WCAG_TAGS, needs_chromium

pytestmark = needs_chromium


class Checked:
    """A page plus the checks every page gets: axe WCAG 2.1 A/AA and no CSP violations."""

    def __init__(self, page, axe: str) -> None:
        self.page, self.axe, self.csp_errors, self.audited = page, axe, [], []
        page.on("console", lambda msg: self.csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)

    async def audit(self, label: str) -> None:
        # Injected through the DevTools protocol, so the page's CSP (no inline script) stays on.
        await self.page.evaluate(self.axe)
        result = await self.page.evaluate(
            """async (tags) => {
                const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
                return {passes: result.passes.length, violations: result.violations.map(v => ({id: v.id,
                    impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))};
            }""",
            WCAG_TAGS,
        )
        assert result["passes"] > 5, f"axe did not really run on {label}"  # guards against a silent no-op
        assert result["violations"] == [], f"axe on {label}: {result['violations']}"
        assert self.csp_errors == [], f"CSP violations on {label}: {self.csp_errors}"
        self.audited.append(label)


async def _tab_to(page, predicate_js: str, limit: int = 60) -> None:
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"(() => {{ const el = document.activeElement; return !!el && ({predicate_js}); }})()"):
            return
    raise AssertionError(f"keyboard focus never reached {predicate_js}")


async def test_keyboard_only_fill_save_resume_and_submit(live, browser, axe_source, kafka_bootstrap, module_env):
    app, base = live
    [token] = await issue(app, kafka_bootstrap, module_env["KAFKA_TOPIC_PREFIX"])
    context = await browser.new_context(viewport={"width": 375, "height": 740})  # a phone
    page = await context.new_page()
    checked = Checked(page, axe_source)

    await page.goto(f"{base}/s/{token}")
    await checked.audit("start page")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skipnav"
    await _tab_to(page, "el.textContent.trim() === 'Start'")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/s/{token}/side/1")
    assert "Side 1 af 5" in await page.content()
    await checked.audit("page 1")

    # Radio groups by keyboard: Tab into a group, Space chooses, arrows move the choice.
    await _tab_to(page, "el.name === 'q1'")
    await page.keyboard.press("Space")
    await page.keyboard.press("ArrowDown")
    await _tab_to(page, "el.name === 'q2'")
    await page.keyboard.press("Space")
    await _tab_to(page, "el.tagName === 'BUTTON' && el.value === 'next'")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/s/{token}/side/2")
    await checked.audit("page 2")

    await _tab_to(page, "el.name === 'q4'")
    await page.keyboard.press("Space")
    await _tab_to(page, "el.tagName === 'BUTTON' && el.value === 'save'")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/s/{token}/gemt")
    await checked.audit("saved page")
    await context.close()

    # Resume in a fresh browser from the same link.
    context = await browser.new_context()
    page = await context.new_page()
    checked = Checked(page, axe_source)
    await page.goto(f"{base}/s/{token}")
    await page.get_by_role("link", name="Fortsæt, hvor du slap").click()
    await page.wait_for_url(f"**/s/{token}/side/3")
    await checked.audit("page 3")
    await page.get_by_role("button", name="Tilbage").click()
    await page.get_by_role("button", name="Tilbage").click()
    await page.wait_for_url(f"**/s/{token}/side/1")
    assert await page.locator("#q1-2").is_checked()  # "Enig", chosen with the arrow key
    assert await page.locator("#q2-1").is_checked()
    for n in (1, 2, 3, 4):
        await page.get_by_role("button", name="Næste").click()
        await page.wait_for_url(f"**/s/{token}/side/{n + 1}")
    await checked.audit("page 5")

    # q13 answered: q14 appears with q13's answer piped into it.
    await page.get_by_role("group", name="Hvor tilfreds").get_by_label("Tilfreds", exact=True).check()
    await page.get_by_role("button", name="Send dine svar").click()
    await page.wait_for_url("**/side/5?ny=1#q14")
    assert await page.get_by_label("Vil du uddybe, hvorfor du har været tilfreds?").is_visible()
    await checked.audit("page 5 with follow-up")

    # Error state: too long an answer.
    await page.locator("#q15").fill("x" * 2001)
    await page.get_by_role("button", name="Send dine svar").click()
    await page.wait_for_selector(".alert-error")
    assert (await page.title()).startswith("Fejl: ")
    await checked.audit("page 5 with error summary")
    await page.get_by_role("link", name="Dit svar er for langt").click()  # the summary links to the field
    assert await page.evaluate("document.activeElement.id") == "q15"

    await page.locator("#q15").fill("Mere tid til samtalerne")
    await page.locator("#q14").fill("Jeg blev hørt")
    await page.get_by_role("button", name="Send dine svar").click()
    await page.wait_for_url(f"**/s/{token}/tak")
    assert "Tak for dine svar" in await page.content()
    await checked.audit("thank-you page")

    # The used link now gets a clear page.
    response = await page.goto(f"{base}/s/{token}")
    assert response.status == 409 and "Du har allerede svaret" in await page.content()
    await checked.audit("used link")
    await context.close()


async def test_opt_out_and_link_pages_without_javascript(live, browser, axe_source, kafka_bootstrap, module_env):
    app, base = live
    prefix = module_env["KAFKA_TOPIC_PREFIX"]
    [token] = await issue(app, kafka_bootstrap, prefix)
    [expired] = await issue(app, kafka_bootstrap, prefix, expires_in=timedelta(days=-1))

    # The whole opt-out with JavaScript switched off: the form needs none.
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{base}/s/{token}")
    await page.get_by_role("link", name="Jeg ønsker ikke at deltage").click()
    await page.wait_for_url(f"**/s/{token}/afmeld")
    await page.get_by_role("button", name="Jeg ønsker ikke at deltage").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/s/{token}/afmeldt")
    assert "Du har meldt fra" in await page.content()
    await context.close()

    # axe on the remaining pages (JavaScript on, for axe itself).
    context = await browser.new_context()
    page = await context.new_page()
    checked = Checked(page, axe_source)
    [fresh] = await issue(app, kafka_bootstrap, prefix)
    for path, status, label in [
        (f"/s/{fresh}/afmeld", 200, "opt-out page"),
        (f"/s/{token}/afmeldt", 200, "opted-out page"),
        (f"/s/{token}", 409, "opted-out link"),
        (f"/s/{expired}", 410, "expired link"),
        ("/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 404, "unknown link"),
        ("/tilgaengelighed", 200, "accessibility statement"),
        ("/tilgaengelighed?lang=en", 200, "accessibility statement (English)"),
        (f"/s/{fresh}?lang=en", 200, "start page (English)"),
        (f"/s/{fresh}/side/1?lang=en", 200, "page 1 (English)"),
    ]:
        response = await page.goto(base + path)
        assert response.status == status, label
        await checked.audit(label)

    # A CSRF failure page (cookie gone, e.g. blocked) is a page of the form too.
    await page.goto(f"{base}/s/{fresh}/side/1")
    await context.clear_cookies()
    await page.get_by_role("button", name="Næste").click()
    assert "Siden var udløbet" in await page.content()
    await checked.audit("CSRF failure page")
    await context.close()


async def test_the_closed_page_after_fieldwork_ends(live, browser, axe_source, kafka_bootstrap, module_env):
    """The link of a round whose fieldwork has ended, in the browser: the closed page, in Danish
    and English, passes axe; a form left open is refused with the same page."""
    from responses_helpers import define_round, round_defined

    app, base = live
    prefix = module_env["KAFKA_TOPIC_PREFIX"]
    [token] = await issue(app, kafka_bootstrap, prefix, round_id="r-browser-closed")
    context = await browser.new_context()
    page = await context.new_page()
    checked = Checked(page, axe_source)
    await page.goto(f"{base}/s/{token}/side/1")  # the citizen has the form open ...
    await define_round(app, kafka_bootstrap, prefix, round_defined("r-browser-closed", 1, "fieldwork_ended"))
    await page.get_by_role("button", name="Næste").click()  # ... and sends it after the end
    assert "Undersøgelsen er slut" in await page.content()
    await checked.audit("closed page after a POST")
    for path, label in [(f"/s/{token}", "closed page"), (f"/s/{token}?lang=en", "closed page (English)")]:
        response = await page.goto(base + path)
        assert response.status == 410, label
        await checked.audit(label)
    assert await page.get_by_role("heading", level=1).inner_text() == "The survey has ended"
    await context.close()
