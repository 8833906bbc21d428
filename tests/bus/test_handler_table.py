"""Handlers are keyed by the payload class they take; a handler for an event type nobody
registered (a misspelt type, which would subscribe to nothing) stops the service at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.dispatch.handlers import make_handlers
from services.dispatch.config import DispatchSettings
from services.ingest.privacy.handlers import HANDLERS as INGEST_PRIVACY
from services.ingest.release import HANDLERS as INGEST_RELEASE
from services.sampling.handlers import HANDLERS as SAMPLING
from shared.bus import UnknownEventType, bus_tables, handler_table
from shared.db import make_base
from shared.events import EventPayload, ResponseSubmitted, SampleDrawn, SampleDrawnV1
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings


async def _handler(uow, envelope, event) -> None:
    return None


async def _other(uow, envelope, event) -> None:
    return None


def test_handlers_keyed_by_payload_class_are_looked_up_by_event_type():
    assert handler_table({SampleDrawn: _handler, ResponseSubmitted: _other}) == {
        "sample.drawn": _handler, "response.submitted": _other,
    }


@pytest.mark.parametrize("key", ["sample.drawnn", "population.recieved", EventPayload, int])
def test_a_handler_for_an_unknown_event_type_is_refused(key):
    with pytest.raises(UnknownEventType):
        handler_table({key: _handler})


def test_two_handlers_for_one_event_type_are_refused():
    with pytest.raises(ValueError, match="two handlers"):
        handler_table({SampleDrawn: _handler, SampleDrawnV1: _other})


def test_the_runtime_refuses_to_start_with_an_unknown_event_type():
    tables = bus_tables(make_base("handler_table_test").metadata)
    with pytest.raises(UnknownEventType):
        ServiceRuntime(ServiceSettings(), tables=tables, migrations_dir=Path("."), handlers={"respons.submitted": _handler})


def test_the_services_key_their_handlers_by_payload_class():
    dispatch = make_handlers(DispatchSettings())
    for handlers in (INGEST_PRIVACY, INGEST_RELEASE, SAMPLING, dispatch):
        assert all(isinstance(key, type) and issubclass(key, EventPayload) for key in handlers), handlers
        handler_table(handlers)
