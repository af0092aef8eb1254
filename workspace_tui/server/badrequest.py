"""What to tell a client whose HTTP request websockets could not parse.

websockets' Sans-I/O parser answers an over-long request line or header itself
(414, 431; since websockets 17, 15 and 16 answer neither) but ends every other
unparsable request without a word: the connection answers those with ``400``
and the sentence made here.
"""

from __future__ import annotations

# What the parser's messages say before the colon names the fault; after it comes the client's
# own line, which is never repeated (it may carry a token).
_REQUEST_LINE_FAULTS = ("invalid HTTP request line", "unsupported protocol")


def unreadable_reason(exc: BaseException) -> str:
    """A short sentence about what was wrong, from websockets' ``handshake_exc``."""
    cause = exc
    while cause.__cause__ is not None:  # the parser's own error is the innermost
        cause = cause.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return "bad HTTP request: non-ASCII bytes in the request line; percent-encode them in the URL"
    fault = str(cause).partition(": ")[0] or type(cause).__name__
    if fault.startswith(_REQUEST_LINE_FAULTS):
        return (f"bad HTTP request: {fault}. A request line reads GET /ws?username=NAME HTTP/1.1; "
                "spaces in the URL must be percent-encoded (%20)")
    return f"bad HTTP request: {fault}"
