"""The municipalities' dashboard (issue 9): server-rendered pages over analytics' publication."""

from services.analytics.dashboard.router import router as dashboard_router

__all__ = ["dashboard_router"]
