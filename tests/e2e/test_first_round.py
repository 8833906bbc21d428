"""README's "Your first round", walked as a newcomer would on running services: its shell
commands run exactly as README.md has them (only the addresses point at this test's services),
then the citizen answers the link from the dev sink in Chromium, and the dashboard is read
through its start page (the service's address, the login form with a dev client, the round
overview for KL's operator). Nothing here reaches into a service's code or database."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from shared.auth.dev_issuer import create_app as issuer_app
from shared.auth.dev_issuer import load_clients
from shared.infra import free_port
from shared.testing.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from shared.testing.processes import SERVICES, ServiceProcess
from shared.testing.fixtures import served

README = Path(__file__).resolve().parents[2] / "README.md"
ROUND = "min-foerste-runde"

pytestmark = [*needs_chromium, pytest.mark.timeout(420)]


def first_round_commands(after_fieldwork: bool = False) -> str:
    """The ```sh blocks of README's "Your first round", in order: up to the citizen's answer, or
    (``after_fieldwork``) the addresses and tokens, then the last block, which ends fieldwork."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Your first round\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) >= 6, "README's first round lost its commands"
    return "\n".join([blocks[0], blocks[-1]] if after_fieldwork else blocks[:-1])


@pytest.fixture(scope="module")
async def issuer(dev_issuer):
    """The dev token issuer over HTTP with deploy/dev-clients.json, as `make up` runs it (its key is
    the one the services trust)."""
    async with served(issuer_app(dev_issuer, load_clients())) as url:
        yield url


@pytest.fixture(scope="module")
def newcomer_stack(module_env, issuer, tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    ports = {name: free_port() for name in SERVICES}
    env = {
        **module_env,
        "SURVEY_BASE_URL": f"http://127.0.0.1:{ports['responses']}/s/",
        "DASHBOARD_TOKEN_URL": f"{issuer}/oauth/token",
        "PUBLICATION_RELEASE_QUIET_SECONDS": "5",
    }
    processes = {name: ServiceProcess(name, ports[name], env, log_file=logs / f"{name}.log").start() for name in SERVICES}
    try:
        for process in processes.values():
            process.wait_healthy(90)
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        for process in processes.values():
            process.stop()


async def run_readme(urls: dict[str, str], issuer: str, sink: str, workdir: Path, after_fieldwork: bool = False) -> str:
    env = {**os.environ, "ISSUER": issuer, "INGEST": urls["ingest"], "SAMPLING": urls["sampling"],
           "RESPONSES": urls["responses"], "ANALYTICS": urls["analytics"], "SINK": sink}
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", first_round_commands(after_fieldwork), cwd=workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
    return out.decode()


async def answer(page, link: str) -> None:
    """The citizen: Start, a choice in every group, Næste, and Send dine svar."""
    await page.goto(link)
    await page.get_by_role("link", name="Start").click()
    for _ in range(12):
        names = await page.evaluate("[...new Set([...document.querySelectorAll('input[type=radio]')].map(i => i.name))]")
        for name in names:
            await page.locator(f"input[type=radio][name='{name}']").first.check()
        send = page.get_by_role("button", name="Send dine svar")
        # the last page may add a follow-up question when sent (the page shows it, and Send again)
        await (send if await send.count() else page.get_by_role("button", name="Næste")).click()
        await page.wait_for_load_state()
        if page.url.endswith("/tak"):
            return
    raise AssertionError(f"the questionnaire never took the answers (at {page.url})")


async def log_in(page, analytics: str, client_id: str, secret: str) -> None:
    await page.goto(f"{analytics}/")  # the service's address leads to the dashboard (its login first)
    assert "/dashboard/login" in page.url
    await page.get_by_label("Klient-id").fill(client_id)
    await page.get_by_label("Klienthemmelighed").fill(secret)
    await page.get_by_role("button", name="Log ind").click()
    await page.wait_for_load_state()


async def test_readme_first_round_as_a_newcomer(newcomer_stack, issuer, module_env, tmp_path):
    from playwright.async_api import async_playwright

    urls = newcomer_stack
    out = await run_readme(urls, issuer, module_env["DEV_SINK_DIR"], tmp_path)
    assert out.endswith("\n") and out.count("\n") >= 5  # each answer on a line of its own
    link = out.strip().splitlines()[-1]
    assert re.fullmatch(re.escape(urls["responses"]) + r"/s/[A-Za-z0-9_-]{20,}", link), out[-1000:]

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context()).new_page()
            await answer(page, link)
            assert "Tak for dine svar" in await page.content()

            # Aarhus' user: the round appears once released (the README says about 20 s; here 5).
            async with asyncio.timeout(120):
                while True:
                    await log_in(page, urls["analytics"], "aarhus-bi", "dev-secret-aarhus")
                    if page.url.endswith(f"/dashboard/r/{ROUND}/k/751"):
                        break
                    await page.context.clear_cookies()
                    await asyncio.sleep(2)
            assert await page.locator("h1").inner_text() == "Overblik: Aarhus"
            # During fieldwork: the response rate, and why the results are not there yet.
            assert "ikke hvad de har svaret" in await page.locator("#rates-only").inner_text()
            assert await page.locator("#rates").count() == 1
            # Step 9: the operator ends fieldwork and cuts the final release; the results follow.
            await run_readme(urls, issuer, module_env["DEV_SINK_DIR"], tmp_path, after_fieldwork=True)
            await page.reload()
            assert await page.locator("#rates-only").count() == 0
            await page.get_by_role("link", name="Spørgsmål", exact=True).click()
            await page.wait_for_url(f"**/dashboard/r/{ROUND}/k/751/q")
            assert "Samlet tilfredshed" in await page.locator("main").inner_text()
            assert "q13" not in await page.locator("main").inner_text()

            # KL's operator: every municipality, and the round overview from the start page.
            await page.context.clear_cookies()
            await log_in(page, urls["analytics"], "kl-operator", "dev-secret-kl")
            assert page.url.endswith("/dashboard/")
            await page.get_by_role("link", name=re.compile(f"{ROUND}: Min første runde")).click()
            await page.wait_for_url(f"**/dashboard/rounds/{ROUND}")
            assert "Aarhus" in await page.content() or "751" in await page.content()
        finally:
            await browser.close()
