"""Languages over HTTP (real PostgreSQL, real broker): which languages a round offers
(round.defined's ``languages`` and ``translation_status``), the language kept through the flow
and recorded with the answer, and a text a translation lacks shown in Danish, marked."""

from __future__ import annotations

import re

import sqlalchemy as sa

from responses_helpers import csrf_of, define_round, issue, round_defined, token_hash
from services.responses.domain import translations
from services.responses.domain.languages import LANGUAGES
from services.responses.models import Response

HREFLANG = re.compile(r'<nav class="survey-langs"[^>]*>(.*?)</nav>', re.S)


def _menu(html: str) -> list[str]:
    match = HREFLANG.search(html)
    return re.findall(r'hreflang="([^"]+)"', match.group(1)) if match else []


def _html_lang(html: str) -> tuple[str, str]:
    match = re.search(r'<html lang="([^"]+)" dir="([^"]+)">', html)
    assert match, "no <html lang dir>"
    return match.group(1), match.group(2)


async def _post(client, token, n, data, *, action="next", lang=""):
    page = await client.get(f"/s/{token}/side/{n}{lang}")
    form = {"csrf_token": csrf_of(page.text), "shown": re.search(r'name="shown" value="([^"]*)"', page.text).group(1),
            "action": action, **data}
    return await client.post(f"/s/{token}/side/{n}{lang}", data=form)


async def test_a_round_without_a_choice_offers_every_language_on_every_page(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    start = await client.get(f"/s/{token}")
    assert _menu(start.text) == list(LANGUAGES)
    # The first page has the choice as a section of its own, each name in its own language.
    assert 'class="survey-choose-lang"' in start.text and '<a href="/s/' + token + '?lang=ar" lang="ar" hreflang="ar" dir="rtl">العربية</a>' in start.text
    for path in ("", "/side/2", "/afmeld", "/gemt"):
        page = await client.get(f"/s/{token}{path}?lang=tr")
        assert _html_lang(page.text) == ("tr", "ltr") and _menu(page.text) == list(LANGUAGES), path
        assert f'href="/s/{token}{path}?lang=so"' in page.text  # switch to another language: a plain link
    arabic = await client.get(f"/s/{token}/side/1?lang=ar")
    assert _html_lang(arabic.text) == ("ar", "rtl")
    assert "هل تشعر بأنك تُعامَل بثقة في مركز التوظيف؟" in arabic.text and "أوافق بشدة" in arabic.text
    assert f'action="/s/{token}/side/1?lang=ar"' in arabic.text


async def test_a_round_requiring_reviewed_translations_offers_no_draft_language(app, client, kafka_bootstrap, prefix):
    definition = round_defined("r-reviewed", 1).model_copy(update={"translation_status": "reviewed"})
    await define_round(app, kafka_bootstrap, prefix, definition)
    [token] = await issue(app, kafka_bootstrap, prefix, round_id="r-reviewed")
    start = await client.get(f"/s/{token}")
    assert _menu(start.text) == ["da", "en"]  # every other translation is a draft
    for path in ("", "/side/1", "/afmeld"):
        asked = await client.get(f"/s/{token}{path}?lang=ar")  # a draft language asked for anyway
        assert _html_lang(asked.text) == ("da", "ltr"), path
        assert "Oplever du at blive mødt med tillid i jobcentret?" in asked.text or path != "/side/1"
    english = await client.get(f"/s/{token}/side/1?lang=en")
    assert _html_lang(english.text) == ("en", "ltr")


async def test_a_round_naming_languages_offers_those_and_danish(app, client, kafka_bootstrap, prefix):
    definition = round_defined("r-named", 1).model_copy(update={"languages": ["so", "ar"]})
    await define_round(app, kafka_bootstrap, prefix, definition)
    [token] = await issue(app, kafka_bootstrap, prefix, round_id="r-named")
    assert _menu((await client.get(f"/s/{token}")).text) == ["da", "ar", "so"]
    assert _html_lang((await client.get(f"/s/{token}?lang=pl")).text) == ("da", "ltr")
    assert _html_lang((await client.get(f"/s/{token}?lang=so")).text) == ("so", "ltr")


async def test_the_language_persists_through_the_flow_and_is_recorded_with_the_answer(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    r = await _post(client, token, 1, {"q1": "enig"}, lang="?lang=uk")
    assert r.headers["location"] == f"/s/{token}/side/2?lang=uk"
    r = await _post(client, token, 2, {}, action="save", lang="?lang=uk")
    assert r.headers["location"] == f"/s/{token}/gemt?lang=uk"
    saved = await client.get(r.headers["location"])
    assert "Ваші відповіді збережено" in saved.text and f'href="/s/{token}/side/3?lang=uk"' in saved.text
    # Piping in Ukrainian: q13's Ukrainian label inside q14.
    r = await _post(client, token, 5, {"q13": "tilfreds"}, action="submit", lang="?lang=uk")
    assert r.headers["location"] == f"/s/{token}/side/5?lang=uk&ny=1#q14"
    follow = await client.get(f"/s/{token}/side/5?lang=uk&ny=1")
    assert "Ви відповіли «Задоволений (задоволена)». Чи хочете пояснити чому?" in follow.text
    # Too long an answer: the error in Ukrainian, the number as Ukrainian writes it.
    too_long = await _post(client, token, 5, {"q13": "tilfreds", "q15": "x" * 2001}, action="submit", lang="?lang=uk")
    assert too_long.status_code == 400 and "Можна щонайбільше 2\u00a0000 символів, а ви написали 2\u00a0001." in too_long.text
    r = await _post(client, token, 5, {"q13": "tilfreds", "q14": "Добре"}, action="submit", lang="?lang=uk")
    assert r.headers["location"] == f"/s/{token}/tak?lang=uk"
    assert "Дякуємо за ваші відповіді" in (await client.get(r.headers["location"])).text
    async with app.state.runtime.sessionmaker() as session:
        row = (await session.execute(sa.select(Response).where(Response.token_hash == token_hash(token)))).scalar_one()
    assert (row.language, row.mode, row.answers["q13"]) == ("uk", "web", "tilfreds")


async def test_a_text_the_translation_lacks_shows_in_danish_marked_danish(app, client, kafka_bootstrap, prefix, monkeypatch):
    original = translations.load_translation
    full = original("kl_core_v1", "pl")
    partial = full.model_copy(update={"texts": {k: v for k, v in full.texts.items() if k not in ("question.q2.text", "scale.enighed.uenig")}})
    monkeypatch.setattr(translations, "load_translation",
                        lambda component, lang: partial if (component, lang) == ("kl_core_v1", "pl") else original(component, lang))
    monkeypatch.setattr(translations, "_localized", {})
    [token] = await issue(app, kafka_bootstrap, prefix)
    page = (await client.get(f"/s/{token}/side/1?lang=pl")).text
    assert _html_lang(page) == ("pl", "ltr")
    fallback = ('<span lang="da">Oplever du, at der bliver taget udgangspunkt i din individuelle situation i jobcentret?</span> '
                '<span class="survey-fallback">(tylko po duńsku)</span>')
    assert fallback in page
    assert '<span lang="da">Uenig</span> <span class="survey-fallback">(tylko po duńsku)</span>' in page
    assert "Czy czujesz, że w urzędzie pracy traktuje się Cię z zaufaniem?" in page  # the rest stays Polish
    assert page.count('<span lang="da">') == 4  # q2's text, and "Uenig" in each of q1, q2 and q3
