"""Pure domain logic of the responses service (no I/O)."""
