"""Known vulnerabilities in the installed dependencies (issue 10): pip-audit against PyPI's
advisory data (the OSV-backed PyPI JSON API), over the environment the tests run in.

Needs network access to pypi.org. Unreachable -> skipped with the reason (visible with -rs), never
silently green. Accepted findings go in IGNORED with a reason and a date to look again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

# vulnerability id -> why it is accepted (and until when)
IGNORED: dict[str, str] = {}


@pytest.mark.audit
@pytest.mark.timeout(300)
def test_installed_dependencies_have_no_known_vulnerabilities(tmp_path):
    if shutil.which("pip-audit") is None and subprocess.run([sys.executable, "-m", "pip_audit", "--version"], capture_output=True).returncode != 0:
        pytest.fail("pip-audit is not installed: add it to the test extras (pip install pip-audit)")
    report = tmp_path / "audit.json"
    command = [
        sys.executable, "-m", "pip_audit",
        "--format", "json", "--output", str(report),
        "--progress-spinner", "off",
        "--skip-editable",  # borgerblik itself is not on PyPI
        "--cache-dir", str(tmp_path / "cache"),
        *[arg for vuln in IGNORED for arg in ("--ignore-vuln", vuln)],
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=280)
    if not report.exists():
        message = (done.stderr or done.stdout).strip()
        if any(s in message for s in ("ConnectionError", "Max retries", "Name or service not known", "timed out", "ServiceError")):
            pytest.skip(f"the vulnerability service could not be reached: {message[-500:]}")
        pytest.fail(f"pip-audit did not produce a report (exit {done.returncode}): {message[-2000:]}")
    result = json.loads(report.read_text())
    findings = [
        f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {', '.join(vuln.get('fix_versions') or ['-'])})"
        for dep in result.get("dependencies", [])
        for vuln in dep.get("vulns", [])
        if vuln["id"] not in IGNORED and not set(vuln.get("aliases", [])) & set(IGNORED)
    ]
    dependencies = [dep for dep in result.get("dependencies", []) if "editable" not in (dep.get("skip_reason") or "")]
    unaudited = [f"{dep['name']} {dep.get('version', '')}" for dep in dependencies if dep.get("skip_reason")]
    print(f"pip-audit: {len(dependencies) - len(unaudited)} of {len(dependencies)} packages audited")
    assert not findings, "known vulnerabilities in installed packages:\n" + "\n".join(findings)
    if dependencies and len(unaudited) == len(dependencies):
        # pip-audit reports "not found on PyPI" for everything when the index is a mirror without
        # the JSON API (/pypi/<name>/<version>/json): nothing was audited, which is not a pass.
        pytest.skip(f"the vulnerability service answered for none of the {len(dependencies)} packages: "
                    f"{dependencies[0].get('skip_reason')}")
    assert not unaudited, "packages pip-audit could not audit (not on PyPI?):\n" + "\n".join(unaudited)
