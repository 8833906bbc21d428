"""Data-subject rights and retention, coordinated from ingest (the only service that knows CPR
numbers): closing rounds and running the retention clock, citizens' erasure and objection
requests, the receipts every service sends back, and key rotation of ingest's own keys."""
