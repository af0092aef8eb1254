"""This device's keys: the secret that proves a name is ours, one per server and name.

A key is 256 random bits as 43 characters of base64url (what ``secrets.token_urlsafe(32)``
makes). It lives in ``paths.data_dir()/keys/<server>/<name>``: *server* is ``host_port``
of the URL (lowercase, the default port written out), *name* the lowercase username;
the file holds the key and a newline, readable by its owner only (0600, folders 0700).
The server keeps only a hash of it, so a lost key cannot be recovered: an admin's
``workspace users reset NAME`` forgets it and prints a new invite for the owner instead.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from workspace_tui import paths

KEY_BYTES = 32
KEY_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes of base64url, unpadded
SECRET_RE = re.compile(r"[A-Za-z0-9_-]{32,128}")  # what the server takes as a key or an invite
_DEFAULT_PORTS = {"ws": 80, "http": 80, "wss": 443, "https": 443}


class KeyStoreError(OSError):
    """A key file that cannot be read, written or understood; the message names the file."""


def new_key() -> str:
    """A fresh key, as ``secrets.token_urlsafe(32)`` makes it (without importing secrets: start-up time)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).rstrip(b"=").decode("ascii")


def is_key(text: str) -> bool:
    """Whether *text* has the form of a key (the server alone says whether it is the right one)."""
    return KEY_RE.fullmatch(text) is not None


def is_secret(text: str) -> bool:
    """Whether *text* could be a key or an invite as the server takes them (to refuse typos early)."""
    return SECRET_RE.fullmatch(text) is not None


def server_folder(url: str) -> str:
    """``host_port`` of *url*, lowercase: ``ws://Chat.Example:4000/ws`` -> ``chat.example_4000``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    # An IPv6 address has colons: not every filesystem takes them.
    host = re.sub(r"[^a-z0-9.-]", "-", host).strip(".") or "localhost"
    return f"{host}_{port}"


def key_path(url: str, username: str) -> Path:
    """Where this device keeps its key for *username* on the server at *url*."""
    name = username.lower()
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{username!r} cannot name a key file")
    return paths.data_dir() / "keys" / server_folder(url) / name


def load_key(url: str, username: str) -> str | None:
    """The stored key for *username* on *url*; ``None`` when this device has none."""
    path = key_path(url, username)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"cannot read the key file {path}: {exc}") from None
    if not is_secret(text):
        raise KeyStoreError(f"the key file {path} does not hold a key (32-128 letters, digits, - and _)")
    return text


def save_key(url: str, username: str, key: str) -> Path:
    """Store *key* for *username* on *url* (replacing any earlier one); returns the file.

    Written to a temporary file first and renamed, so a crash never leaves half a key.
    """
    if not is_secret(key):
        raise ValueError("not a key: 32-128 letters, digits, - and _")
    path = key_path(url, username)
    try:
        for folder in (path.parent.parent, path.parent):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (key + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise KeyStoreError(f"cannot save the key in {path}: {exc.strerror or exc}") from None
    return path


def key_for(url: str, username: str) -> str:
    """The key to offer for *username* on *url*: the stored one, else a new one, saved first."""
    key = load_key(url, username)
    if key is None:
        key = new_key()
        save_key(url, username, key)
    return key
