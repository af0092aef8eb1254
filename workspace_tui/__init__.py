"""workspace: a self-hosted terminal chat for small teams."""

from __future__ import annotations

__version__ = "0.1.0"
