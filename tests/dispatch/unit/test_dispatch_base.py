"""Shared pieces: status classification, redaction, file-name keys."""

from __future__ import annotations

import pytest

from services.dispatch.channels import SendStatus, classify_http_status
from services.dispatch.channels.base import key_as_filename
from services.dispatch.domain.privacy import redact


@pytest.mark.parametrize(
    "code, status",
    [
        (200, SendStatus.SENT),
        (204, SendStatus.SENT),
        (302, SendStatus.PERMANENT_FAILURE),
        (400, SendStatus.PERMANENT_FAILURE),
        (401, SendStatus.PERMANENT_FAILURE),
        (408, SendStatus.TRANSIENT_FAILURE),
        (422, SendStatus.PERMANENT_FAILURE),
        (429, SendStatus.TRANSIENT_FAILURE),
        (500, SendStatus.TRANSIENT_FAILURE),
        (503, SendStatus.TRANSIENT_FAILURE),
    ],
)
def test_http_classification(code, status):
    assert classify_http_status(code) is status


@pytest.mark.parametrize(
    "text",
    [
        "recipient 0101901234 unknown",
        "recipient 010190-1234 unknown",
        "phone +45 12 34 56 78 rejected",
        "mail to søren.å@example.dk bounced",
    ],
)
def test_redaction_removes_cpr_phone_and_mail(text):
    cleaned = redact(text)
    assert "[redacted]" in cleaned
    assert not any(part in cleaned for part in ("0101901234", "1234", "56 78", "example.dk"))


def test_redaction_keeps_short_numbers_and_truncates():
    assert redact("HTTP 503 after 30 s") == "HTTP 503 after 30 s"
    assert len(redact("x" * 1000)) == 300


@pytest.mark.parametrize("key", ["round-1.resp-42_invitation", "abc"])
def test_safe_keys_are_file_names_as_is(key):
    assert key_as_filename(key) == key


@pytest.mark.parametrize("key", ["..", "a/b", "r3:resp42", "x" * 150, "æøå"])
def test_other_keys_become_stable_uuids(key):
    name = key_as_filename(key)
    assert name == key_as_filename(key) and len(name) == 36 and "/" not in name
