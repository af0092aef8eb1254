"""Which Origin and Host headers a request may carry (core/origins.py): pure, no server."""

from __future__ import annotations

import pytest

from workspace_tui.core.origins import OriginPolicy, forwarded_client, normalize_origin, split_host_port


@pytest.mark.parametrize(
    "value, expected",
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("HTTP://LocalHost:3000", "http://localhost:3000"),
        ("https://chat.example.org:443", "https://chat.example.org"),
        ("http://chat.example.org:80", "http://chat.example.org"),
        ("https://chat.example.org:8443", "https://chat.example.org:8443"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://[::1]", "http://[::1]"),
        ("chrome-extension://abcdef", "chrome-extension://abcdef"),
    ],
)
def test_origins_have_one_spelling(value, expected):
    assert normalize_origin(value) == expected


@pytest.mark.parametrize(
    "value",
    ["localhost:3000", "http://", "http://x/path", "http://x?q", "http://u@x", "http://x:0", "http://x:99999",
     "http://x:port", "http://[zz]:1", "1http://x", "null", "http://ex ample"],
)
def test_what_is_not_an_origin(value):
    with pytest.raises(ValueError):
        normalize_origin(value)


def test_host_header_parts():
    assert split_host_port("Example.ORG:4000") == ("example.org", 4000)
    assert split_host_port("localhost.") == ("localhost", None)
    assert split_host_port("[::1]:4000") == ("::1", 4000)
    assert split_host_port("[::1]") == ("::1", None)
    assert split_host_port("x:abc") == ("x", -1)
    assert split_host_port("[::1]junk")[0] is None
    assert split_host_port("")[0] is None
    assert split_host_port("a b")[0] is None


def check(policy: OriginPolicy, host: str | None = "127.0.0.1:4000", origin: str | None = None):
    refusal = policy.check([host] if host is not None else [], [origin] if origin is not None else [])
    return None if refusal is None else (refusal.status, refusal.reason)


def test_no_origin_is_a_client_not_a_browser():
    assert check(OriginPolicy.build()) is None


def test_an_origin_is_refused_unless_allowed_with_the_flag_that_allows_it():
    policy = OriginPolicy.build()
    status, reason = check(policy, origin="http://127.0.0.1:8000")
    assert status == 403
    assert reason == "origin http://127.0.0.1:8000 is not allowed: start the server with --allow-origin http://127.0.0.1:8000"


def test_allowed_origins_match_exactly_but_case_insensitively():
    policy = OriginPolicy.build(["http://LOCALHOST:3000", "https://chat.example.org"])
    assert check(policy, origin="http://localhost:3000") is None
    assert check(policy, origin="http://LocalHost:3000") is None
    assert check(policy, origin="https://chat.example.org:443") is None
    assert check(policy, origin="http://localhost:3001")[0] == 403  # another port
    assert check(policy, origin="https://localhost:3000")[0] == 403  # another scheme
    assert check(policy, origin="http://chat.example.org")[0] == 403
    assert check(policy, origin="https://evil.chat.example.org")[0] == 403
    assert check(policy, origin="garbage")[0] == 403


def test_null_origin_only_with_star():
    status, reason = check(OriginPolicy.build(["http://localhost:3000"]), origin="null")
    assert status == 403 and "'*'" in reason
    assert check(OriginPolicy.build(["*"]), origin="null") is None
    assert check(OriginPolicy.build(["*"]), origin="http://anything.example:1") is None


def test_one_host_and_at_most_one_origin():
    policy = OriginPolicy.build(["*"])
    assert policy.check([], []).status == 400
    assert policy.check(["a", "b"], []).status == 400
    assert policy.check(["127.0.0.1"], ["http://a", "http://a"]).status == 400
    assert check(policy, host="bad host")[0] == 400
    assert check(policy, host="x:99999")[0] == 400


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:4000", "127.0.0.1", "10.1.2.3:80", "[::1]:4000", "[fe80::1%25eth0]:1", "localhost:4000",
     "LOCALHOST", "app.localhost:4000", "localhost.:4000", "devbox:4000", "devbox.corp.example:4000"],
)
def test_hosts_that_name_this_server(host):
    policy = OriginPolicy.build(server_names=["devbox.corp.example", "devbox"])
    assert check(policy, host=host) is None


def test_a_rebound_name_is_refused_with_the_flag_that_allows_it():
    status, reason = check(OriginPolicy.build(server_names=["devbox"]), host="evil.example:4000")
    assert status == 421
    assert "evil.example" in reason and "--allow-host evil.example" in reason
    assert check(OriginPolicy.build(server_names=["devbox"]), host="localhost.evil.example")[0] == 421


def test_allowed_hosts_and_the_hosts_of_allowed_origins():
    policy = OriginPolicy.build(["https://chat.example.org"], ["Proxy.Internal"])
    assert check(policy, host="chat.example.org") is None
    assert check(policy, host="proxy.internal:8080") is None
    assert check(policy, host="other.example")[0] == 421
    assert check(OriginPolicy.build(allow_hosts=["*"]), host="anything.example") is None


def test_the_host_is_checked_before_the_origin():
    policy = OriginPolicy.build(["http://evil.example:4000"])
    # an allowed origin's host is a name of this server; another name is still refused
    assert check(policy, host="evil.example:4000", origin="http://evil.example:4000") is None
    assert check(policy, host="other.example:4000", origin="http://evil.example:4000")[0] == 421


@pytest.mark.parametrize("value", ["http://x", "x:80", "", "a b"])
def test_bad_allow_host_values(value):
    with pytest.raises(ValueError):
        OriginPolicy.build(allow_hosts=[value])


def test_reasons_are_bounded_and_printable():
    status, reason = check(OriginPolicy.build(), origin="http://" + "a" * 5000 + ".example")
    assert status == 403 and len(reason) < 600
    status, reason = check(OriginPolicy.build(), origin="\x1b[31mred")
    assert "\x1b" not in reason


def test_forwarded_client_is_the_last_hop():
    assert forwarded_client(["203.0.113.9"]) == "203.0.113.9"
    assert forwarded_client(["1.1.1.1, 203.0.113.9"]) == "203.0.113.9"
    assert forwarded_client(["1.1.1.1", "203.0.113.9 "]) == "203.0.113.9"
    assert forwarded_client(["2001:db8::1"]) == "2001:db8::1"
    assert forwarded_client(["[2001:db8::1]:443"]) == "2001:db8::1"
    assert forwarded_client([]) is None
    assert forwarded_client(["203.0.113.9, not-an-ip"]) is None
    assert forwarded_client([""]) is None
