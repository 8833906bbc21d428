"""Ingest's event handlers, keyed by payload class: its share of purges and erasures and every
service's receipts (services.ingest.privacy.handlers), and the sampled citizens' contacts for
dispatch, released on each sample.drawn chunk (services.ingest.release)."""

from __future__ import annotations

from services.ingest import release
from services.ingest.privacy.handlers import HANDLERS as PRIVACY_HANDLERS

HANDLERS = {**PRIVACY_HANDLERS, **release.HANDLERS}
