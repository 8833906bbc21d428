"""Pytest plugin: at the end of a full run with ``BORGERBLIK_ROUTE_LOG`` set (``make test``), fail
the run when a route of a service has no test that reached its success path
(``shared/testing/route_log.py``). Partial runs (a file, ``-k``, ``-m`` other than the Makefile's,
``--lf``, ``--deselect``, a run stopped early) only record: a subset cannot prove coverage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.testing import route_log

_RESULT = pytest.StashKey[tuple[str, str]]()  # (what to print, "fail" | "ok" | "skipped")

# The -m expressions of a full run: `make test` leaves out what `make test-kafka` runs.
FULL_RUN_MARKERS = {"", "not kafka"}


def _why_partial(session: pytest.Session) -> str | None:
    config = session.config
    tests_dir = (Path(str(config.rootpath)) / "tests").resolve()
    args = [Path(str(config.invocation_params.dir), arg.split("::", 1)[0]).resolve() for arg in config.args]
    if any(arg != tests_dir for arg in args) or any("::" in arg for arg in config.args):
        return "not the whole tests/ directory"
    option = config.option
    if getattr(option, "keyword", ""):
        return f"-k {option.keyword!r}"
    if (getattr(option, "markexpr", "") or "").strip() not in FULL_RUN_MARKERS:
        return f"-m {option.markexpr!r}"
    if getattr(option, "deselect", None) or getattr(option, "lf", False):
        return "--deselect/--lf"
    if session.shouldstop or session.shouldfail:
        return "the run stopped early"
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    directory = os.environ.get(route_log.ENV)
    if not directory:
        return
    why = _why_partial(session)
    if why is not None:
        session.config.stash[_RESULT] = (f"route coverage: not checked ({why}); records in {directory}", "skipped")
        return
    try:
        operations = route_log.service_operations()
        missing = route_log.uncovered(directory, operations)
    except Exception as error:  # a service that no longer builds: say so instead of an internal error
        session.config.stash[_RESULT] = (f"route coverage: could not list the services' routes: {error!r}", "fail")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    if missing:
        session.config.stash[_RESULT] = (route_log.report(missing, directory, len(operations)), "fail")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        session.config.stash[_RESULT] = (
            f"route coverage: every one of the {len(operations)} routes has a test that reaches its success path",
            "ok",
        )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    result = config.stash.get(_RESULT, None)
    if result is None:
        return
    text, outcome = result
    if outcome == "fail":
        terminalreporter.section("route coverage", sep="=", red=True, bold=True)
        terminalreporter.line(text, red=True)
    else:
        terminalreporter.line(text)
