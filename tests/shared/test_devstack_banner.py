"""`make up`'s last words: where the dashboard and the overview are and how to log in, with the
dev clients that really exist; and a private runtime directory instead of platformdirs' warning."""

from __future__ import annotations

import json
import os
import stat
import warnings

from shared import devstack
from shared.testing.processes import DEFAULT_PORTS, REPO_ROOT


def test_banner_names_the_dashboard_the_overview_and_a_working_login():
    text = devstack.banner(12.3)
    analytics = f"http://127.0.0.1:{DEFAULT_PORTS['analytics']}"
    assert f"{analytics}/dashboard/" in text and f"{analytics}/dashboard/rounds/" in text
    clients = {c["client_id"]: c for c in json.loads((REPO_ROOT / "deploy" / "dev-clients.json").read_text())["clients"]}
    for client_id, secret in (("aarhus-bi", "dev-secret-aarhus"), ("kl-operator", "dev-secret-kl")):
        assert f"{client_id} / {secret}" in text
        assert clients[client_id]["client_secret"] == secret and "aggregates:read" in clients[client_id]["scopes"]


def test_a_session_without_xdg_runtime_dir_gets_a_private_one(tmp_path, monkeypatch):
    monkeypatch.setattr(devstack, "STATE", tmp_path)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    devstack.runtime_dir()
    path = os.environ["XDG_RUNTIME_DIR"]
    assert path == str(tmp_path / "xdg-runtime") and stat.S_IMODE(os.stat(path).st_mode) == 0o700
    import platformdirs

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert str(platformdirs.user_runtime_path("python_PostgresServer")).startswith(path)
