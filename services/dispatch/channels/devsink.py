"""A channel that delivers to a directory: for development, demos and tests.

One file per message, named by the idempotency key: `<key>.xml` for MeMo
(Digital Post or NemSMS), `<key>.txt` for SMS, `<key>.eml` for e-mail, in one
folder per round and municipality (`<dir>/<round>/<kommunekode>/`, the message's
`folder`; a message without one goes to `<dir>` itself). It
keeps the production guarantee that matters: the same key never makes a
second delivery. The file is written under a temporary name and then
hard-linked to its final name; `link` fails if the name exists, so of two
concurrent or repeated sends exactly one wins, and no reader ever sees a
half-written file (O_EXCL alone would expose one; rename would overwrite).

`send_many` writes a whole batch in one worker-thread hop (`batched`): at national volume the
per-message thread hand-off cost more than the write.
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
    batched = True

    def __init__(self, directory: str | Path) -> None:
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)

    @property
    def directory(self) -> Path:
        return self._directory

    async def send(self, message: OutgoingMessage) -> SendResult:
        return (await self.send_many([message]))[0]

    async def send_many(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        writes = []
        for i, message in enumerate(messages):
            try:
                suffix, data = _render(message)
            except ValueError as exc:
                results[i] = SendResult.permanent(str(exc))
                continue
            folder = "/".join(key_as_filename(part) for part in message.folder)
            writes.append((i, folder, key_as_filename(message.idempotency_key) + suffix, data))
        if writes:
            for i, result in await asyncio.to_thread(self._write_all, writes):
                results[i] = result
        for message, result in zip(messages, results, strict=True):
            self._done(message, result)
        return results

    def _write_all(self, writes: list[tuple[int, str, str, bytes]]) -> list[tuple[int, SendResult]]:
        done = []
        made: set[str] = set()
        for i, folder, filename, data in writes:
            try:
                directory = self._directory / folder if folder else self._directory
                if folder not in made:
                    directory.mkdir(parents=True, exist_ok=True)
                    made.add(folder)
                done.append((i, SendResult.sent(str(self._write_once(directory, filename, data)))))
            except OSError as exc:
                done.append((i, SendResult.transient(f"write failed: {type(exc).__name__}")))
        return done

    def _write_once(self, directory: Path, filename: str, data: bytes) -> Path:
        final = directory / filename
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-")
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
