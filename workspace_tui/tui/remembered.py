"""What the chat remembers between runs: the theme you picked, and what you sent (for Up/Down).

Small JSON files in the user data directory (see :mod:`workspace_tui.paths`),
written whole to a temporary file and renamed into place, readable by you only
(the history holds what you wrote). A missing, damaged or hand-edited file is
treated as empty: remembering is a convenience, never a reason not to start.

The history is per server and username, bounded to :data:`HISTORY_MAX` entries
of at most :data:`ENTRY_MAX_BYTES` each (a bigger message is sent, just not kept).
Every send re-reads the file before appending, so two windows of the same user
add to one history instead of overwriting each other's.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from workspace_tui.paths import chat_settings_path

HISTORY_MAX = 200  # entries kept per server and user (the input's own recall list holds as many)
ENTRY_MAX_BYTES = 16 * 1024  # UTF-8 bytes of one kept entry


def _read(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            data = fh.read(HISTORY_MAX * ENTRY_MAX_BYTES * 2 + 4096)  # a file bigger than that is not ours
        return json.loads(data)
    except (OSError, ValueError):
        return None


def _write(path: Path, data: Any) -> None:
    """Replace *path* with *data* as JSON, atomically, mode 0600. Raises ``OSError``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- the theme -----------------------------------------------------------------


def load_theme(path: Path | None = None) -> str | None:
    """The theme name last picked, or ``None``."""
    data = _read(path or chat_settings_path())
    theme = data.get("theme") if isinstance(data, dict) else None
    return theme if isinstance(theme, str) and 0 < len(theme) <= 100 else None


def save_theme(theme: str, path: Path | None = None) -> None:
    """Remember *theme*, keeping any other settings in the file. Raises ``OSError``."""
    path = path or chat_settings_path()
    data = _read(path)
    settings = data if isinstance(data, dict) else {}
    if settings.get("theme") == theme:
        return
    settings["theme"] = theme
    _write(path, settings)


# -- the input history ---------------------------------------------------------


def _keepable(text: object) -> bool:
    return isinstance(text, str) and bool(text) and len(text.encode("utf-8", "surrogatepass")) <= ENTRY_MAX_BYTES


def load_history(path: Path) -> list[str]:
    """What was sent, oldest first (at most :data:`HISTORY_MAX` entries); ``[]`` when there is none."""
    data = _read(path)
    entries = data.get("sent") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries if _keepable(e)][-HISTORY_MAX:]


def remember_sent(path: Path, text: str) -> list[str]:
    """Add *text* to the history at *path* (not twice in a row) and return it. Raises ``OSError``."""
    entries = load_history(path)
    if not _keepable(text) or (entries and entries[-1] == text):
        return entries
    entries.append(text)
    del entries[:-HISTORY_MAX]
    _write(path, {"sent": entries})
    return entries


# -- muted rooms -------------------------------------------------------------

MUTED_MAX = 1000  # rooms remembered as muted, per server and user


def load_muted(account: str, path: Path | None = None) -> set[str]:
    """The rooms muted for *account* (server URL and username), or an empty set."""
    data = _read(path or chat_settings_path())
    muted = data.get("muted") if isinstance(data, dict) else None
    rooms = muted.get(account) if isinstance(muted, dict) else None
    if not isinstance(rooms, list):
        return set()
    return {r for r in rooms[:MUTED_MAX] if isinstance(r, str) and 0 < len(r) <= 100}


def save_muted(account: str, rooms: set[str], path: Path | None = None) -> None:
    """Remember *rooms* as muted for *account*, keeping every other setting. Raises ``OSError``."""
    path = path or chat_settings_path()
    data = _read(path)
    settings = data if isinstance(data, dict) else {}
    muted = settings.get("muted") if isinstance(settings.get("muted"), dict) else {}
    muted[account] = sorted(rooms)[:MUTED_MAX]
    settings["muted"] = muted
    _write(path, settings)
