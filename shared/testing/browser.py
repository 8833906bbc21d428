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


async def axe_audit(page, axe: str, label: str) -> None:
    """Run axe-core (``axe``: :func:`axe_source`) on ``page`` for WCAG 2.1 A/AA: no violations.
    Injected through the DevTools protocol, so the page's CSP (no scripts at all) stays on."""
    await page.evaluate(axe)
    result = await page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return {passes: result.passes.length, violations: result.violations.map(v => ({id: v.id, impact: v.impact,
                help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))};
        }""",
        WCAG_TAGS,
    )
    assert result["passes"] > 5, f"axe did not really run on {label}"  # guards against a silent no-op
    assert result["violations"] == [], f"axe on {label}: {result['violations']}"
