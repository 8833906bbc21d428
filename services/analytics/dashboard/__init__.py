"""The municipalities' dashboard (issue 9): server-rendered pages over analytics' publication."""

from fastapi import FastAPI

from services.analytics.dashboard.csrf import DashboardCsrf
from services.analytics.dashboard.router import router as dashboard_router
from services.analytics.dashboard.sessions import DashboardSessions, PostgresStore, SessionSettings, purge_worker


def install_dashboard(app: FastAPI) -> dict:
    """The dashboard's server-side sessions and its CSRF check (called before the common
    middleware, so they sit inside it: a cross-site form meets shared/app.py's check first);
    returns the dashboard's background workers for the service (the purge of ended sessions)."""
    settings = SessionSettings()
    app.state.dashboard_sessions = store = PostgresStore(app, settings)
    app.add_middleware(DashboardSessions, store=store)
    app.add_middleware(DashboardCsrf)
    return {"dashboard-sessions": purge_worker(settings)}


__all__ = ["dashboard_router", "install_dashboard"]
