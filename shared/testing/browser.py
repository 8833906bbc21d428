"""Headless Chromium (Debian's, never a downloaded one) and axe-core for browser tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, which this machine's
# closed network refuses; --no-sandbox because tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"),
]


def axe_source(package_dir: Path) -> str:
    """axe.min.js from ``package_dir``'s pinned node_modules, installed with `npm ci` if missing."""
    axe = package_dir / "node_modules" / "axe-core" / "axe.min.js"
    if not axe.exists() and shutil.which("npm"):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=package_dir, check=True, capture_output=True, timeout=300)
    if not axe.exists():
        pytest.fail(f"axe-core missing: run `npm ci` in {package_dir}")
    return axe.read_text(encoding="utf-8")
