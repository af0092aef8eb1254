"""``python -m workspace_tui`` runs the ``workspace`` command."""

from workspace_tui.cli import run

run()
