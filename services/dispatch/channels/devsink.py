"""A channel that delivers to a directory: for development, demos and tests.

One file per message, named by the idempotency key: `<key>.xml` for MeMo
(Digital Post or NemSMS), `<key>.txt` for SMS, `<key>.eml` for e-mail. It
keeps the production guarantee that matters: the same key never makes a
second delivery. The file is written under a temporary name and then
hard-linked to its final name; `link` fails if the name exists, so of two
concurrent or repeated sends exactly one wins, and no reader ever sees a
half-written file (O_EXCL alone would expose one; rename would overwrite).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

from .base import Channel, MessageKind, OutgoingMessage, SendResult, key_as_filename
from .smtp import build_email

log = logging.getLogger(__name__)


class DevSinkChannel(Channel):
    name = "dev_sink"

    def __init__(self, directory: str | Path) -> None:
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)

    @property
    def directory(self) -> Path:
        return self._directory

    async def send(self, message: OutgoingMessage) -> SendResult:
        try:
            suffix, data = _render(message)
        except ValueError as exc:
            return self._done(message, SendResult.permanent(str(exc)))
        try:
            path = await asyncio.to_thread(self._write_once, key_as_filename(message.idempotency_key) + suffix, data)
        except OSError as exc:
            return self._done(message, SendResult.transient(f"write failed: {type(exc).__name__}"))
        return self._done(message, SendResult.sent(str(path)))

    def _write_once(self, filename: str, data: bytes) -> Path:
        final = self._directory / filename
        fd, tmp = tempfile.mkstemp(dir=self._directory, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            try:
                os.link(tmp, final)
            except FileExistsError:
                pass  # delivered before: the first copy stands
        finally:
            os.unlink(tmp)
        return final

    def _done(self, message: OutgoingMessage, result: SendResult) -> SendResult:
        log.info("%s send key=%s status=%s", self.name, message.idempotency_key, result.status.value)
        return result


def _render(message: OutgoingMessage) -> tuple[str, bytes]:
    if message.memo_xml is not None:
        return ".xml", message.memo_xml
    if message.kind is MessageKind.DIGITAL_POST:
        raise ValueError("message has no MeMo document")
    if message.kind is MessageKind.SMS:
        return ".txt", f"To: {message.address}\n\n{message.text}\n".encode()
    return ".eml", bytes(build_email(message, sender="noreply@borgerblik.invalid"))
