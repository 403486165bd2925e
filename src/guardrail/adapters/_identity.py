"""Who is asking: the API key (or a user callable's account id) and the client address.

The API key is read from ``Authorization: Bearer``, ``x-api-key`` (Anthropic), ``x-goog-api-key`` or the
``key`` query parameter (Gemini), or ``api-key`` (Azure OpenAI). With duplicate headers the first value
wins, as Starlette's ``request.headers[...]`` (and so the app behind us) reads it. The raw key is handed
to the engine, which keeps only a keyed hash; the adapter's own events and logs carry keyed hashes too.

The client address is the socket peer, unless that peer is one of the configured trusted proxies: then
the one header those proxies write (``X-Forwarded-For`` by default, or RFC 7239 ``Forwarded``) is walked
from the right, skipping trusted hops, and the first untrusted address is the client. A spoofed header
from an untrusted peer is ignored (the same rule as uvicorn's ``--forwarded-allow-ips``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_HEADERS = ("x-forwarded-for", "forwarded")
#: The headers an API key is read from (``api_key``), lower-cased.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})
#: Every header identity reads (credentials and the forwarding chain), as ASGI names them: lower-case bytes.
IDENTITY_HEADERS = frozenset(name.encode() for name in (*CREDENTIAL_HEADERS, *_HEADERS))


@dataclass(frozen=True, slots=True)
class RequestView:
    """A framework-neutral view of an inspected request, given to a user ``identify`` callable.

    ``headers`` keeps every header line in order, names lower-cased (duplicates preserved).
    ``client`` is the resolved client address (after trusted proxies), or ``None`` when unknown.
    """

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    client: str | None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        lname = name.lower()
        for key, value in self.headers:
            if key == lname:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        lname = name.lower()
        return [value for key, value in self.headers if key == lname]


#: A user callable mapping a request to an account id (e.g. a JWT subject), or ``None`` to fall back to
#: the API key.
Identify = Callable[[RequestView], "str | None"]


def api_key(headers: Iterable[tuple[str, str]], query: str = "", provider: str = "openai") -> str | None:
    """The request's API key from the usual provider headers (first line of each wins), else ``None``.

    When several credential headers are present, the one the route's own API reads comes first
    (``Authorization`` then Azure's ``api-key`` for OpenAI, ``x-api-key`` for Anthropic,
    ``x-goog-api-key`` / ``?key=`` for Gemini): otherwise a client could authenticate with one header
    while a fresh random value in another gave it a new, empty budget on every request. Only the first
    ``Authorization`` line counts (it is the one the app reads); a scheme other than Bearer counts as a
    whole (``"Basic ..."``).
    """
    bearer = x_api_key = goog = azure = None
    seen_authorization = False
    for key, value in headers:
        if key == "authorization" and not seen_authorization:
            seen_authorization = True
            parts = _SCHEME_SPACE.split(value.strip(), 1)  # "Bearer\tKEY" is "Bearer KEY", as servers read it
            scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (value.strip(), "")
            # A proxy may have folded duplicate lines into "Bearer a, Bearer b": keep the first.
            token = token.split(",", 1)[0].strip()
            if scheme.lower() == "bearer":
                bearer = token or None
            else:  # the whole first credential (a folded "Basic x, Bearer y" is two lines)
                bearer = value.split(",", 1)[0].strip() or None
        elif key == "x-api-key" and x_api_key is None:
            x_api_key = value.split(",", 1)[0].strip() or None
        elif key == "x-goog-api-key" and goog is None:
            goog = value.split(",", 1)[0].strip() or None
        elif key == "api-key" and azure is None:  # Azure OpenAI's header
            azure = value.split(",", 1)[0].strip() or None
    if provider == "azure":  # an Azure OpenAI path: the server reads ``api-key`` first
        found = azure or bearer or x_api_key or goog
    elif provider == "anthropic":
        found = x_api_key or bearer or goog or azure
    elif provider == "gemini":
        found = goog or _query_key(query) or bearer or x_api_key or azure
    else:
        found = bearer or azure or x_api_key or goog
    if found is None and provider != "gemini":
        found = _query_key(query)
    return found


#: What separates an Authorization scheme from its token (RFC 9110 allows spaces; servers take tabs too).
_SCHEME_SPACE = re.compile(r"[ \t]+")


class AmbiguousCredentials(ValueError):
    """Several different ``key`` query values: servers differ on which one they read (the first, the
    last), so counting any one would let a rotating decoy beside the real key buy fresh budgets."""


def _query_key(query: str) -> str | None:
    """The ``key`` query parameter, its name read decoded as servers read it (``ke%79=`` is ``key=``).
    Raises :class:`AmbiguousCredentials` when it comes with several different values."""
    if "key=" not in query and "%" not in query:
        return None
    values = {value for name, value in parse_qsl(query, keep_blank_values=False) if name == "key" and value}
    if len(values) > 1:
        raise AmbiguousCredentials("several different 'key' query values")
    return next(iter(values), None)


def _parse_address(raw: str) -> str | None:
    """A bare IP address from a forwarded element (``1.2.3.4:80``, ``"[::1]:80"``), else ``None``."""
    value = raw.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        value = value[1:end] if end > 0 else ""
    elif value.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None  # "unknown", "_hidden" obfuscated identifiers, garbage


def _forwarded_for(values: list[str]) -> list[str | None]:
    """The ``for=`` addresses of RFC 7239 ``Forwarded`` header lines, in hop order."""
    hops: list[str | None] = []
    for line in values:
        for element in line.split(","):
            found: str | None = None
            seen = False
            for pair in element.split(";"):
                name, sep, value = pair.partition("=")
                if sep and name.strip().lower() == "for":
                    found = _parse_address(value)
                    seen = True
                    break
            if seen:
                hops.append(found)
    return hops


class TrustedProxies:
    """The set of proxy addresses (IPs or CIDR networks) whose forwarding headers are believed."""

    __slots__ = ("_networks", "_unix", "header", "networks")

    def __init__(self, proxies: Iterable[str] = (), *, header: str = "x-forwarded-for") -> None:
        header = header.lower() if isinstance(header, str) else header
        if header not in _HEADERS:
            raise ValueError(f"proxy_header must be one of {_HEADERS}, got {header!r}")
        #: The one header the proxies write. Only that one is read: a proxy that appends to
        #: X-Forwarded-For passes a client's own ``Forwarded`` line through untouched, so reading both
        #: would let the client choose its address.
        self.header: str = header
        if isinstance(proxies, str):
            proxies = [p for p in proxies.split(",") if p.strip()]
        networks: list[_IPNetwork] = []
        #: ``"unix"``: a peer on a Unix socket (which has no address: nginx in front of gunicorn or
        #: uvicorn on ``unix:/run/app.sock``) is a trusted proxy.
        self._unix = False
        for item in proxies:
            if item.strip().lower() == "unix":
                self._unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"trusted proxy {item!r} is not an IP address or network (or unix)") from exc
        self._networks = tuple(networks)
        self.networks: tuple[str, ...] = tuple(str(n) for n in networks) + (("unix",) if self._unix else ())

    def __bool__(self) -> bool:
        return bool(self._networks) or self._unix

    def __repr__(self) -> str:
        return f"TrustedProxies({list(self.networks)!r}, header={self.header!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TrustedProxies)
            and other.networks == self.networks
            and other.header == self.header
        )

    __hash__ = None  # type: ignore[assignment]

    def trusts(self, address: str | None) -> bool:
        """Whether ``address`` belongs to a trusted proxy (``None`` or ``""``: a Unix-socket peer)."""
        if not address:
            return self._unix
        if not self._networks:
            return False
        try:
            ip: _IPAddress = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports an IPv4 proxy as ::ffff:a.b.c.d
        return any(ip in net for net in self._networks)

    def client_ip(self, peer: str | None, headers: Iterable[tuple[str, str]]) -> str | None:
        """The client address for a request from socket ``peer`` with these headers."""
        if not self.trusts(peer):
            return peer
        name = self.header
        lines = [value for key, value in headers if key == name]
        if not lines:
            return peer
        hops: list[str | None]
        if name == "forwarded":
            hops = _forwarded_for(lines)
        else:
            hops = [_parse_address(part) for line in lines for part in line.split(",")]
        if not hops:
            return peer
        # Walk from the nearest hop outwards; the first address not ours is the client.
        for hop in reversed(hops):
            if hop is None:
                return None  # an unparseable or obfuscated hop: the client is unknown beyond it
            if not self.trusts(hop):
                return hop
        return hops[0] if hops and hops[0] is not None else peer
