"""Bytes from somewhere else: the URLs web-download imports from and external
locations point at, opened only where the operator allows.

Contract (the import worker and the locations code rely on it):

- `check_url(url)` raises `RemoteRefused` (a 400 InvalidInput) for a URL the
  operator's rules refuse: scheme, port, host allow/deny lists, and a host that
  resolves to a private, loopback, link-local or otherwise non-public address unless
  it is listed in IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS.
- `open_remote(url)` is a context manager yielding a `RemoteStream`: `size` (the
  declared Content-Length, or None) and `readinto(buffer) -> int` (0 at the end),
  what `images.ingest.Ingest` reads from. Every redirect is checked again before it
  is followed; a refusal or an HTTP error raises `RemoteRefused` or `RemoteError`.

The rules, Glance's `[import_filtering_opts]` (settings IMAGES_WEB_DOWNLOAD_*):

- Schemes: http and https only, ever (Glance's validate_location_uri); ALLOWED_SCHEMES
  (default http, https) or, when it is empty, DISALLOWED_SCHEMES narrows that.
- Hosts: ALLOWED_HOSTS, when set, is an allow list as in Glance: only the hosts it
  names may be fetched from, and the deny list is ignored. A host matches by the name
  or address written in the URL, not by what a name resolves to. Listing a host is
  also the one way to fetch from a private or loopback address, so allowing a private
  mirror restricts web-download to the listed hosts (list the public ones too).
  DISALLOWED_HOSTS refuses the host by its name and by every address it resolves to,
  so a denied address cannot be reached through a name (stricter than Glance).
- Addresses: unless the URL's host is in ALLOWED_HOSTS, it is refused if any address
  it resolves to is not public (private, loopback, link-local, multicast, reserved,
  unspecified, shared 100.64/10, or an IPv6 form of one of those: IPv4-mapped,
  NAT64's 64:ff9b::/96, 6to4).
- Ports: ALLOWED_PORTS (default 80, 443) or, when it is empty, DISALLOWED_PORTS. The
  port checked is the one connected to, the scheme's default when the URL names none
  (Glance checks only a port written in the URL). Listing a host does not exempt it
  from the port rules: Glance applies scheme, host and port filters each in turn.
- Host names written as numbers ("2130706433", "127.1", "0x7f.1") are refused: the
  resolver would read them as addresses that no list names (as Glance does).
- User info ("user:password@host") is refused: the URL ends up in task messages and
  logs, and credentials must not.

Fetching:

- DNS is resolved once per hop, the addresses checked, and the connection made to a
  checked address (the next one if it cannot connect), with the URL's host name in
  the Host header, TLS SNI and certificate check. A name that resolves elsewhere a
  moment later (DNS rebinding) is never connected to. TLS is verified against the
  system's trust store (SSL_CERT_FILE overrides it).
- Redirects (301, 302, 303, 307, 308) are followed by hand, at most MAX_REDIRECTS,
  each Location checked like the first URL before any connection to it.
- Environment proxies (HTTP_PROXY) are not used: the checks are about the address
  connected to, and a proxy would connect elsewhere.
- Bytes are raw: "Accept-Encoding: identity" is asked for, and a body the server
  sends with a Content-Encoding anyway is kept as sent (as Glance does), so its hash
  is the hash of what the server publishes.
- IMAGES_WEB_DOWNLOAD_TIMEOUT bounds the connection and each read, not the download:
  the caller bounds the size (and so the time) while it streams.
- A transfer that breaks (reset, timeout, fewer bytes than Content-Length, a bad
  chunk) raises `RemoteError`. Without Content-Length or chunking, the end of the
  body is the end of the connection, and a cut there cannot be told from the end.

Messages are one line, fit for an API 400 and a task's message. They name the URL
without its query (which may be a signature, e.g. a presigned S3 URL) and never the
address a name resolved to.
"""

import http.client
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urljoin, urlsplit

from django.conf import settings

from images.errors import InvalidInput, StoreError

MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
# The last label of a host written as a number: a resolver reads the whole as an
# address (inet_aton), and no real top-level domain looks like this.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# Characters kept as they are in the request target: reserved ones and "%" (escapes
# already there); anything else (spaces, non-ASCII) is percent-encoded.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
_USER_AGENT = "glance-registry web-download"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RemoteRefused(InvalidInput):
    """The URL is not one this registry may fetch."""


class RemoteError(StoreError):
    """The remote end failed: unreachable, an HTTP error, a broken transfer."""


class RemoteStream(Protocol):
    size: int | None

    def readinto(self, buffer) -> int: ...


@dataclass(frozen=True)
class _Target:
    """A checked URL: where to connect and what to ask for."""

    url: str
    shown: str
    scheme: str
    host: str
    port: int
    request_target: str
    addresses: tuple[str, ...]


def check_url(url: str) -> None:
    """Raise RemoteRefused unless the operator's rules let the registry fetch `url`."""
    _checked(url)


@contextmanager
def open_remote(url: str) -> Iterator[RemoteStream]:
    """The body of `url`, after its checks and those of each redirect; the connection
    is closed when the block ends."""
    target = _checked(url)
    for _hop in range(MAX_REDIRECTS + 1):
        connection = _connect(target)
        try:
            response = _get(connection, target)
            if response.status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise RemoteError(
                        f"{target.shown} answered HTTP {response.status} without a Location"
                    )
                target = _checked(urljoin(target.url, location.strip()), redirected=True)
                continue
            if response.status != 200:
                raise RemoteError(
                    f"{target.shown} answered HTTP {response.status} {_one_line(response.reason)}"
                )
            yield _HTTPStream(response, target)
            return
        finally:
            connection.close()
    raise RemoteError(f"{_shown(url)} redirects more than {MAX_REDIRECTS} times")


class _HTTPStream:
    """The body of one 200 response, read as it comes."""

    def __init__(self, response: http.client.HTTPResponse, target: _Target):
        self._response = response
        self._target = target
        # http.client counts `length` down as it reads: keep what was declared.
        self.size: int | None = response.length
        self.url = target.url
        self.received = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            n = self._response.readinto(buffer)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise RemoteError(self._broken(_reason(exc))) from None
        self.received += n
        if n == 0 and len(buffer) and self.size is not None and self.received < self.size:
            # http.client reports a body cut short as its end; the declared size says not.
            raise RemoteError(self._broken("the connection closed"))
        return n

    def _broken(self, why: str) -> str:
        declared = f" of {self.size}" if self.size is not None else ""
        return (
            f"The transfer from {self._target.shown} broke off after "
            f"{self.received}{declared} bytes: {why}"
        )


def _checked(url: str, *, redirected: bool = False) -> _Target:
    """The URL checked against the operator's rules, its host resolved once."""
    url = url.strip()
    shown = _shown(url)
    refused = f"Redirect to {shown} refused" if redirected else f"URL {shown} refused"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RemoteRefused(f"{refused}: {_one_line(str(exc))}") from None
    scheme = parts.scheme.lower()
    allowed_schemes, denied_schemes = _narrowed(
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES,
        settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_SCHEMES,
    )
    if (
        scheme not in _DEFAULT_PORTS
        or (allowed_schemes and scheme not in allowed_schemes)
        or scheme in denied_schemes
    ):
        raise RemoteRefused(f"{refused}: the {scheme or 'missing'} scheme is not allowed")
    if parts.username is not None or parts.password is not None:
        raise RemoteRefused(f"{refused}: user names and passwords in URLs are not allowed")
    host = _canonical_host(parts.hostname or "")
    if host is None:
        raise RemoteRefused(f"{refused}: {parts.hostname or 'no host'} is not a valid host")
    allowed_hosts, denied_hosts = _narrowed(
        {_canonical_host(h) for h in settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS},
        {_canonical_host(h) for h in settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS},
    )
    if (allowed_hosts and host not in allowed_hosts) or host in denied_hosts:
        raise RemoteRefused(f"{refused}: the host {host} is not allowed")
    port = port if port is not None else _DEFAULT_PORTS[scheme]
    allowed_ports, denied_ports = _narrowed(
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS, settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS
    )
    if (allowed_ports and port not in allowed_ports) or port in denied_ports:
        raise RemoteRefused(f"{refused}: the port {port} is not allowed")
    addresses = _resolve(host, port, refused)
    if any(address in denied_hosts for address in addresses):
        raise RemoteRefused(f"{refused}: the host {host} is not allowed")
    if host not in allowed_hosts:
        for address in addresses:
            kind = _non_public(ipaddress.ip_address(address))
            article = "an" if kind and kind[0] in "aeiou" else "a"
            if kind and address == host:
                raise RemoteRefused(f"{refused}: {host} is {article} {kind} address")
            if kind:
                raise RemoteRefused(f"{refused}: {host} resolves to {article} {kind} address")
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return _Target(url, shown, scheme, host, port, target, addresses)


def _narrowed(allowed, denied) -> tuple[set, set]:
    """Glance's rule for each pair of lists: an allow list, when set, wins."""
    return (set(allowed), set()) if allowed else (set(), set(denied))


def _canonical_host(host: str) -> str | None:
    """The host as the lists name it: lower case, an address in its standard form,
    a name in ASCII (IDNA); None for one that is neither."""
    host = host.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not _HOST_NAME.fullmatch(host) or _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        return None
    return host


def _resolve(host: str, port: int, refused: str) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise RemoteRefused(f"{refused}: the host {host} does not resolve") from None
    addresses = dict.fromkeys(str(ipaddress.ip_address(info[4][0])) for info in infos)
    if not addresses:
        raise RemoteRefused(f"{refused}: the host {host} does not resolve")
    return tuple(addresses)


def _non_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What makes the address one not to fetch from, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that reach an IPv4 address: the kernel connects ::ffff:10.0.0.1
        # to 10.0.0.1, a NAT64 gateway 64:ff9b::a00:1, a 6to4 relay 2002:a00:1::.
        embedded = address.ipv4_mapped or address.sixtofour
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    for kind, is_kind in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ):
        if is_kind:
            return kind
    return None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address given, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._create_connection = _connector(address)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above; SNI and the certificate check are for the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._create_connection = _connector(address)


def _connector(address: str):
    def create_connection(host_port, timeout, source_address=None):
        return socket.create_connection((address, host_port[1]), timeout, source_address)

    return create_connection


def _connect(target: _Target) -> http.client.HTTPConnection:
    """A connection to the first of the checked addresses that answers."""
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    why = ""
    for address in target.addresses:
        connection = kind(target.host, target.port, address, settings.IMAGES_WEB_DOWNLOAD_TIMEOUT)
        try:
            connection.connect()
            return connection
        except OSError as exc:
            connection.close()
            why = _reason(exc)
    raise RemoteError(f"Cannot connect to {target.host} port {target.port}: {why}")


def _get(connection: http.client.HTTPConnection, target: _Target) -> http.client.HTTPResponse:
    try:
        connection.request(
            "GET",
            target.request_target,
            headers={"Accept-Encoding": "identity", "User-Agent": _USER_AGENT},
        )
        return connection.getresponse()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise RemoteError(f"{target.shown} did not answer: {_reason(exc)}") from None


def _shown(url: str) -> str:
    """The URL for messages: no query or fragment (they may hold a signature), short."""
    shown = url.strip().split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = shown.partition("://")
    if sep:
        # Never a password: the URL may have been refused for holding one.
        authority, slash, path = rest.partition("/")
        shown = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    shown = "".join(c if c.isprintable() else "?" for c in shown)
    return shown if len(shown) <= 200 else shown[:200] + "..."


def _one_line(text: str) -> str:
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:100]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _one_line(f"certificate verification failed ({exc.verify_message})")
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed early"
    if isinstance(exc, ValueError):
        return "a malformed response"
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(exc.strerror)
    return _one_line(str(exc) or type(exc).__name__)
