"""The attack's slower variants (more generated rounds, more time steps) run with
ATTACK_FULL=1; by default the module keeps to a few minutes on a 2-core machine."""

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "attack_slow: slower variants of the disclosure attack (ATTACK_FULL=1 runs them)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ATTACK_FULL"):
        return
    skip = pytest.mark.skip(reason="slower attack variant: set ATTACK_FULL=1")
    for item in items:
        if "attack_slow" in item.keywords:
            item.add_marker(skip)
