"""Word lists for the free-text scrubber (``scrubbing.py``), kept as data so they can be
reviewed and extended without touching code."""
