"""The chat's remappable keys: binding ids, their default keys, and checking a user's keymap.

Pure (no Textual import), so ``workspace chat`` can check the ``[chat.keys]``
table of the config file before the app starts. :class:`~workspace_tui.tui.app.ChatApp`
declares a binding with each of these ids; a test keeps the two in step.

Config file example::

    [chat.keys]
    "status.away" = "ctrl+a"
    "message.failed" = "f6"
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# binding id -> (default key, what it does)
KEY_IDS: dict[str, tuple[str, str]] = {
    "help": ("f1", "Show every key"),
    "status.online": ("f2", "Set your status to online"),
    "status.away": ("f3", "Set your status to away"),
    "status.busy": ("f4", "Set your status to busy"),
    "status.offline": ("f5", "Appear offline"),
    "message.failed": ("ctrl+f", "List failed messages: retry or discard any one"),
    "message.retry": ("f8", "Retry your failed message (several: pick one)"),
    "message.discard": ("f9", "Discard your failed message (several: pick one)"),
    "messages.page_up": ("pageup", "Scroll up; the top loads older messages"),
    "messages.page_down": ("pagedown", "Scroll down"),
    "messages.bottom": ("ctrl+end", "Jump to the latest message"),
    "roster.toggle": ("f7", "Show or hide who is here (starts hidden below 100 columns)"),
    "connection.reconnect": ("ctrl+r", "Reconnect now, without waiting for the next attempt"),
    "rooms.switcher": ("ctrl+k", "Go to a room or a direct message: type a few letters"),
    "rooms.next": ("alt+down,ctrl+pagedown", "Next room in the sidebar"),
    "rooms.previous": ("alt+up,ctrl+pageup", "Previous room in the sidebar"),
    "rooms.next_unread": ("alt+shift+down,ctrl+n", "Next room with unread messages (mentions first)"),
    "sidebar.toggle": ("ctrl+t", "Show or hide the rooms (starts hidden below 100 columns)"),
}

# Keys the message input needs for typing and moving: a remapped binding may not take them.
RESERVED = {
    "enter", "tab", "shift+tab", "escape", "space", "backspace", "delete",
    "up", "down", "left", "right", "home", "end", "ctrl+j", "ctrl+c", "ctrl+q", "ctrl+p",
}

# One key: a name like "f6", "ctrl+a", "ctrl+shift+up", "question_mark", or a single character.
_KEY = re.compile(r"^(?:(?:ctrl|alt|shift|super|meta|hyper)\+)*(?:[a-z0-9_]+|[^\s,+])$")


class KeymapError(ValueError):
    """The ``[chat.keys]`` table cannot be used; the message says which entry and why."""


def check_keymap(keymap: object) -> dict[str, str]:
    """A user's keymap (binding id -> key, or keys separated by commas), checked.

    Raises :class:`KeymapError` for an unknown id, a value that is not a key, or a
    key given to two ids.
    """
    if not isinstance(keymap, Mapping):
        raise KeymapError("[chat.keys] must be a table of binding id = \"key\"")
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for binding_id, value in keymap.items():
        if binding_id not in KEY_IDS:
            known = ", ".join(KEY_IDS)
            raise KeymapError(f"[chat.keys]: unknown binding id {binding_id!r}; the ids are: {known}")
        if not isinstance(value, str) or not value.strip():
            raise KeymapError(f"[chat.keys]: {binding_id} must be a key such as \"ctrl+a\" or \"f6\"")
        keys = [k.strip().lower() if len(k.strip()) > 1 else k.strip() for k in value.split(",")]
        for key in keys:
            if not _KEY.match(key):
                raise KeymapError(f"[chat.keys]: {binding_id} = {value!r}: {key!r} is not a key name")
            bare = key.removeprefix("shift+")
            if key in RESERVED or len(bare) == 1 or bare in ("question_mark", "space"):
                raise KeymapError(
                    f"[chat.keys]: {binding_id} = {value!r}: {key!r} is needed for typing;"
                    " use a function key or ctrl+ / alt+ with a letter"
                )
            if key in owner and owner[key] != binding_id:
                raise KeymapError(f"[chat.keys]: {key!r} is given to both {owner[key]} and {binding_id}")
            owner[key] = binding_id
        out[str(binding_id)] = ",".join(keys)
    # A remapped key must not silently steal another binding's default key.
    for binding_id, (default, _what) in KEY_IDS.items():
        if binding_id in out:
            continue
        for key in default.split(","):
            if key in owner:
                raise KeymapError(
                    f"[chat.keys]: {key!r} (for {owner[key]}) is already the key of {binding_id};"
                    f" give {binding_id} another key too"
                )
    return out
