"""What a refused handshake means for the user, and what to do about it.

The server says why in a ``Workspace-Refusal`` header (docs/protocol.md, issue 13);
each code becomes one sentence that ends with the command that fixes it. None of
them gets better by retrying: the client stops and shows the sentence.
"""

from __future__ import annotations

from typing import NamedTuple

from workspace_tui.protocol import DEFAULT_URL
from workspace_tui.protocol import REFUSED_BAD_INVITE as BAD_INVITE
from workspace_tui.protocol import REFUSED_INVITE_REQUIRED as INVITE_REQUIRED
from workspace_tui.protocol import REFUSED_KEY_REQUIRED as KEY_REQUIRED
from workspace_tui.protocol import REFUSED_NAME_TAKEN as NAME_TAKEN
from workspace_tui.protocol import REFUSED_NOT_MEMBER as NOT_MEMBER
from workspace_tui.protocol import REFUSED_THROTTLED as THROTTLED
from workspace_tui.protocol import REFUSED_WRONG_KEY as WRONG_KEY

REFUSALS = (KEY_REQUIRED, WRONG_KEY, INVITE_REQUIRED, BAD_INVITE, NOT_MEMBER, NAME_TAKEN, THROTTLED)


class Refusal(NamedTuple):
    code: str
    reason: str  # the whole story, with what to run
    detail: str  # a few words for a status line


def flags(url: str, username: str) -> str:
    """The ``--url``/``--username`` part of a suggested command (the URL only when not the default)."""
    where = f" --url {url}" if url != DEFAULT_URL else ""
    return f"{where} --username {username}"


def describe(code: str, username: str, url: str, retry_after: float | None = None,
             said: str = "") -> Refusal | None:
    """The user's sentence for refusal *code*; ``None`` for a code this client does not know.

    *url* is the URL as it may be shown (no query string).
    """
    f = flags(url, username)
    name = username
    if code in (KEY_REQUIRED, WRONG_KEY):
        which = "has no key for it" if code == KEY_REQUIRED else "has a different key"
        return Refusal(
            code,
            f"{name} is claimed on this server and this device {which}: on a device that has"
            f" {name}'s key run `workspace key show{f}`, then here `workspace login --import{f}`;"
            f" if the key is lost, the server's admin can reset the name (`workspace users reset {name}`"
            " gives a new invite);"
            " otherwise pick another name",
            f"{name} is claimed: this device {which}",
        )
    if code == INVITE_REQUIRED:
        return Refusal(
            code,
            f"{name} was created by the server's admin and waits for its invite:"
            f" run `workspace login{f}` with the invite your admin gave you",
            f"{name} needs its invite: workspace login",
        )
    if code == BAD_INVITE:
        return Refusal(
            code,
            f"the invite for {name} is wrong or already used: check it, or ask the server's admin"
            f" for a new one (`workspace users reset {name}`)",
            "the invite is wrong or already used",
        )
    if code == NOT_MEMBER:
        return Refusal(
            code,
            f"this server lets in only the names its admin created, and {name} is not one of them:"
            f" ask the admin to run `workspace users add {name}`, then run `workspace login{f}` with the invite",
            f"{name} is not a member of this server",
        )
    if code == NAME_TAKEN:
        return Refusal(
            code,
            f"a name that looks like {name} (the same up to case or look-alike letters) is already"
            " taken on this server: pick another name",
            f"a name like {name} is taken",
        )
    if code == THROTTLED:
        wait = f"{retry_after:.0f} s" if retry_after is not None else "a while"
        why = said.strip() or f"too many wrong keys or invites for {name} lately"  # the server says which limit
        return Refusal(code, f"{why}: wait {wait} and try again" if "try again" not in why else why,
                       f"refused for a while: wait {wait}")
    return None


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is not used by our server)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 10**7 else None
