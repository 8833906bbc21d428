"""Known vulnerabilities in the installed dependencies (issues 10, 26): every installed Python
package checked against the PyPI advisory database kept in tools/advisories (offline; why and how
to refresh it: tools/dependency_audit.py). Accepted findings: tools/advisories/accepted.toml, each
with a reason and an expiry date."""

from __future__ import annotations

from datetime import date

import pytest

from shared.testing.tools import load_tool

audit = load_tool("dependency_audit")


@pytest.mark.audit
def test_installed_dependencies_have_no_known_vulnerabilities():
    data = audit.load_data()
    packages = audit.installed()
    findings = audit.audit(packages, data)
    open_findings, expired = audit.split(findings, audit.load_accepted(), date.today())
    print(f"dependency audit: {len(packages)} installed packages checked against advisories of {data['date'][:10]} "
          f"(commit {data['commit'][:12]}): {len(findings)} known vulnerabilities, {len(findings) - len(open_findings)} accepted")
    assert len(packages) > 50 and "fastapi" in packages  # the environment the services run in, not an empty one
    assert not open_findings, "known vulnerabilities in installed packages:\n" + "\n".join(map(str, open_findings))
    assert not expired, "accepted vulnerabilities whose acceptance expired:\n" + "\n".join(expired)


def test_the_audit_finds_a_known_vulnerability_and_not_a_fixed_one():
    data = audit.load_data()
    found = {(f.package, f.advisory) for f in audit.audit({"setuptools": "65.5.0", "jinja2": "2.7.1", "pyyaml": "6.0.1"}, data)}
    assert ("setuptools", "PYSEC-2022-43012") in found  # ReDoS in package_index, fixed in 65.5.1
    assert ("jinja2", "PYSEC-2014-8") in found  # explicit version list and range introduced 0, fixed 2.7.2
    assert not [f for f in found if f[0] == "pyyaml"]
    assert not audit.audit({"setuptools": "65.5.1", "jinja2": "3.1.4"}, {"packages": {k: v for k, v in data["packages"].items() if k == "setuptools"}})


def test_last_affected_and_unordered_events():
    advisory = {"id": "X", "ranges": [[{"last_affected": "1.4"}, {"introduced": "1.2"}]], "versions": []}
    assert [audit.affected(v, advisory) for v in ("1.1", "1.2", "1.4", "1.4.1")] == [False, True, True, False]


def test_an_acceptance_needs_a_reason_and_expires(tmp_path):
    finding = audit.Finding("setuptools", "65.5.0", "PYSEC-2022-43012", ("CVE-2022-40897",), ("65.5.1",))
    accepted = tmp_path / "accepted.toml"
    accepted.write_text('[[accepted]]\nid = "CVE-2022-40897"\npackage = "setuptools"\nreason = "build only"\nexpires = 2027-01-31\n')
    entries = audit.load_accepted(accepted)
    assert audit.split([finding], entries, date(2027, 1, 31)) == ([], [])  # accepted by its alias, until the date
    still_open, expired = audit.split([finding], entries, date(2027, 2, 1))
    assert still_open == [finding] and expired and "accepted until 2027-01-31" in expired[0]
    accepted.write_text('[[accepted]]\nid = "CVE-2022-40897"\npackage = "setuptools"\nexpires = 2027-01-31\n')
    with pytest.raises(ValueError, match="reason"):
        audit.load_accepted(accepted)
