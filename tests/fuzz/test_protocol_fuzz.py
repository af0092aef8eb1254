"""Property-based fuzzing of the pure protocol functions: ``sanitize_text`` and ``parse_client_frame``.

Deterministic (``derandomize=True``) and bounded, so CI sees the same examples
every run; raise ``FUZZ_EXAMPLES`` locally to search harder.
"""

from __future__ import annotations

import json
import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workspace_tui import protocol as p

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What must never survive cleaning: ESC and every C0 but LF/TAB, DEL, C1, bidi embeddings/overrides/isolates,
# and lone surrogates (they cannot be encoded as UTF-8).
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

HOSTILE = [
    "\x1b[2J", "\x1b[H", "\x1b[31m", "\x1b]52;c;aGVsbG8=\x07", "\x1b]8;;http://evil\x1b\\", "\x1b]8;;\x1b\\",
    "\x1bP+q\x1b\\", "\x1b", "\x1b[", "\x1b]", "\x9b31m", "\x9d0;title\x9c", "\x90", "\x85", "\x07", "\x08", "\x7f",
    "\r\n", "\r", "\n", "\t", "\u202e", "\u202d", "\u2066", "\u2069", "\ud800", "\udfff", "[bold]", "[/]",
    "[@click=app.quit]", "[link=http://e]", "é", "日本", "🙂", "\u200b", "\x00",
    "\u200d", "\u200c", "\ufe0f", "\U000e0041", "\U000e007f", "🏴", "\u0301" * 6, "\u2028", "\u3164", "\u2800", " ",
]
# Invisible characters that never survive, wherever they stand (docs/protocol.md, "Text the server cleans").
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u2028\u2029\u2060-\u206f\u3164\ufeff"
    "\uffa0\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0080-\U000e00ff\U000e01f0-\U000e0fff]"
)
LOOSE_JOINER = re.compile("(?:^|[\\s\u2800])[\u200c\u200d]|[\u200c\u200d](?:$|[\\s\u2800\u200c\u200d])")
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
texts = st.lists(st.sampled_from(HOSTILE) | st.text(any_char, max_size=8), max_size=30).map("".join)


@FUZZ
@given(texts)
def test_sanitize_removes_every_control_and_is_idempotent(text):
    out = p.sanitize_text(text)
    assert not FORBIDDEN.search(out), ascii(out)
    assert not INVISIBLE.search(out) and not LOOSE_JOINER.search(out), ascii(out)
    assert "\r" not in out
    out.encode("utf-8")  # always encodable
    assert p.sanitize_text(out) == out


# Text without controls, format characters, separators or combining marks (which may be dropped or
# capped, depending on their neighbours) and without the Hangul fillers or reserved invisible code
# points comes back unchanged.
ordinary = st.characters(exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp", "Mn", "Mc", "Me"))


@FUZZ
@given(st.text(ordinary, max_size=60))
def test_sanitize_keeps_ordinary_text(text):
    if not INVISIBLE.search(text) and not re.search("[\U000e0000-\U000e007f]", text):
        assert p.sanitize_text(text) == text


json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    json_leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4), max_leaves=15
)
frame_types = st.sampled_from(["message:send", "presence:update", "typing:indicator", "history:request", "ping"]) | json_values
objects = st.fixed_dictionaries(
    {"type": frame_types},
    optional={k: json_values for k in ("text", "status", "isTyping", "clientMsgId", "before", "limit", "id")},
)


def _nested(depth: int) -> str:
    return '{"type":"message:send","text":' + "[" * depth + "]" * depth + "}"


raw_inputs = st.one_of(
    objects.map(json.dumps),
    objects.map(lambda o: json.dumps(o, ensure_ascii=False)),
    json_values.map(json.dumps),
    texts,
    st.binary(max_size=80),
    st.integers(1, 200_000).map(_nested),
    st.integers(1, 200_000).map(lambda n: "[" * n),
    st.integers(0, 300_000).map(lambda n: json.dumps({"type": "message:send", "text": "x" * n, "clientMsgId": "y" * (n % 100)})),
    st.sampled_from(['{"type":"message:send","text":"a\\ud800b"}', '{"type":"message:send","text":"\\udfff"}',
                     '{"type":"message:send","text":"\\u001b[2J"}', '{"type":"ping","id":NaN}', '{"type":1e999}',
                     '{"type":"message:send","text":"ok","type":"ping"}', "\ufeff{}", '{"__proto__":{}}']),
)
LEAKS = ("Traceback", "File \"", " at 0x", "Error(", "sqlite3.", "websockets.", "workspace_tui.")


@FUZZ
@given(raw_inputs)
def test_parse_client_frame_returns_a_request_or_a_clean_error(raw):
    try:
        req = p.parse_client_frame(raw)
    except p.FrameError as exc:
        frame = exc.frame()
        encoded = json.dumps(frame)  # serializable as is
        assert frame["type"] == "error" and frame["code"] in p.ERROR_CODES
        assert isinstance(frame["message"], str) and 0 < len(frame["message"]) <= 200
        assert not any(leak in frame["message"] for leak in LEAKS), frame
        assert len(encoded) < 1000  # never echoes a huge input back
        assert not FORBIDDEN.search(json.dumps(frame, ensure_ascii=False)), frame  # nothing raw reflected
        encoded.encode("utf-8")
        return
    assert isinstance(req, (p.SendMessage, p.UpdatePresence, p.SetTyping, p.RequestHistory, p.Ping))
    if isinstance(req, p.SendMessage):
        assert req.text.strip() and p.sanitize_text(req.text) == req.text
        assert not FORBIDDEN.search(req.text)
        assert req.client_msg_id is None or 0 < len(req.client_msg_id) <= p.MAX_CLIENT_MSG_ID
        assert req.client_msg_id is None or not FORBIDDEN.search(req.client_msg_id)  # broadcast to everyone
    if isinstance(req, p.UpdatePresence):
        assert req.status in p.STATUSES
    if isinstance(req, p.RequestHistory):
        assert 1 <= req.limit <= p.MAX_HISTORY_PAGE and (req.before is None or isinstance(req.before, str))
