"""Known vulnerabilities in the installed Python packages, checked offline (issue 26).

The advisory data is the PyPI advisory database (pypa/advisory-database, OSV format, CC-BY 4.0,
tools/advisories/LICENSE), kept in the repository as one compressed file,
``tools/advisories/pypi-osv.json.gz``, with the commit and date it was built from. Nothing is
fetched at run time: the online services pip-audit uses cannot be reached from the build machines
(the package index here answers the per-version JSON API with 404 and the OSV API does not
resolve), and the npm "offline" OSV packages ship only a reader, no data.

Every installed distribution (but the project itself) is checked against every advisory of its
name: affected when its version is in an advisory's explicit versions or inside one of its
ECOSYSTEM ranges (introduced <= v < fixed, or <= last_affected).

Accepting a finding: an entry in ``tools/advisories/accepted.toml`` with the advisory id (or an
alias), the package, a reason and an expiry date; an expired entry fails the audit again.

    .venv/bin/python tools/dependency_audit.py                 # audit this environment (exit 1 on a finding)
    .venv/bin/python tools/dependency_audit.py build <clone>   # rebuild the data from a clone of the database
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path

from packaging.version import InvalidVersion, Version

HERE = Path(__file__).resolve().parent / "advisories"
DATA = HERE / "pypi-osv.json.gz"
ACCEPTED = HERE / "accepted.toml"
PROJECT = "borgerblik"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]

    def __str__(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.package} {self.version}: {self.advisory}{also}, fixed in {', '.join(self.fixed) or '-'}"


def load_data(path: Path = DATA) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def installed() -> dict[str, str]:
    """canonical name -> version of every installed distribution but the project itself."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) != PROJECT:
            found[canonical(name)] = dist.version
    return found


def _key(version: str) -> tuple[int, Version | str]:
    if version == "0":
        return (0, "")
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (2, version)


def in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """OSV ECOSYSTEM range: events in version order; introduced opens, fixed and last_affected close."""
    inside = False
    ordered = sorted(events, key=lambda event: _key(next(iter(event.values()))))
    for event in ordered:
        kind, bound = next(iter(event.items()))
        try:
            at = Version("0") if bound == "0" else Version(bound)
        except InvalidVersion:
            continue
        if kind == "introduced" and version >= at:
            inside = True
        elif kind == "fixed" and version >= at:
            inside = False
        elif kind == "last_affected" and version > at:
            inside = False
    return inside


def affected(version: str, advisory: dict) -> bool:
    if version in advisory.get("versions", ()):
        return True
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return any(in_range(parsed, events) for events in advisory.get("ranges", ()))


def audit(packages: dict[str, str], data: dict) -> list[Finding]:
    findings = []
    for name, version in sorted(packages.items()):
        for advisory in data["packages"].get(name, ()):
            if affected(version, advisory):
                fixed = tuple(e["fixed"] for events in advisory.get("ranges", ()) for e in events if "fixed" in e)
                findings.append(Finding(name, version, advisory["id"], tuple(advisory.get("aliases", ())), fixed))
    return findings


@dataclass(frozen=True)
class Acceptance:
    id: str
    package: str
    reason: str
    expires: date


def load_accepted(path: Path = ACCEPTED) -> list[Acceptance]:
    """The accepted findings; an entry without a reason or an expiry date is an error."""
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("accepted", [])
    accepted = []
    for entry in entries:
        missing = [key for key in ("id", "package", "reason", "expires") if not entry.get(key)]
        if missing or not isinstance(entry["expires"], date):
            raise ValueError(f"{path.name}: entry {entry.get('id', '?')} needs id, package, reason and expires (a date): {missing}")
        accepted.append(Acceptance(entry["id"], canonical(entry["package"]), entry["reason"], entry["expires"]))
    return accepted


def split(findings: list[Finding], accepted: list[Acceptance], today: date) -> tuple[list[Finding], list[str]]:
    """(findings not accepted, accepted entries that have expired)."""
    valid = [a for a in accepted if a.expires >= today]
    expired = [f"{a.package} {a.id}: accepted until {a.expires} ({a.reason})" for a in accepted if a.expires < today]
    open_findings = [
        f for f in findings
        if not any(a.package == f.package and (a.id == f.advisory or a.id in f.aliases) for a in valid)
    ]
    return open_findings, expired


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        build(Path(argv[1]))
        return 0
    data = load_data()
    packages = installed()
    findings = audit(packages, data)
    open_findings, expired = split(findings, load_accepted(), date.today())
    print(
        f"dependency audit: {len(packages)} installed packages checked against {data['source']} "
        f"(commit {data['commit'][:12]}, {data['date'][:10]}; advisories for {len(data['packages'])} packages): "
        f"{len(findings)} known vulnerabilities, {len(findings) - len(open_findings)} accepted"
    )
    for finding in open_findings:
        print(f"  VULNERABLE {finding}")
    for entry in expired:
        print(f"  EXPIRED ACCEPTANCE {entry}")
    return 1 if open_findings or expired else 0


def build(clone: Path) -> None:
    """tools/advisories/pypi-osv.json.gz from a git clone of the PyPI advisory database."""
    import yaml

    git = ["git", "-C", str(clone)]
    commit = subprocess.check_output([*git, "rev-parse", "HEAD"], text=True).strip()
    when = subprocess.check_output([*git, "log", "-1", "--format=%cI"], text=True).strip()
    packages: dict[str, list[dict]] = {}
    for path in sorted((clone / "vulns").rglob("*.yaml")):
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
        if record.get("withdrawn"):
            continue
        for entry in record.get("affected", []):
            package = entry.get("package", {})
            if package.get("ecosystem") != "PyPI":
                continue
            ranges = [
                [{kind: str(bound) for kind, bound in event.items()} for event in r.get("events", [])]
                for r in entry.get("ranges", []) if r.get("type") == "ECOSYSTEM"
            ]
            packages.setdefault(canonical(package["name"]), []).append(
                {"id": record["id"], "aliases": record.get("aliases", []), "ranges": ranges, "versions": [str(v) for v in entry.get("versions", [])]}
            )
    document = {"source": "pypa/advisory-database (OSV format, ecosystem PyPI)", "commit": commit, "date": when, "packages": dict(sorted(packages.items()))}
    with gzip.GzipFile(DATA, "wb", mtime=0) as handle:
        handle.write(json.dumps(document, separators=(",", ":")).encode())
    print(f"{DATA}: {sum(len(v) for v in packages.values())} advisories for {len(packages)} packages, commit {commit[:12]} of {when}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
