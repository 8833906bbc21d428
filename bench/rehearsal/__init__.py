"""The national round rehearsal (issue 28): ``bench/national_rehearsal.py`` runs it, the e2e test
``tests/e2e/test_rehearsal.py`` runs a small one. ``stack`` starts and measures the platform,
``play`` plays the round and keeps the books, ``report`` prints them."""
