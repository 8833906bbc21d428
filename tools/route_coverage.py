"""Which routes of the services no test reaches with a success (issues 21 and 26).

    BORGERBLIK_ROUTE_LOG=/tmp/routes .venv/bin/pytest -q -m "not kafka"    # records (make test does this)
    .venv/bin/python -m tools.route_coverage /tmp/routes                  # lists what is missing; exit 1 if any

The recorder, the reviewed exclusions and what counts as a success: shared/testing/route_log.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from shared.testing import route_log  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="the BORGERBLIK_ROUTE_LOG directory of a test run")
    parser.add_argument("--service", action="append", help="only this service (repeatable)")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        parser.error(f"{args.directory} is not a directory")
    operations = route_log.service_operations(args.service)
    missing = route_log.uncovered(args.directory, operations)
    if missing:
        print(route_log.report(missing, args.directory, len(operations)))
        return 1
    print(f"route coverage: every one of the {len(operations)} routes has a test that reaches its success path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
