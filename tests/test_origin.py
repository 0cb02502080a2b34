"""The Origin and Host rules (voice/origin.py): a table of requests, no server, no I/O."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from voice.config import Settings
from voice.origin import (
    DEFAULT_ALLOWED_ORIGINS,
    Admission,
    Origin,
    OriginPattern,
    OriginPolicy,
    Refusal,
    is_loopback_address,
    parse_host,
    parse_origin,
    parse_origin_pattern,
)

LOCAL = "local"  # loopback peer, loopback Host: a request without a key is the local user
KEY_NEEDED = "key"  # served, but a request without a key gets the usual 401
REBOUND = 421  # served with a key; without one: 421 untrusted_host
REFUSED = 403  # origin_not_allowed, whatever the key

V4 = "127.0.0.1"
V6 = "::1"
LAN = "192.168.1.20"

# (scheme, Host header, Origin header, peer address, expected)
CASES = [
    # Clients that send no Origin (the OpenAI SDK, curl) from this machine.
    ("ws", "127.0.0.1:8000", None, V4, LOCAL),
    ("http", "localhost:8000", None, V4, LOCAL),
    ("http", "127.0.0.2:8000", None, V4, LOCAL),  # all of 127.0.0.0/8
    ("http", "[::1]:8000", None, V6, LOCAL),
    ("http", "[0:0:0:0:0:0:0:1]:8000", None, V6, LOCAL),
    ("http", "[::1]", None, V6, LOCAL),
    ("http", "LOCALHOST:8000", None, V4, LOCAL),
    ("http", "localhost.:8000", None, V4, LOCAL),  # the same name, fully qualified
    ("http", "127.0.0.1:8000", None, "::ffff:127.0.0.1", LOCAL),  # dual-stack socket
    # The web client at the server's own origin, and local development servers.
    ("http", "127.0.0.1:8000", "http://127.0.0.1:8000", V4, LOCAL),
    ("ws", "localhost:8000", "http://localhost:8000", V4, LOCAL),
    ("http", "127.0.0.1:8000", "http://localhost:5173", V4, LOCAL),
    ("ws", "127.0.0.1:8000", "http://127.0.0.1:3000", V4, LOCAL),
    ("http", "[::1]:8000", "http://[::1]:8000", V6, LOCAL),
    ("http", "[::1]:8000", "http://[::1]", V6, LOCAL),  # port 80, matched by [::1]:*
    ("http", "localhost", "http://localhost", V4, LOCAL),
    ("http", "LocalHost:8000", "HTTP://LOCALHOST:8000", V4, LOCAL),
    ("http", "localhost.:8000", "http://localhost.:8000", V4, LOCAL),
    ("http", "127.0.0.5:8000", "http://127.0.0.5:8000", V4, LOCAL),  # own origin, off-list
    # https: only the own origin (scheme as the ASGI server saw it) or a listed one.
    ("https", "localhost:8443", "https://localhost:8443", V4, LOCAL),
    ("wss", "localhost:8443", "https://localhost:8443", V4, LOCAL),
    ("http", "localhost:8443", "https://localhost:8443", V4, REFUSED),  # scheme differs
    ("https", "localhost:8443", "http://localhost:8443", V4, LOCAL),  # http://localhost:* listed
    ("http", "127.0.0.1:8000", "https://localhost:5173", V4, REFUSED),  # not in the defaults
    # Other web sites.
    ("ws", "127.0.0.1:8000", "http://evil.example", V4, REFUSED),
    ("http", "localhost:8000", "https://evil.example", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://127.0.0.1.evil.example", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://localhost.evil.example:8000", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://evillocalhost:8000", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://localhost:8000.evil.example", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://user@localhost:8000", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://localhost:8000/", V4, REFUSED),  # not a serialization
    ("ws", "127.0.0.1:8000", "http://localhost:99999", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "null", V4, REFUSED),  # sandboxed frames, file: pages
    ("ws", "127.0.0.1:8000", "file://", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "chrome-extension://abcdef", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://localhost:5173, http://evil.example", V4, REFUSED),
    ("ws", "127.0.0.1:8000", "http://evil.example", LAN, REFUSED),
    # DNS rebinding: the attacker's name now points at 127.0.0.1; same-origin is no proof.
    ("http", "evil.example:8000", None, V4, REBOUND),
    ("http", "evil.example:8000", "http://evil.example:8000", V4, REFUSED),
    ("ws", "evil.example:8000", "http://evil.example:8000", V4, REFUSED),
    ("http", "127.0.0.1.evil.example:8000", None, V4, REBOUND),
    ("http", "localhost.evil.example:8000", None, V4, REBOUND),
    ("http", "127.0.0.1.evil.example:8000", "http://127.0.0.1.evil.example:8000", V4, REFUSED),
    ("http", "0.0.0.0:8000", None, V4, REBOUND),
    ("http", "127.1:8000", None, V4, REBOUND),  # not how a browser writes 127.0.0.1
    ("http", "[2001:db8::1]:8000", None, V6, REBOUND),
    ("http", "app.localhost:8000", None, V4, REBOUND),  # only "localhost" itself
    ("http", None, None, V4, REBOUND),  # no Host header at all
    ("http", "127.0.0.1:8000, evil.example", None, V4, REBOUND),  # two Host headers
    ("http", "[::1", None, V6, REBOUND),
    # A reverse proxy on this machine (the peer is loopback) or a LAN address, with a key.
    ("https", "voice.example.org", None, V4, REBOUND),
    ("http", "192.168.1.20:8000", None, LAN, KEY_NEEDED),
    ("http", "localhost:8000", None, LAN, KEY_NEEDED),  # a remote peer is never local
    ("http", "localhost:8000", None, None, KEY_NEEDED),  # no peer address (Unix socket)
    ("https", "voice.example.org", "https://voice.example.org", V4, REFUSED),  # not listed
    ("http", "192.168.1.20:8000", "http://192.168.1.20:8000", LAN, REFUSED),
]


@pytest.mark.parametrize(("scheme", "host", "origin", "client", "expected"), CASES)
def test_default_policy(
    scheme: str, host: str | None, origin: str | None, client: str | None, expected: object
) -> None:
    verdict = OriginPolicy().admit(scheme=scheme, host=host, origin=origin, client=client)
    if expected == REFUSED:
        assert isinstance(verdict, Refusal)
        assert (verdict.status, verdict.code) == (403, "origin_not_allowed")
        assert "VOICE_ALLOWED_ORIGINS" in verdict.message
    else:
        assert isinstance(verdict, Admission)
        assert verdict.local is (expected == LOCAL)
        if expected == REBOUND:
            assert verdict.keyless_refusal is not None
            assert (verdict.keyless_refusal.status, verdict.keyless_refusal.code) == (
                421,
                "untrusted_host",
            )
            assert "Authorization: Bearer" in verdict.keyless_refusal.message
        else:
            assert verdict.keyless_refusal is None


def test_a_listed_origin_behind_a_reverse_proxy() -> None:
    """The proxy's public page is served once listed; without a key it is not local."""
    policy = OriginPolicy(["https://voice.example.org"])
    proxied = policy.admit(
        scheme="https", host="voice.example.org", origin="https://voice.example.org", client=V4
    )
    assert isinstance(proxied, Admission) and not proxied.local
    assert proxied.keyless_refusal is not None and proxied.keyless_refusal.status == 421
    # The list replaces the defaults, but the server's own page on localhost still works.
    assert isinstance(
        policy.admit(
            scheme="http", host="localhost:5173", origin="http://localhost:5173", client=V4
        ),
        Admission,
    )
    refused = policy.admit(
        scheme="http", host="localhost:8000", origin="http://localhost:5173", client=V4
    )
    assert isinstance(refused, Refusal) and refused.status == 403
    assert "'http://localhost:5173'" in refused.reason


def test_an_empty_list_allows_only_the_servers_own_page() -> None:
    policy = OriginPolicy([])
    own = policy.admit(
        scheme="http", host="127.0.0.1:8000", origin="http://127.0.0.1:8000", client=V4
    )
    assert own == Admission(local=True)
    other = policy.admit(
        scheme="http", host="127.0.0.1:8000", origin="http://127.0.0.1:8001", client=V4
    )
    assert isinstance(other, Refusal)


def test_a_forwarded_request_is_never_local() -> None:
    """nginx rewrites Host to the upstream's address by default: loopback Host, loopback peer."""
    verdict = OriginPolicy().admit(
        scheme="http", host="127.0.0.1:8000", origin=None, client=V4, forwarded=True
    )
    assert isinstance(verdict, Admission) and not verdict.local
    assert verdict.keyless_refusal is not None and verdict.keyless_refusal.status == 421
    assert "proxy" in verdict.keyless_refusal.message
    remote = OriginPolicy().admit(
        scheme="http", host="127.0.0.1:8000", origin=None, client=LAN, forwarded=True
    )
    assert remote == Admission(local=False)  # the usual 401 without a key
    refused = OriginPolicy().admit(
        scheme="http", host="127.0.0.1:8000", origin="null", client=V4, forwarded=True
    )
    assert isinstance(refused, Refusal) and refused.status == 403


def test_long_header_values_are_cut_in_messages() -> None:
    origin = "http://" + "a" * 5000 + ".example"
    refusal = OriginPolicy().admit(scheme="http", host="localhost", origin=origin, client=V4)
    assert isinstance(refusal, Refusal)
    assert len(refusal.message) < 600 and len(refusal.reason) < 200
    host = "b" * 5000
    rebound = OriginPolicy().admit(scheme="http", host=host, origin=None, client=V4)
    assert isinstance(rebound, Admission) and rebound.keyless_refusal is not None
    assert len(rebound.keyless_refusal.message) < 600


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("http://localhost:*", OriginPattern("http", "localhost", None)),
        ("https://app.example.org", OriginPattern("https", "app.example.org", 443)),
        ("http://app.example.org", OriginPattern("http", "app.example.org", 80)),
        ("HTTPS://App.Example.ORG:8443", OriginPattern("https", "app.example.org", 8443)),
        ("http://[::1]:*", OriginPattern("http", "[::1]", None)),
        ("http://[0::1]:3000", OriginPattern("http", "[::1]", 3000)),
        (" http://127.0.0.1:5173 ", OriginPattern("http", "127.0.0.1", 5173)),
        ("http://xn--bcher-kva.example", OriginPattern("http", "xn--bcher-kva.example", 80)),
    ],
)
def test_patterns(text: str, pattern: OriginPattern) -> None:
    assert parse_origin_pattern(text) == pattern


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("*", "only the port may be a wildcard"),
        ("http://*", "only the port may be a wildcard"),
        ("http://*.example.org", "only the port may be a wildcard"),
        ("https://app.*:443", "only the port may be a wildcard"),
        ("null", "sandboxed"),
        ("NULL", "sandboxed"),
        ("localhost:8000", "not of the form"),
        ("ftp://files.example.org", "not of the form"),
        ("ws://localhost:8000", "not of the form"),
        ("http://", "bad host or port"),
        ("http://app.example.org/", "bad host or port"),
        ("http://app.example.org/path", "bad host or port"),
        ("http://app.example.org:0", "bad host or port"),
        ("http://app.example.org:70000", "bad host or port"),
        ("http://bücher.example", "xn--"),
        ("http://[::1:3000", "bad host or port"),
        ("http://user@app.example.org", "bad host or port"),
    ],
)
def test_bad_patterns_say_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("*", r"\*")):
        parse_origin_pattern(text)


def test_parsers_normalize() -> None:
    assert parse_origin("http://LOCALHOST.:8000") == Origin("http", "localhost", 8000)
    assert parse_origin("https://example.org") == Origin("https", "example.org", 443)
    assert parse_origin("null") is None
    assert parse_host("[::1]:8000", "ws") == Origin("http", "[::1]", 8000)
    assert parse_host("localhost", "wss") == Origin("https", "localhost", 443)
    assert parse_host("localhost", "gopher") is None
    assert parse_host("localhost:*", "http") is None
    assert parse_host("", "http") is None
    assert is_loopback_address("127.255.0.1") and is_loopback_address("::1")
    assert not is_loopback_address("::ffff:192.0.2.1") and not is_loopback_address("junk")
    assert not is_loopback_address(None) and not is_loopback_address("")


def test_setting_is_validated_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().allowed_origins == list(DEFAULT_ALLOWED_ORIGINS)
    monkeypatch.setenv(
        "VOICE_ALLOWED_ORIGINS", json.dumps(["https://voice.example.org", "http://localhost:*"])
    )
    assert Settings().allowed_origins == ["https://voice.example.org", "http://localhost:*"]
    monkeypatch.setenv("VOICE_ALLOWED_ORIGINS", '["https://*.example.org"]')
    with pytest.raises(ValidationError, match="only the port may be a wildcard"):
        Settings()
    monkeypatch.setenv("VOICE_ALLOWED_ORIGINS", "[]")
    assert Settings().allowed_origins == []
