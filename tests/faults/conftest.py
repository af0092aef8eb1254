"""Fault tests start servers as subprocesses: keep the developer's WORKSPACE_* server settings out."""

from __future__ import annotations

from tests.server.conftest import clean_server_env  # noqa: F401  (autouse fixture, re-exported)
