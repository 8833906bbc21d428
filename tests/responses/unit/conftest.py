"""Fixtures the responses unit tests share: the published core questionnaire."""

from __future__ import annotations

import pytest

from services.responses.domain.questionnaire import Questionnaire, load_questionnaire


@pytest.fixture(scope="session")
def core() -> Questionnaire:
    return load_questionnaire("kl_core_v1")
