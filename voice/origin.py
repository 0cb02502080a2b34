"""Which browser pages and which names of this server may be used: the Origin and Host rules.

No I/O here: :func:`admit` maps what a request says about itself (its scheme, ``Host`` and
``Origin`` headers, the peer address) to an :class:`Admission` or a :class:`Refusal`.

- **Origin.** Browsers send ``Origin`` on every WebSocket handshake and on every request
  that is not a plain GET/HEAD; other clients (the OpenAI SDK, curl) send none. A request
  that carries one is served only if it names an allowed origin: one matching an
  ``allowed_origins`` pattern, or the server's own origin (``scheme://Host``) *when the Host
  is a loopback name*. Same-origin alone proves nothing: a DNS-rebinding page at
  ``http://evil.example:8000`` is same-origin with a request whose Host is
  ``evil.example:8000``. ``null`` (sandboxed frames, ``file:`` pages, and a page's own
  POSTs under ``Referrer-Policy: no-referrer``) is never allowed.
- **Host.** A request may stand for the local user without a key only when its peer is a
  loopback address *and* its ``Host`` names the machine by loopback (``localhost``,
  ``127.0.0.0/8``, ``::1``). A rebinding page's request reaches the server from loopback
  but names the attacker's domain; a reverse proxy on the same machine makes every peer
  loopback but passes the public name. Both then need a key; a keyless one is answered 421
  (Misdirected Request: the server will not answer for that name without a key).
  A request with a key is served under any Host (a LAN address, a proxy's public name).
- **Proxies.** A request that says it was forwarded (``Forwarded``, ``X-Forwarded-For``,
  ``X-Forwarded-Host``, ``X-Real-IP``) is never local either, even from loopback: a proxy
  that rewrites Host to ``127.0.0.1:8000`` (nginx's default) must not make the internet
  local. A proxy that sends neither its public Host nor such a header cannot be told apart
  from a local client: run it with ``api_keys`` set or ``trust_loopback`` off.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Web pages allowed to use the server besides its own: local development servers.
DEFAULT_ALLOWED_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
#: What the refusal messages tell the operator to configure.
SETTING = "VOICE_ALLOWED_ORIGINS"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEB_SCHEME = {"http": "http", "ws": "http", "https": "https", "wss": "https"}
#: A registered name (letters, digits, dots, dashes, underscores) or a bracketed IPv6 address.
_AUTHORITY = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d{1,5}|\*))?")
_ORIGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>.*)")
_WILDCARD_HOST = (
    "allowed origin {text!r}: only the port may be a wildcard (http://localhost:*); list "
    "each host, since a wildcard host would let any web site act as the local user"
)
#: Header values quoted into logs and error messages are cut to this many characters.
_SHOWN_CHARS = 120


@dataclass(frozen=True)
class Refusal:
    """A request the server will not serve: its HTTP status, error code and why."""

    status: int
    code: str
    #: For the client: what was wrong and what to change or configure.
    message: str
    #: For the server's log: short, and never a credential.
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    #: The error body's ``type``.
    type: str = "invalid_request_error"


@dataclass(frozen=True)
class Admission:
    """A request that passed the Origin check, and whether it may be the local user."""

    #: Loopback peer and loopback Host (and an allowed or absent Origin): a request without
    #: a key may stand for the local user, where the server trusts loopback at all.
    local: bool
    #: What to answer a request without a key that is not ``local`` although its peer is
    #: loopback (a Host that is not a loopback name, proxy headers); ``None``: the usual 401.
    keyless_refusal: Refusal | None = None


@dataclass(frozen=True)
class Origin:
    """A web origin, normalized: lower case, no trailing dot, the port always explicit."""

    scheme: str  # "http" | "https"
    host: str  # a name, an IPv4 address, or "[v6]" in canonical form
    port: int


@dataclass(frozen=True)
class OriginPattern:
    """An allowed origin; ``port`` ``None`` matches any port (written ``:*``)."""

    scheme: str
    host: str
    port: int | None

    def matches(self, origin: Origin) -> bool:
        return (
            origin.scheme == self.scheme
            and origin.host == self.host
            and (self.port is None or origin.port == self.port)
        )


def parse_origin_pattern(text: str) -> OriginPattern:
    """``scheme://host[:port|:*]`` as a pattern; ``ValueError`` says what is wrong with it."""
    stripped = text.strip()
    if stripped.lower() == "null":
        raise ValueError(
            "allowed origin 'null' would admit every sandboxed frame and file: page; "
            "serve the page over http(s) and list its origin"
        )
    if stripped == "*":
        raise ValueError(_WILDCARD_HOST.format(text=text))
    match = _ORIGIN.fullmatch(stripped)
    if match is None or match["scheme"].lower() not in _DEFAULT_PORTS:
        raise ValueError(
            f"allowed origin {text!r} is not of the form http(s)://host[:port], "
            "e.g. https://app.example.org or http://localhost:*"
        )
    scheme = match["scheme"].lower()
    parsed = _parse_authority(match["authority"])
    if parsed is None:
        if "*" in match["authority"].removesuffix(":*"):
            raise ValueError(_WILDCARD_HOST.format(text=text))
        raise ValueError(
            f"allowed origin {text!r}: bad host or port (no path, no trailing slash; "
            "international names in their xn-- form)"
        )
    host, port = parsed
    return OriginPattern(scheme, host, None if port == "*" else _port(scheme, port))


def parse_origin(text: str) -> Origin | None:
    """An ``Origin`` header's http(s) origin, or ``None`` (``null``, other schemes, junk)."""
    match = _ORIGIN.fullmatch(text.strip())
    if match is None or match["scheme"].lower() not in _DEFAULT_PORTS:
        return None
    return _origin(match["scheme"].lower(), match["authority"])


def parse_host(text: str, scheme: str) -> Origin | None:
    """A ``Host`` header as the origin it names under ``scheme`` (http/https/ws/wss)."""
    web_scheme = _WEB_SCHEME.get(scheme.lower())
    return None if web_scheme is None else _origin(web_scheme, text.strip())


def is_loopback_name(host: str) -> bool:
    """``localhost``, an address in 127.0.0.0/8, or ``[::1]`` (as normalized by the parsers)."""
    if host == "localhost":
        return True
    return is_loopback_address(host.removeprefix("[").removesuffix("]"))


def is_loopback_address(address: str | None) -> bool:
    """A peer address on this machine (IPv4-mapped IPv6 loopback included)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


class OriginPolicy:
    """The allowed origins (validated patterns), deciding requests with :meth:`admit`."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_ALLOWED_ORIGINS) -> None:
        self.patterns = tuple(parse_origin_pattern(pattern) for pattern in patterns)

    def admit(
        self,
        *,
        scheme: str,
        host: str | None,
        origin: str | None,
        client: str | None,
        forwarded: bool = False,
    ) -> Admission | Refusal:
        """Decide one request; see :func:`admit`."""
        return admit(
            scheme=scheme,
            host=host,
            origin=origin,
            client=client,
            patterns=self.patterns,
            forwarded=forwarded,
        )


def admit(
    *,
    scheme: str,
    host: str | None,
    origin: str | None,
    client: str | None,
    patterns: Iterable[OriginPattern],
    forwarded: bool = False,
) -> Admission | Refusal:
    """The Origin and Host rules of the module docstring, for one request.

    ``scheme`` is the request's (``http``, ``https``, ``ws``, ``wss``: as the ASGI server
    saw it, after a trusted proxy's ``X-Forwarded-Proto``); ``host`` and ``origin`` are the
    header values (several headers joined by commas, which makes them invalid); ``client``
    is the peer address; ``forwarded``: the request carries a proxy's forwarding headers.
    """
    named = parse_host(host, scheme) if host is not None else None
    loopback_host = named is not None and is_loopback_name(named.host)
    if origin is not None:
        page = parse_origin(origin)
        own = page is not None and loopback_host and page == named
        if page is None or not (own or any(p.matches(page) for p in patterns)):
            return Refusal(
                403,
                "origin_not_allowed",
                f"web pages at {_shown(origin)} may not use this server (cross-site request "
                f"protection). If that page is yours, add its origin to {SETTING} "
                '(a JSON list, e.g. ["https://app.example.org", "http://localhost:*"]).',
                f"origin {_shown(origin)} is not allowed",
            )
    if not is_loopback_address(client):
        return Admission(local=False)
    if forwarded:
        return Admission(
            local=False,
            keyless_refusal=Refusal(
                421,
                "untrusted_host",
                "without an API key this server answers only requests made on this machine; "
                "this one came through a proxy (it has Forwarded, X-Forwarded-* or X-Real-IP "
                "headers). Send Authorization: Bearer <key>.",
                "no key and forwarded by a proxy",
            ),
        )
    if loopback_host:
        return Admission(local=True)
    shown = _shown(host) if host is not None else "no Host header"
    return Admission(
        local=False,
        keyless_refusal=Refusal(
            421,
            "untrusted_host",
            "without an API key this server answers only requests that name it by a "
            f"loopback address (localhost, 127.0.0.1, [::1]); this one named {shown}, as a "
            "DNS-rebinding page or a reverse proxy would. Send Authorization: Bearer <key>.",
            f"no key and Host {shown} is not a loopback name",
        ),
    )


def _origin(scheme: str, authority: str) -> Origin | None:
    parsed = _parse_authority(authority)
    if parsed is None or parsed[1] == "*":
        return None
    host, port = parsed
    return Origin(scheme, host, _port(scheme, port))


def _parse_authority(text: str) -> tuple[str, str | None] | None:
    """``(host, port)``, the host normalized; the port as written (digits or ``*``), if any."""
    match = _AUTHORITY.fullmatch(text)
    if match is None:
        return None
    host, port = match["host"].lower(), match["port"]
    if port is not None and port != "*" and not 0 < int(port) <= 65535:
        return None
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]", port
        except ValueError:
            return None
    host = host.removesuffix(".")  # "localhost." is the same name as "localhost"
    if not host or host.startswith(".") or ".." in host:
        return None
    try:
        return str(ipaddress.IPv4Address(host)), port
    except ValueError:
        return host, port  # a name


def _port(scheme: str, port: str | None) -> int:
    return _DEFAULT_PORTS[scheme] if port is None else int(port)


def _shown(value: str) -> str:
    """A header value as it may appear in a log line or a message: quoted, cut short."""
    cut = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"
    return repr(cut)
