"""The wire format, shared by the server, the client and the TUI.

Pure: no asyncio, no websockets, no textual. Everything here is a value, a
check or a conversion, so both ends of a connection agree by construction:

* constants: statuses, limits, error and close codes;
* checks: :func:`validate_username`, :func:`sanitize_text`;
* client frames: :func:`parse_client_frame` turns raw text into a typed
  request or raises :class:`FrameError` carrying the ``error`` frame to send;
* server frames: ``*_frame`` builders return plain dicts ready for
  ``json.dumps``, and :func:`parse_server_frame` turns received text back into
  typed values for clients.

The seed protocol (``../shared/seed/websocket-protocol.md``) is reproduced
field for field; everything added is documented in ``docs/protocol.md``.
"""

import json
import re
import time
from datetime import datetime
from functools import cache
from typing import Any, Final, Literal, NamedTuple, Self, Union

from workspace_tui.text_rules import drop_invisible, is_blank

try:  # the builtin module: ``import hashlib`` would load OpenSSL's too (~1.5 ms at startup)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - CPython always has it
    from hashlib import blake2b as _blake2b

# -- constants ---------------------------------------------------------------

STATUSES: Final = ("online", "away", "busy", "offline")
Status = Literal["online", "away", "busy", "offline"]

WS_PATH: Final = "/ws"
DEFAULT_URL: Final = "ws://127.0.0.1:4000/ws"

MAX_PAYLOAD_BYTES: Final = 1024 * 1024
MAX_CLIENT_MSG_ID: Final = 64
MAX_HISTORY_PAGE: Final = 200
MAX_JOIN_HISTORY: Final = 1000
# A history frame (join, page, resume) carries at most this much JSON; a single message that is
# bigger on its own goes alone in its frame.
HISTORY_FRAME_BYTES: Final = 512 * 1024
USERNAME_MAX: Final = 32

# Close codes. 1001/1008/1009 are the standard ones the issue names; the 4xxx
# codes are ours and documented in docs/protocol.md.
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008  # flooding past the rate limit
CLOSE_TOO_BIG: Final = 1009
CLOSE_IDLE: Final = 4000  # nothing received within the idle timeout
CLOSE_SLOW_CONSUMER: Final = 4001  # outgoing buffer passed its limit

# Error codes carried by ``error`` frames.
ERR_INVALID_JSON: Final = "invalid_json"
ERR_BINARY_FRAME: Final = "binary_frame"
ERR_UNKNOWN_TYPE: Final = "unknown_type"
ERR_INVALID_FIELD: Final = "invalid_field"
ERR_INVALID_STATUS: Final = "invalid_status"
ERR_EMPTY_TEXT: Final = "empty_text"
ERR_RATE_LIMITED: Final = "rate_limited"
ERR_UNAVAILABLE: Final = "unavailable"  # store or broker cannot take the message now
ERR_NOT_ALLOWED: Final = "not_allowed"  # e.g. presence or typing on a quiet (presence=none) connection
ERROR_CODES: Final = (
    ERR_INVALID_JSON,
    ERR_BINARY_FRAME,
    ERR_UNKNOWN_TYPE,
    ERR_INVALID_FIELD,
    ERR_INVALID_STATUS,
    ERR_EMPTY_TEXT,
    ERR_RATE_LIMITED,
    ERR_UNAVAILABLE,
    ERR_NOT_ALLOWED,
)
# Rejections a client must not retry: the same frame will fail the same way.
PERMANENT_ERRORS: Final = frozenset(
    {ERR_INVALID_JSON, ERR_UNKNOWN_TYPE, ERR_INVALID_FIELD, ERR_INVALID_STATUS, ERR_EMPTY_TEXT, ERR_NOT_ALLOWED}
)

# Identity (docs/protocol.md, "Names that belong to people"): proof of a name travels in the
# Sec-WebSocket-Protocol header, never in the URL.
SUBPROTOCOL: Final = "workspace.v1"  # selected whenever offered
KEY_PREFIX: Final = "key."  # key.<KEY>: the secret that proves a name
INVITE_PREFIX: Final = "invite."  # invite.<CODE>: a one-time invite, redeemed with a key
REFUSAL_HEADER: Final = "Workspace-Refusal"  # the machine-readable reason of a refused handshake
AUTH_MODES: Final = ("claim", "invite", "open")
_SECRET_RE: Final = r"[A-Za-z0-9_\-]{32,128}"

# Refusal codes, in the REFUSAL_HEADER of a refused handshake.
REFUSED_KEY_REQUIRED: Final = "key_required"
REFUSED_WRONG_KEY: Final = "wrong_key"
REFUSED_INVITE_REQUIRED: Final = "invite_required"
REFUSED_BAD_INVITE: Final = "bad_invite"
REFUSED_NOT_MEMBER: Final = "not_member"
REFUSED_NAME_TAKEN: Final = "name_taken"
REFUSED_THROTTLED: Final = "throttled"


def offered_secrets(protocols: list[str]) -> tuple[str | None, str | None, str | None]:
    """``(key, invite, problem)`` from the subprotocols a client offered; *problem* names a
    malformed one."""
    key = invite = None
    for p in protocols:
        for prefix in (KEY_PREFIX, INVITE_PREFIX):
            if p.startswith(prefix):
                value = p[len(prefix):]
                if not _compiled(_SECRET_RE).fullmatch(value):
                    return None, None, f"{prefix}... must be 32 to 128 characters of A-Z a-z 0-9 _ -"
                if prefix == KEY_PREFIX:
                    key = value
                else:
                    invite = value
    return key, invite, None


# Letters that look alike in most terminal fonts fold to one: ``aIice`` and ``alice`` are one name.
_LOOKALIKES: Final = str.maketrans({"i": "l", "1": "l", "|": "l", "0": "o"})


def name_key(username: str) -> str:
    """The identity of a name: two names with the same key are the same name (case and
    look-alike letters ignored)."""
    return username.lower().translate(_LOOKALIKES)


# -- checks ------------------------------------------------------------------

_USERNAME_RE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_HAS_ALNUM: Final = re.compile(r"[A-Za-z0-9]")


def validate_username(name: str | None) -> str | None:
    """Return ``None`` when *name* is a valid username, else a readable reason."""
    if not name:
        return "username is required (?username=NAME)"
    if len(name) > USERNAME_MAX:
        return f"username must be at most {USERNAME_MAX} characters"
    if not _USERNAME_RE.fullmatch(name):
        return "username may contain only letters, digits, '_', '.' and '-'"
    if not _HAS_ALNUM.search(name):
        # '_', '..' or '-' alone would be a name nobody can tell apart or say out loud.
        return "username must contain at least one letter or digit"
    return None


# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC strings up
# to BEL or ST, and two-character escapes. The 8-bit C1 introducers (0x9b CSI,
# 0x9d OSC, 0x90 DCS ...) are matched too, before the C1 sweep below.
_ESCAPES: Final = (
    r"""
    (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?          # CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?  # OSC DCS SOS PM APC
    | \x1b[\x20-\x2f]*[\x30-\x7e]?                                 # other escapes
    """
)
# C0 controls except TAB and LF, DEL, C1 controls, bidi embeddings/overrides/isolates.
_CONTROLS: Final = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"


@cache
def _compiled(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """*pattern* compiled on first use: a one-liner that never needs it does not pay for it."""
    return re.compile(pattern, flags)


def sanitize_text(text: str) -> str:
    """Make untrusted text inert for a terminal.

    Removes escape sequences (ANSI/OSC/DCS), C0 controls other than newline and
    tab, DEL, C1 controls and bidi override/isolate characters; CRLF and lone
    CR become LF. No HTML escaping: clients render plain text. Lone surrogates
    (from JSON ``\\udXXX`` escapes) are dropped so the result encodes as UTF-8.
    Then invisible characters go and combining marks are capped
    (:func:`workspace_tui.text_rules.drop_invisible`).
    """
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to clean
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _compiled(_ESCAPES, re.VERBOSE).sub("", text)
    text = _compiled(_CONTROLS).sub("", text)
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = "".join(ch for ch in text if not "\ud800" <= ch <= "\udfff")
    return drop_invisible(text)


# -- identifiers and time ----------------------------------------------------


def user_id_for(username: str) -> str:
    """The stable ``userId`` of a username: the same on every node and restart."""
    return "user_" + _blake2b(username.encode(), digest_size=8).hexdigest()


def make_message_id(ms: int, seq: int) -> str:
    """A message id that sorts (as a string) in acceptance order.

    ``ms`` is a millisecond clock that never goes backwards, ``seq`` orders ids
    within one millisecond. 13 digits of milliseconds last until the year 2286.
    """
    return f"msg_{ms:013d}_{seq:06d}"


def message_id_key(message_id: str) -> tuple[int, int] | None:
    """``(ms, seq)`` of a message id made by :func:`make_message_id`, else ``None``."""
    m = _compiled(_MSG_ID_RE, re.ASCII).fullmatch(message_id)
    return (int(m[1]), int(m[2])) if m else None


_MSG_ID_RE: Final = r"msg_(\d{13})_(\d{6})"


_second: tuple[int, str] = (-1, "")  # the last whole second formatted and its text: a burst shares one strftime


def iso_timestamp(ms: int | None = None) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2026-01-16T10:00:00.000Z``."""
    global _second
    if ms is None:
        ms = time.time_ns() // 1_000_000
    second, milli = divmod(ms, 1000)
    cached = _second  # one tuple, swapped whole: safe if two threads format at once
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{cached[1]}{milli:03d}Z"


def parse_timestamp(value: str) -> datetime:
    """The aware UTC datetime of a protocol timestamp."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- values ------------------------------------------------------------------
#
# Records are NamedTuples, not dataclasses: every one-liner defines them all at
# start-up, and a NamedTuple costs a quarter of what a frozen dataclass does to create.
# For the same reason this module (and client/events.py) has no
# ``from __future__ import annotations``: NamedTuple would compile each string annotation.


class ChatMessage(NamedTuple):
    """A stored chat message, as carried in ``message:new`` and ``history``."""

    id: str
    user_id: str
    username: str
    text: str
    created_at: str
    client_msg_id: str | None = None
    verified: bool = False  # the author had proved the name when sending (docs/protocol.md)
    room: str = "general"

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "userId": self.user_id,
            "username": self.username,
            "text": self.text,
            "createdAt": self.created_at,
        }
        if self.client_msg_id is not None:
            data["clientMsgId"] = self.client_msg_id
        if self.verified:  # absent means not proved: the common case costs no bytes
            data["verified"] = True
        data["room"] = self.room
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Self:
        return cls(
            id=_str(data, "id"),
            user_id=_str(data, "userId"),
            username=_str(data, "username"),
            text=_str(data, "text"),
            created_at=_str(data, "createdAt"),
            client_msg_id=data.get("clientMsgId") if isinstance(data.get("clientMsgId"), str) else None,
            verified=data.get("verified") is True,
            room=data["room"] if isinstance(data.get("room"), str) else "general",
        )


class RosterEntry(NamedTuple):
    """One online user in ``connected.users``."""

    user_id: str
    username: str
    status: str
    connections: int = 1
    verified: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "username": self.username,
            "status": self.status,
            "connections": self.connections,
            **({"verified": True} if self.verified else {}),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Self:
        conns = data.get("connections", 1)
        return cls(
            user_id=_str(data, "userId"),
            username=_str(data, "username"),
            status=_str(data, "status"),
            connections=conns if isinstance(conns, int) and not isinstance(conns, bool) else 1,
            verified=data.get("verified") is True,
        )


class Limits(NamedTuple):
    """The server's limits, announced in ``connected.limits`` (0 means off)."""

    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    messages_per_minute: int = 100
    max_connections_per_user: int = 3
    idle_timeout_seconds: float = 300

    def to_wire(self) -> dict[str, Any]:
        return {
            "maxPayloadBytes": self.max_payload_bytes,
            "messagesPerMinute": self.messages_per_minute,
            "maxConnectionsPerUser": self.max_connections_per_user,
            "idleTimeoutSeconds": self.idle_timeout_seconds,
        }

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            return cls()
        d = cls()
        return cls(
            max_payload_bytes=_num(data.get("maxPayloadBytes"), d.max_payload_bytes),
            messages_per_minute=_num(data.get("messagesPerMinute"), d.messages_per_minute),
            max_connections_per_user=_num(data.get("maxConnectionsPerUser"), d.max_connections_per_user),
            idle_timeout_seconds=_num(data.get("idleTimeoutSeconds"), d.idle_timeout_seconds),
        )


# -- client -> server --------------------------------------------------------


class FrameError(Exception):
    """A client frame the server rejects; :meth:`frame` is the ``error`` to send back."""

    def __init__(self, code: str, message: str, client_msg_id: str | None = None, frame_type: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_msg_id = client_msg_id
        self.frame_type = frame_type

    def frame(self) -> dict[str, Any]:
        return error_frame(self.code, self.message, client_msg_id=self.client_msg_id, frame_type=self.frame_type)


class SendMessage(NamedTuple):
    """``message:send``; ``text`` is already sanitized and non-empty."""

    text: str
    client_msg_id: str | None = None
    room: str = "general"  # a room id, or a dm: id the server made from ``to``
    to: tuple[str, ...] = ()  # a direct message to these names (the server makes the room)


class UpdatePresence(NamedTuple):
    """``presence:update`` from a client."""

    status: str


class SetTyping(NamedTuple):
    """``typing:indicator`` from a client."""

    is_typing: bool
    room: str = "general"


class RequestHistory(NamedTuple):
    """``history:request``: up to ``limit`` messages before the id ``before`` (latest if ``None``)."""

    before: str | None = None
    limit: int = 50
    room: str = "general"


class RoomRequest(NamedTuple):
    """``room:create`` / ``join`` / ``leave`` / ``invite`` / ``topic`` / ``list`` / ``members``."""

    op: str  # create, join, leave, invite, topic, list, members
    room: str = ""
    topic: str = ""
    private: bool = False
    username: str = ""  # invite: who; members: list after this name
    limit: int = 100


class Ping(NamedTuple):
    """``ping``: an application-level heartbeat, answered with ``pong``."""

    id: Any = None


class MarkRead(NamedTuple):
    """``read:update``: the user has read *room* up to and including *message_id*."""

    room: str
    message_id: str


GENERAL: Final = "general"  # the room every user is in (and, until rooms exist, the only one)
ROOMS: Final = (GENERAL,)
UNREAD_CAP: Final = 1000  # unread and mention counts stop here ("1000 or more")

ClientFrame = Union[SendMessage, UpdatePresence, SetTyping, RequestHistory, Ping, MarkRead, RoomRequest]

ROOM_RE: Final = re.compile(r"[a-z0-9][a-z0-9_\-]{0,31}")
DM_PREFIX: Final = "dm:"
DM_MAX: Final = 8  # participants of a direct message, the sender included
TOPIC_MAX: Final = 200
ROOM_OPS: Final = ("create", "join", "leave", "invite", "topic", "list", "members")
MAX_MEMBERS_PAGE: Final = 500


def dm_room(names: list[str] | tuple[str, ...]) -> str:
    """The room id of a direct message between *names* (lowercase, sorted, each once)."""
    return DM_PREFIX + ",".join(sorted({n.lower() for n in names}))


def dm_participants(room: str) -> list[str] | None:
    """The lowercase names of a ``dm:`` room id, or ``None`` when *room* is not a valid one."""
    if not room.startswith(DM_PREFIX):
        return None
    names = room[len(DM_PREFIX):].split(",")
    if not 2 <= len(names) <= DM_MAX or names != sorted(set(names)):
        return None
    if any(validate_username(n) or n != n.lower() for n in names):
        return None
    return names


def room_problem(room: object) -> str | None:
    """Why *room* is not a room id (``None``: it is one)."""
    if not isinstance(room, str):
        return "room must be a string"
    if room.startswith(DM_PREFIX):
        return None if dm_participants(room) else "a dm: room names 2 to 8 sorted lowercase usernames"
    return None if ROOM_RE.fullmatch(room) else "room must be 1-32 of a-z 0-9 _ - (starting with a letter or digit)"


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Validate one frame received from a client.

    Raises :class:`FrameError` with the code to report; the caller sends
    ``exc.frame()`` and keeps the connection open. Unknown fields are ignored.
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raise FrameError(ERR_BINARY_FRAME, "binary frames are not supported; send JSON text frames")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError(ERR_INVALID_JSON, "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError(ERR_INVALID_JSON, "frame must be a JSON object")
    kind = obj.get("type")
    cmid = obj.get("clientMsgId")
    if kind == "message:send":
        # Printable only: the id is echoed in message:new to every user, so it must be as inert as text.
        if cmid is not None and not (isinstance(cmid, str) and 0 < len(cmid) <= MAX_CLIENT_MSG_ID and cmid.isprintable()):
            raise FrameError(
                ERR_INVALID_FIELD,
                f"clientMsgId must be a string of 1 to {MAX_CLIENT_MSG_ID} printable characters",
                frame_type=kind,
            )
        text = obj.get("text")
        if not isinstance(text, str):
            raise FrameError(ERR_INVALID_FIELD, "text must be a string", cmid, kind)
        cleaned = sanitize_text(text)
        if is_blank(cleaned):
            why = "message text is empty" if not text.strip() else (
                "message text has nothing visible once cleaned (only blank, invisible or control characters)"
            )
            raise FrameError(ERR_EMPTY_TEXT, why, cmid, kind)
        room = obj.get("room", GENERAL)
        to = obj.get("to")
        if to is not None:
            if (not isinstance(to, list) or not 1 <= len(to) < DM_MAX
                    or any(not isinstance(n, str) or validate_username(n) for n in to)):
                raise FrameError(ERR_INVALID_FIELD, f"to must be a list of 1 to {DM_MAX - 1} usernames", cmid, kind)
            return SendMessage(cleaned, cmid, "", tuple(to))
        problem = room_problem(room)
        if problem:
            raise FrameError(ERR_INVALID_FIELD, problem, cmid, kind)
        return SendMessage(cleaned, cmid, room)
    if kind == "typing:indicator":
        is_typing = obj.get("isTyping")
        if not isinstance(is_typing, bool):
            raise FrameError(ERR_INVALID_FIELD, "isTyping must be true or false", frame_type=kind)
        room = obj.get("room", GENERAL)
        problem = room_problem(room)
        if problem:
            raise FrameError(ERR_INVALID_FIELD, problem, frame_type=kind)
        return SetTyping(is_typing, room)
    if kind == "presence:update":
        status = obj.get("status")
        if not isinstance(status, str) or status not in STATUSES:
            raise FrameError(
                ERR_INVALID_STATUS, "status must be one of: " + ", ".join(STATUSES), frame_type=kind
            )
        return UpdatePresence(status)
    if kind == "ping":
        return Ping(obj.get("id"))
    if kind == "history:request":
        before = obj.get("before")
        limit = obj.get("limit", 50)
        if before is not None and not (isinstance(before, str) and message_id_key(before) is not None):
            raise FrameError(ERR_INVALID_FIELD, "before must be a message id (msg_<13 digits>_<6 digits>)",
                             frame_type=kind)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_HISTORY_PAGE:
            raise FrameError(
                ERR_INVALID_FIELD, f"limit must be an integer from 1 to {MAX_HISTORY_PAGE}", frame_type=kind
            )
        room = obj.get("room", GENERAL)
        problem = room_problem(room)
        if problem:
            raise FrameError(ERR_INVALID_FIELD, problem, frame_type=kind)
        return RequestHistory(before, limit, room)
    if kind == "read:update":
        room = obj.get("room", GENERAL)
        mid = obj.get("messageId")
        problem = room_problem(room)
        if problem:
            raise FrameError(ERR_INVALID_FIELD, problem, frame_type=kind)
        if not (isinstance(mid, str) and message_id_key(mid) is not None):
            raise FrameError(ERR_INVALID_FIELD, "messageId must be a message id (msg_<13 digits>_<6 digits>)",
                             frame_type=kind)
        return MarkRead(room, mid)
    if isinstance(kind, str) and kind.startswith("room:") and kind[5:] in ROOM_OPS:
        return _room_request(obj, kind)
    if not isinstance(kind, str):
        raise FrameError(ERR_INVALID_FIELD, "type must be a string")
    raise FrameError(ERR_UNKNOWN_TYPE, f"unknown frame type {kind[:64]!r}", frame_type=sanitize_text(kind[:64]))


def _room_request(obj: dict[str, Any], kind: str) -> RoomRequest:
    op = kind[5:]
    if op == "list":
        return RoomRequest("list")
    room = obj.get("room")
    problem = room_problem(room)
    if problem:
        raise FrameError(ERR_INVALID_FIELD, problem, frame_type=kind)
    assert isinstance(room, str)
    if op == "create" and (room == GENERAL or room.startswith(DM_PREFIX)):
        raise FrameError(ERR_INVALID_FIELD, f"{room} cannot be created: it is not a room name", frame_type=kind)
    topic = obj.get("topic", "")
    if not isinstance(topic, str) or len(topic) > TOPIC_MAX:
        raise FrameError(ERR_INVALID_FIELD, f"topic must be a string of at most {TOPIC_MAX} characters",
                         frame_type=kind)
    private = obj.get("private", False)
    if not isinstance(private, bool):
        raise FrameError(ERR_INVALID_FIELD, "private must be true or false", frame_type=kind)
    username = obj.get("username", obj.get("after", ""))
    if op == "invite" and (not isinstance(username, str) or validate_username(username)):
        raise FrameError(ERR_INVALID_FIELD, "username must be a valid username", frame_type=kind)
    if not isinstance(username, str) or len(username) > USERNAME_MAX:
        raise FrameError(ERR_INVALID_FIELD, "after must be a username", frame_type=kind)
    limit = obj.get("limit", 100)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_MEMBERS_PAGE:
        raise FrameError(ERR_INVALID_FIELD, f"limit must be an integer from 1 to {MAX_MEMBERS_PAGE}", frame_type=kind)
    return RoomRequest(op, room, " ".join(sanitize_text(topic).split()), private, username, limit)


def client_frame(request: ClientFrame) -> dict[str, Any]:
    """The JSON object a client sends for *request* (the inverse of parsing)."""
    if isinstance(request, SendMessage):
        out: dict[str, Any] = {"type": "message:send", "text": request.text}
        if request.client_msg_id is not None:
            out["clientMsgId"] = request.client_msg_id
        if request.to:
            out["to"] = list(request.to)
        elif request.room != GENERAL:
            out["room"] = request.room
        return out
    if isinstance(request, UpdatePresence):
        return {"type": "presence:update", "status": request.status}
    if isinstance(request, SetTyping):
        out = {"type": "typing:indicator", "isTyping": request.is_typing}
        if request.room != GENERAL:
            out["room"] = request.room
        return out
    if isinstance(request, MarkRead):
        return {"type": "read:update", "room": request.room, "messageId": request.message_id}
    if isinstance(request, RequestHistory):
        out = {"type": "history:request", "limit": request.limit}
        if request.before is not None:
            out["before"] = request.before
        if request.room != GENERAL:
            out["room"] = request.room
        return out
    out = {"type": "ping"}
    if request.id is not None:
        out["id"] = request.id
    return out


# -- server -> client: builders ----------------------------------------------


# ``connected`` has no builder here: the server writes it in parts (server/app.py
# ``_connected_parts``) so the roster bytes are shared by every join, not copied.


def message_new_frame(message: ChatMessage) -> dict[str, Any]:
    return {"type": "message:new", "data": message.to_wire()}


def presence_frame(user_id: str, username: str, status: str, connections: int | None = None,
                   verified: bool | None = None) -> dict[str, Any]:
    """``presence:update``. ``offline`` always carries 0 connections: appearing offline must look
    exactly like a real disconnect, so no count gives a hidden user away."""
    data: dict[str, Any] = {"userId": user_id, "username": username, "status": status}
    if connections is not None:
        data["connections"] = 0 if status == "offline" else connections
    if verified:  # absent means not proved
        data["verified"] = True
    return {"type": "presence:update", "data": data}


def read_position_frame(room: str, message_id: str) -> dict[str, Any]:
    """``read:position``: the user read *room* up to *message_id* (in another window or device)."""
    return {"type": "read:position", "room": room, "messageId": message_id}


def typing_frame(user_id: str, username: str, is_typing: bool, room: str = "general") -> dict[str, Any]:
    return {"type": "typing:indicator",
            "data": {"userId": user_id, "username": username, "isTyping": is_typing, "room": room}}


HistoryReason = Literal["join", "resume", "page"]


def history_frame(
    messages: list[ChatMessage],
    *,
    reason: HistoryReason,
    has_more: bool,
    gap: bool = False,
    since: str | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    """``history``: ``messages`` oldest first.

    ``hasMore``: older messages exist before the first one (join/page), or more
    resume frames follow (resume). ``gap``: on resume, messages after ``since``
    were trimmed from the store and cannot be delivered.
    """
    out: dict[str, Any] = {
        "type": "history",
        "reason": reason,
        "messages": [m.to_wire() for m in messages],
        "hasMore": has_more,
    }
    if reason == "resume":
        out["since"] = since
        out["gap"] = gap
    if reason == "page":
        out["before"] = before
    return out


def error_frame(
    code: str, message: str, *, client_msg_id: str | None = None, frame_type: str | None = None, retry_after_ms: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if client_msg_id is not None:
        out["clientMsgId"] = client_msg_id
    if frame_type is not None:
        out["frameType"] = frame_type
    if retry_after_ms is not None:
        out["retryAfterMs"] = retry_after_ms
    return out


def pong_frame(ping_id: Any = None, timestamp: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "pong", "timestamp": timestamp or iso_timestamp()}
    if ping_id is not None:
        out["id"] = ping_id
    return out


# -- server -> client: parsing (for clients) ---------------------------------


class Connected(NamedTuple):
    user_id: str
    username: str
    timestamp: str
    connected_users: int
    users: tuple[RosterEntry, ...] = ()
    limits: Limits = Limits()
    last_message_id: str | None = None  # newest stored message when the connection was accepted
    verified: bool = False  # this connection proved its name (a key)
    auth: str = "open"  # the server's --auth mode: claim, invite or open


class MessageNew(NamedTuple):
    message: ChatMessage


class PresenceChanged(NamedTuple):
    user_id: str
    username: str
    status: str
    connections: int | None = None
    verified: bool = False


class PresenceBatch(NamedTuple):
    """``presence:batch`` **(ext)**: a tick's presence changes, for clients that offered workspace.v1;
    ``complete`` is ``False`` when more users changed than it lists (then it lists none)."""

    users: tuple[PresenceChanged, ...]
    connected_users: int
    complete: bool = True


class TypingChanged(NamedTuple):
    user_id: str
    username: str
    is_typing: bool


class History(NamedTuple):
    messages: tuple[ChatMessage, ...]
    reason: str
    has_more: bool
    gap: bool = False
    since: str | None = None
    before: str | None = None


class ServerError(NamedTuple):
    code: str
    message: str
    client_msg_id: str | None = None
    frame_type: str | None = None
    retry_after_ms: int | None = None


class Pong(NamedTuple):
    id: Any = None


ServerFrame = Union[Connected, MessageNew, PresenceChanged, PresenceBatch, TypingChanged, History, ServerError, Pong]


class BadServerFrame(ValueError):
    """A frame from the server that does not match the protocol."""


def parse_server_frame(raw: str | bytes) -> ServerFrame | None:
    """Typed value of one server frame; ``None`` for an unknown type (ignored, as the document's client does).

    Raises :class:`BadServerFrame` for malformed frames.
    """
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadServerFrame(f"invalid JSON from server: {exc}") from None
    if not isinstance(obj, dict):
        raise BadServerFrame("server frame is not an object")
    kind = obj.get("type")
    try:
        if kind == "message:new":
            return MessageNew(ChatMessage.from_wire(_dict(obj, "data")))
        if kind == "typing:indicator":
            d = _dict(obj, "data")
            return TypingChanged(_str(d, "userId"), _str(d, "username"), bool(d.get("isTyping")))
        if kind == "presence:update":
            return _presence(_dict(obj, "data"))
        if kind == "presence:batch":
            d = _dict(obj, "data")
            users = d.get("users")
            if not isinstance(users, list):
                raise BadServerFrame("presence:batch.data.users must be a list")
            return PresenceBatch(
                tuple(_presence(u) for u in users if isinstance(u, dict)),
                _num(d.get("connectedUsers"), 0),
                d.get("complete") is not False,
            )
        if kind == "history":
            msgs = obj.get("messages")
            if not isinstance(msgs, list):
                raise BadServerFrame("history.messages must be a list")
            return History(
                messages=tuple(ChatMessage.from_wire(m) for m in msgs if isinstance(m, dict)),
                reason=str(obj.get("reason", "join")),
                has_more=bool(obj.get("hasMore")),
                gap=bool(obj.get("gap")),
                since=obj.get("since") if isinstance(obj.get("since"), str) else None,
                before=obj.get("before") if isinstance(obj.get("before"), str) else None,
            )
        if kind == "connected":
            users = obj.get("users")
            return Connected(
                user_id=_str(obj, "userId"),
                username=_str(obj, "username"),
                timestamp=_str(obj, "timestamp"),
                connected_users=_num(obj.get("connectedUsers"), 0),
                users=tuple(RosterEntry.from_wire(u) for u in users if isinstance(u, dict))
                if isinstance(users, list)
                else (),
                limits=Limits.from_wire(obj.get("limits")),
                last_message_id=obj.get("lastMessageId") if isinstance(obj.get("lastMessageId"), str) else None,
                verified=obj.get("verified") is True,
                auth=obj.get("auth") if isinstance(obj.get("auth"), str) else "open",
            )
        if kind == "error":
            retry = obj.get("retryAfterMs")
            cmid = obj.get("clientMsgId")
            ftype = obj.get("frameType")
            return ServerError(
                code=str(obj.get("code", "")),
                message=str(obj.get("message", "")),
                client_msg_id=cmid if isinstance(cmid, str) else None,
                frame_type=ftype if isinstance(ftype, str) else None,
                retry_after_ms=int(retry) if isinstance(retry, (int, float)) and not isinstance(retry, bool) else None,
            )
        if kind == "pong":
            return Pong(obj.get("id"))
    except (KeyError, TypeError) as exc:
        raise BadServerFrame(f"malformed {kind} frame: {exc}") from None
    return None


# -- helpers -----------------------------------------------------------------


def _presence(d: dict[str, Any]) -> PresenceChanged:
    """One presence entry: a ``presence:update``'s data, or one of a ``presence:batch``'s users."""
    conns = d.get("connections")
    return PresenceChanged(
        _str(d, "userId"), _str(d, "username"), _str(d, "status"), conns if isinstance(conns, int) else None,
        d.get("verified") is True,
    )


def _str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data[key]
    if not isinstance(value, dict):
        raise TypeError(f"{key} must be an object")
    return value


def _num(value: Any, default: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default
