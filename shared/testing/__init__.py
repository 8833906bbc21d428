"""Test fixtures: real PostgreSQL and a real Kafka-protocol broker, started when not given."""
