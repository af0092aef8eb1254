"""Fixtures shared by every test.

Every test gets its own data and config directories, so no test reads or
writes the real user's store, outbox or config file.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("WORKSPACE_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("WORKSPACE_CONFIG_DIR", str(base / "config"))
    for var in ("WORKSPACE_URL", "WORKSPACE_USERNAME", "WORKSPACE_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return base
