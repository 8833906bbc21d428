"""population.received chunks written into the outbox from pre-encoded persons.

A national delivery is a million persons: building them as dicts, validating them with
pydantic and serialising the result cost more than validating the rows. The persons arrive
from the blocks already as ``PopulationPerson`` JSON (``services.ingest.preparation``); the
envelope and the chunk's other fields still go through the pydantic models (with an empty
``persons`` list), and the persons are spliced into that JSON. Tests check that every chunk
parses back into ``PopulationReceived``.

The chunks are written into ingest's bulk outbox (``models.POPULATION_OUTBOX``) on the
delivery's own connection and transaction, so they commit (or vanish) with the delivery, as
with ``UnitOfWork.publish``. The shared ``BulkOutboxRelay`` publishes them (one leader, commit
order, deleted after Kafka's acknowledgement), sending the stored JSON text as it is instead of
decoding and re-encoding ~200 MB per national delivery.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections.abc import Sequence
from datetime import date

from shared.events import Envelope, PopulationReceived

_EMPTY_PERSONS_SUFFIX = '"persons":[]}}'


class PopulationChunks:
    """Cuts the delivery's persons into chunks of at most ``size`` persons and ``max_bytes`` of
    JSON (under Kafka's default 1 MB message limit).

    The last chunk is held back until more persons arrive, so the final chunk (which carries
    ``final``, the chunk count and the person count) is never an empty extra event.
    """

    def __init__(
        self,
        raw_connection,
        outbox_table: str,
        *,
        source: str,
        round_id: str,
        kommunekode: str,
        delivery_id: uuid.UUID,
        supersedes: uuid.UUID | None,
        reference_date: date,
        size: int,
        max_bytes: int,
    ) -> None:
        self._raw = raw_connection
        self._insert = (
            f"INSERT INTO {outbox_table} (event_id, topic, key, event_type, event_version, correlation_id, envelope)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        self._source = source
        self._fields = {
            "round_id": round_id,
            "kommunekode": kommunekode,
            "delivery_id": delivery_id,
            "supersedes": supersedes,
            "reference_date": reference_date,
        }
        self._size = max(1, size)
        self._max_bytes = max_bytes
        self._buffer: list[memoryview] = []  # runs of comma-joined persons
        self._buffer_bytes = 0
        self._buffered = 0  # persons in the buffer
        self.chunks = 0
        self.persons = 0
        self.bytes_written = 0

    async def add(self, data: bytes, offsets: Sequence[int]) -> None:
        """Buffer persons (``data`` holds them comma-joined, person i is
        ``data[offsets[i]:offsets[i + 1] - 1]``); writes every chunk that is full and followed by
        more persons. Cut by offsets: a million persons are not touched one by one."""
        count = len(offsets) - 1
        start = 0
        while start < count:
            if self._buffered >= self._size:
                await self._emit(final=False)
            # Take as many as fit: by count, and by bytes (a person plus its comma each).
            limit = min(count, start + self._size - self._buffered)
            room = offsets[start] + self._max_bytes + 1 - self._buffer_bytes
            end = max(start, bisect_right(offsets, room, start, limit + 1) - 1)
            if end == start:
                if self._buffered:  # full by bytes, and more persons follow
                    await self._emit(final=False)
                    continue
                end = start + 1  # one person alone over the limit still travels
            self._buffer.append(memoryview(data)[offsets[start] : offsets[end] - 1])
            self._buffer_bytes += offsets[end] - offsets[start]
            self._buffered += end - start
            start = end
        self.persons += count

    async def finish(self) -> None:
        await self._emit(final=True)

    async def _emit(self, *, final: bool) -> None:
        payload = PopulationReceived.model_validate(
            {
                **self._fields,
                "chunk_no": self.chunks,
                "final": final,
                "chunk_count": self.chunks + 1 if final else None,
                "person_count": self.persons if final else None,
                "persons": [],
            }
        )
        envelope = Envelope.wrap(payload, source=self._source, correlation_id=str(self._fields["delivery_id"]))
        head = envelope.model_dump_json()
        if not head.endswith(_EMPTY_PERSONS_SUFFIX):  # the models' field order is part of this contract
            raise RuntimeError("unexpected population.received envelope layout")
        text = "".join(
            (head[: -len(_EMPTY_PERSONS_SUFFIX)], '"persons":[', b",".join(self._buffer).decode("ascii"), "]}}")
        )
        await self._raw.execute(
            self._insert,
            envelope.event_id,
            payload.topic,
            payload.key(),
            envelope.type,
            envelope.version,
            envelope.correlation_id,
            text,
        )
        self.bytes_written += len(text)
        self.chunks += 1
        self._buffer = []
        self._buffer_bytes = 0
        self._buffered = 0
