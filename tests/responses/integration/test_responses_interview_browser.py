"""The interviewer's page in headless Chromium over real HTTP (uvicorn, real PostgreSQL and
broker): an interviewer reads the introduction, marks the answers and saves; the interview counts
once with mode phone; a citizen who answers on the web meanwhile is gone before the next call;
"call back" and "refused" from the page; axe-core finds no WCAG 2.1 A/AA violation on the
page in any of its states, in Danish and English, and the page's CSP holds (no inline code)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from interview_helpers import interview_of, issue_with_phones, link_status, phone_views, responses_of
from shared.testing.browser import WCAG_TAGS, needs_chromium
from shared.testing.fixtures import bearer

pytestmark = needs_chromium


async def audit(page, axe: str, label: str, csp_errors: list[str]) -> None:
    await page.evaluate(axe)
    result = await page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return {passes: result.passes.length, violations: result.violations.map(v => ({id: v.id, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))};
        }""",
        WCAG_TAGS,
    )
    assert result["passes"] > 5, f"axe did not really run on {label}"
    assert result["violations"] == [], f"axe on {label}: {result['violations']}"
    assert csp_errors == [], f"CSP violations on {label}: {csp_errors}"


async def test_an_interviewer_completes_an_interview_in_the_browser(live, browser, axe_source, module_env, dev_issuer):
    app, url = live
    round_id = f"tlf-b-{datetime.now(UTC):%H%M%S%f}"
    tokens = await issue_with_phones(app, module_env, 4, round_id=round_id, phones=["+4520000001", "+4520000002", "+4520000003", "+4520000004"])
    token = dev_issuer.mint("interviewer-anna", ["responses:interview"], "751")
    context = await browser.new_context(extra_http_headers=bearer(token))
    page = await context.new_page()
    csp_errors: list[str] = []
    page.on("console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    try:
        await page.goto(f"{url}/interview/rounds/{round_id}")
        assert await page.title() == "Interview i telefonen – Borgerblik · interviewer"
        assert await page.get_attribute("html", "lang") == "da"
        phone = await page.inner_text("#phone")
        assert phone in {"+4520000001", "+4520000002", "+4520000003", "+4520000004"}
        assert await page.inner_text("#waiting") == "4"
        assert "Læs op for borgeren" in await page.inner_text("main")
        await audit(page, axe_source, "the call", csp_errors)
        by_phone = {p: t for p, t in zip(["+4520000001", "+4520000002", "+4520000003", "+4520000004"], tokens, strict=True)}
        on_the_phone = by_phone.pop(phone)

        # The interviewer marks what the citizen answers (the labels are the answer options) and saves.
        await page.check("#q1-1")
        await page.check("#q13-2")
        await page.fill("#q15", "Mere tid til samtalen")
        await page.click("#save")
        assert "Interviewet er gemt og tæller med" in await page.inner_text("#done")
        [row] = await responses_of(app, on_the_phone)
        assert (row.mode, row.answers) == ("phone", {"q1": "meget_enig", "q13": "tilfreds", "q15": "Mere tid til samtalen"})
        assert len(await phone_views(app, str((await interview_of(app, on_the_phone)).id))) == 1
        await audit(page, axe_source, "the next call after a saved interview", csp_errors)

        # The citizen shown now answers on the web before the interviewer calls: the next call is someone else.
        shown = await page.inner_text("#phone")
        web = by_phone.pop(shown)
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.post(f"/api/survey/{web}/submission", json={"answers": {"q1": 3}})).status_code == 201
        # The interviewer saves what they had marked anyway: not counted, and told why.
        await page.check("#q1-2")
        await page.click("#save")
        assert "har allerede svaret" in await page.inner_text("#done")
        assert [r.mode for r in await responses_of(app, web)] == ["web"]
        assert await page.inner_text("#phone") != shown and await page.inner_text("#waiting") == "2"

        # Call back later (a time the page refuses first, then a good one).
        later = by_phone.pop(await page.inner_text("#phone"))
        await page.fill("#call_back_at", "2020-01-01T10:00")
        await page.click("#call-back")
        assert "skal ligge i fremtiden" in await page.inner_text("[role=alert]")
        await audit(page, axe_source, "a refused call-back time", csp_errors)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        await page.fill("#call_back_at", tomorrow)
        await page.click("#call-back")
        assert "hvornår der skal ringes igen" in await page.inner_text("#done")
        assert (await interview_of(app, later)).outcome == "call_back"

        # The last one declines; then nobody is left.
        last = by_phone.pop(await page.inner_text("#phone"))
        await page.click("#refused")
        assert "Afslaget er registreret" in await page.inner_text("#done")
        assert await page.inner_text("#empty") == "Ingen borgere at ringe til"
        assert (await interview_of(app, last)).outcome == "refused" and await link_status(app, last) == "open"
        await audit(page, axe_source, "the empty list", csp_errors)

        # English.
        await page.goto(f"{url}/interview/rounds/{round_id}?lang=en")
        assert await page.get_attribute("html", "lang") == "en" and "Nobody to call" in await page.inner_text("main")
        await audit(page, axe_source, "the empty list in English", csp_errors)
    finally:
        await context.close()


async def test_the_call_in_english_passes_axe(live, browser, axe_source, module_env, dev_issuer):
    app, url = live
    round_id = f"tlf-en-{datetime.now(UTC):%H%M%S%f}"
    [token] = await issue_with_phones(app, module_env, 1, round_id=round_id)
    context = await browser.new_context(extra_http_headers=bearer(dev_issuer.mint("interviewer-en", ["responses:interview"], "751")))
    page = await context.new_page()
    csp_errors: list[str] = []
    page.on("console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    try:
        await page.goto(f"{url}/interview/rounds/{round_id}?lang=en")
        assert "Read aloud to the citizen" in await page.inner_text("main")
        await audit(page, axe_source, "the call in English", csp_errors)
        await page.check("#q2-2")
        await page.click("#save")
        assert "The interview is saved" in await page.inner_text("#done")
        assert [(r.mode, r.language) for r in await responses_of(app, token)] == [("phone", "en")]
    finally:
        await context.close()
