"""What each refusal of analytics' service functions answers over HTTP (the tables, releases,
calibration and BI keys): one table, installed on the app by ``main.create_app``, so routers only
call and return. The OData feed answers its own refusals in OData's error body (api.ODataRoute);
the dashboard answers with its pages."""

from __future__ import annotations

from fastapi import FastAPI, status

from services.analytics import service
from services.analytics.bi_keys import domain as bi_key_rules
from services.analytics.bi_keys import service as bi_keys
from shared.app import ErrorTable, install_error_table

# Exception class -> (status, the detail it answers). A subclass's own row wins over its base's.
ERRORS: ErrorTable = {
    service.RoundNotFound: (status.HTTP_404_NOT_FOUND, lambda exc: f"no data for round {exc.args[0]}"),
    service.NotReleased: (
        status.HTTP_404_NOT_FOUND,
        lambda exc: f"round {exc.args[0]} has no release yet: its tables are published from its first release on",
    ),
    # A preliminary release after the final one, or a phase or scope that is not one.
    service.ReleaseRefused: (status.HTTP_409_CONFLICT, str),
    # A key with more rights than its maker has.
    bi_key_rules.KeyRightsError: (status.HTTP_403_FORBIDDEN, str),
    # Unknown, or another client's key (not named to it).
    bi_keys.KeyNotFound: (status.HTTP_404_NOT_FOUND, lambda exc: f"no BI key {exc.args[0]} of yours"),
}


def install_errors(app: FastAPI) -> None:
    install_error_table(app, ERRORS)
