"""Inputs given by reference, fetched only under a policy (server-side request forgery).

A WPS client may give a complex input as a reference (``xlink:href``): the
service then fetches that URL itself, from the web host for a synchronous
request and from an exec host for an asynchronous one, both of them next to
the database, the shared tree and the qmaster. PyWPS 4.8 fetches any URL with
``requests.get`` and no timeout, follows redirects and accepts POST. Here
every fetch goes through :meth:`FetchPolicy.fetch`:

* ``http`` and ``https`` only;
* the host name is resolved and *every* address it resolves to is checked
  (:meth:`FetchPolicy.address_refusal`): unspecified, loopback, link-local,
  multicast, private (RFC 1918, unique-local), reserved and every other not
  globally routable address, the IPv4 addresses embedded in IPv6 forms
  (IPv4-mapped, 6to4, Teredo, NAT64), and the networks the operator lists as
  the cluster's own (``refused_networks``) are refused, unless the operator
  allows the host name (``allowed_hosts``) or the network
  (``allowed_networks``);
* the connection goes to the address that was checked, not to a second DNS
  answer (DNS rebinding): see :class:`_PinnedAdapter`;
* redirects are followed here, not by ``requests``: at most
  ``max_redirects``, each hop checked like the first;
* connect and read timeouts, and a deadline for the whole fetch;
* the body is streamed to a file and reading stops past the size bound
  (PyWPS's ``maxsingleinputsize``); it is never read whole into memory;
* GET, or POST only where the caller says so (a process that allows it for an
  input, see :mod:`.compat`).

Refusals raise :class:`FetchRefused` with a reason written for the client;
:mod:`.compat` turns it into the OGC exception (InvalidParameterValue or
FileSizeExceeded, locator = the input) or, for a job already running, into
the reason of its ProcessFailed status document.

Why this is written here rather than taken from a library: the maintained
candidate, ``requests-hardened``, checks only the first address a name
resolves to, can allow loopback but no operator host or network, and cannot
refuse extra networks (the cluster's public addresses); ``advocate`` has had
no release since 2020 and patches urllib3 internals. The address tests
themselves are the standard ``ipaddress`` module's; the few ranges added in
:data:`EXTRA_REFUSED` are the ones the Python of the hosts (3.11) does not
yet count as non-global.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit, urlunsplit

import idna
import requests
import urllib3
from requests.adapters import HTTPAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

SCHEMES = ("http", "https")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024

#: Not globally reachable, yet counted as global by Python 3.11's ``ipaddress``
#: (several were fixed in later Python releases, CPython issue 113171).
EXTRA_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), what) for net, what in (
        ("192.0.0.0/24", "an IETF protocol assignment address"),
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("fec0::/10", "a site-local address"),
        ("5f00::/16", "an IPv6 segment routing address"),
        ("2001:20::/28", "an overlay identifier (ORCHIDv2)"),
        ("3fff::/20", "a documentation address"),
    )
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class FetchRefused(Exception):
    """The policy does not fetch a reference; ``reason`` says why, for the client.

    ``too_large`` marks a refusal for size (the OGC exception code is then
    FileSizeExceeded rather than InvalidParameterValue).
    """

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


def _printable(text: str, limit: int = 80) -> str:
    """``text`` as safe to echo in a reason: printable characters only, shortened."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _special(ip: IPAddress) -> str | None:
    """What makes ``ip`` not a public address, or None for a public one."""
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (this includes cloud metadata services)"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    for net, what in EXTRA_REFUSED:
        if ip.version == net.version and ip in net:
            return what
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "an address that is not globally routable"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form stands for, with the form's name."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "Teredo"
    for net in _NAT64:
        if ip in net:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    return None


def _host_matches(host: str, patterns: Iterable[str]) -> bool:
    """``host`` equals a pattern, or lies under a pattern that starts with a dot (``.example.org``)."""
    for pattern in patterns:
        if host == pattern or (pattern.startswith(".") and host.endswith(pattern)):
            return True
    return False


@dataclass(frozen=True)
class Target:
    """A checked URL: what to ask for and which address to connect to."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) host name or address, lower case, no brackets
    port: int
    address: IPAddress  # the checked address the connection goes to

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned_url(self) -> str:
        """``url`` with its host replaced by the checked address (credentials and port kept)."""
        parts = urlsplit(self.url)
        address = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        netloc += f"{address}:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


class _PinnedAdapter(HTTPAdapter):
    """A transport adapter that connects to the checked address and still speaks to the host by name.

    The request URL carries the checked IP address (:meth:`Target.pinned_url`),
    so urllib3 connects there and never resolves the name a second time: a DNS
    answer that changes between the check and the connection (rebinding) is
    never used. What the server sees stays the name: the ``Host`` header is
    set by the caller, and for https urllib3's public pool options
    ``server_hostname`` (the TLS SNI) and ``assert_hostname`` (the name the
    certificate is verified against) are set to the host name. A new adapter,
    with its own pools, serves each hop, so no connection is reused for
    another host.
    """

    def __init__(self, host: str) -> None:
        self._host = host
        super().__init__(max_retries=0, pool_connections=1, pool_maxsize=1)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        # urllib3 drops these TLS-only options for plain http pools.
        pool_kwargs["server_hostname"] = self._host
        pool_kwargs["assert_hostname"] = self._host
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


@dataclass(frozen=True)
class FetchPolicy:
    """What the service fetches for an input given by reference (the ``[fetch]`` section of pywps.cfg).

    ``allowed_hosts``: host names fetched whatever they resolve to (an entry
    starting with a dot allows every name under it); ``allowed_networks``:
    networks fetched even though special; ``refused_networks``: networks
    refused besides the special ones (the cluster's own public addresses).
    An allowance wins over a refusal. ``resolver`` and ``verify`` are for
    tests (a resolver standing in for DNS, a CA bundle).
    """

    allowed_hosts: tuple[str, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    refused_networks: tuple[IPNetwork, ...] = ()
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 60.0
    max_redirects: int = 5
    resolver: Resolver = field(default=socket.getaddrinfo, compare=False, repr=False)
    verify: bool | str = field(default=True, compare=False, repr=False)

    # -- checks ---------------------------------------------------------------------------

    def address_refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why ``ip`` (an address of ``host``) is not fetched, or None when it may be."""
        if _host_matches(host, self.allowed_hosts):
            return None
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return None
        if any(ip.version == net.version and ip in net for net in self.refused_networks):
            return "an address of this service's own network"
        if isinstance(ip, ipaddress.IPv6Address):
            # An IPv6 form that stands for an IPv4 address is judged by that address.
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                inner = self.address_refusal(host, embedded[0])
                if inner is not None:
                    return f"an {embedded[1]} IPv6 form of {embedded[0]}, {inner}"
                if embedded[1] == "IPv4-mapped":  # ::ffff:0:0/96 counts as private for Python itself
                    return None
        return _special(ip)

    def check(self, url: str) -> Target:
        """Parse and resolve ``url`` and check every address; the :class:`Target` to connect to.

        Raises :class:`FetchRefused` for a scheme other than http/https, a
        missing or unresolvable host, or any refused address.
        """
        shown = _printable(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise FetchRefused(f"the reference {shown} is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise FetchRefused(f"only http and https references are fetched, not {_printable(scheme or 'a relative')}"
                               f" URLs ({shown})")
        raw_host = (parts.hostname or "").rstrip(".")
        if not raw_host:
            raise FetchRefused(f"the reference {shown} names no host")
        literal = _ip_literal(raw_host)
        if literal is not None:
            host = str(literal)
        else:
            try:
                host = idna.encode(raw_host, uts46=True).decode("ascii").lower()
            except idna.IDNAError:
                raise FetchRefused(f"{_printable(raw_host)} is not a valid host name") from None
        port = port or (443 if scheme == "https" else 80)
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise FetchRefused(f"the host name {_printable(host)} could not be resolved") from None
        addresses: list[IPAddress] = []
        for family, *_rest, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise FetchRefused(f"the host name {_printable(host)} could not be resolved")
        for ip in addresses:
            why = self.address_refusal(host, ip)
            if why is not None:
                # The address is named only when the client gave it: no DNS answers of internal names leak.
                subject = f"the address {ip} is" if literal is not None else f"the host {host} resolves to"
                raise FetchRefused(f"{subject} {why}; references are fetched only from public addresses")
        return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])

    # -- fetching -------------------------------------------------------------------------------

    def fetch(self, url: str, out: BinaryIO, max_bytes: int, method: str = "GET", data: Any = None) -> int:
        """Fetch ``url`` under the policy into ``out``; the number of bytes written.

        ``max_bytes`` <= 0 means no size bound (PyWPS's ``maxsingleinputsize``
        of 0); the body still goes to ``out`` chunk by chunk and the deadline
        still holds. Raises :class:`FetchRefused`.
        """
        method = method.upper()
        if method not in ("GET", "POST"):
            raise FetchRefused(f"the method {_printable(method)} is not used for references; only GET")
        deadline = time.monotonic() + self.total_timeout
        hops = 0
        while True:
            target = self.check(url)
            response = self._request(target, method, data, deadline)
            try:
                if response.status_code in REDIRECT_STATUSES and response.headers.get("Location"):
                    hops += 1
                    if hops > self.max_redirects:
                        raise FetchRefused(f"the reference redirects more than {self.max_redirects} times")
                    url = urljoin(url, response.headers["Location"])
                    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                        method, data = "GET", None
                    continue
                if not 200 <= response.status_code < 300:
                    raise FetchRefused(f"the server of the reference answered {response.status_code} "
                                       f"{_printable(response.reason or '', 40)}".rstrip())
                return self._read(response, out, max_bytes, deadline)
            finally:
                response.close()

    def _request(self, target: Target, method: str, data: Any, deadline: float) -> requests.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchRefused(f"fetching the reference took longer than {self.total_timeout:g} s")
        session = requests.Session()
        # No proxy or .netrc from the environment: a proxy would resolve the name itself.
        session.trust_env = False
        session.mount(f"{target.scheme}://", _PinnedAdapter(target.host))
        headers = {"Host": target.host_header, "Accept-Encoding": "identity"}
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        try:
            return session.request(method, target.pinned_url(), headers=headers, data=data, stream=True,
                                   allow_redirects=False, timeout=timeout, verify=self.verify)
        except requests.exceptions.ConnectTimeout:
            raise FetchRefused(f"{target.host} did not accept a connection within {timeout[0]:g} s") from None
        except requests.exceptions.ReadTimeout:
            raise FetchRefused(f"{target.host} did not answer within {timeout[1]:g} s") from None
        except requests.exceptions.SSLError:
            raise FetchRefused(f"the TLS connection to {target.host} failed (certificate not valid for the name "
                               f"or not trusted)") from None
        except requests.exceptions.ConnectionError:
            raise FetchRefused(f"could not connect to {target.host} on port {target.port}") from None
        except requests.exceptions.RequestException as e:
            raise FetchRefused(f"the reference could not be fetched: {type(e).__name__}") from None
        finally:
            session.close()  # the response keeps its own connection until it is closed

    def _read(self, response: requests.Response, out: BinaryIO, max_bytes: int, deadline: float) -> int:
        too_large = f"the reference is larger than the {_size(max_bytes)} an input may have"
        declared = response.headers.get("Content-Length", "")
        if max_bytes > 0 and declared.isdigit() and int(declared) > max_bytes:
            raise FetchRefused(too_large, too_large=True)
        total = 0
        try:
            # read1 returns what has arrived (at most CHUNK), so the deadline is checked after every
            # read: a server that drips a byte at a time, each within the read timeout, is cut off too.
            while chunk := response.raw.read1(CHUNK, decode_content=True):
                total += len(chunk)
                if max_bytes > 0 and total > max_bytes:
                    raise FetchRefused(too_large, too_large=True)
                if time.monotonic() > deadline:
                    raise FetchRefused(f"fetching the reference took longer than {self.total_timeout:g} s")
                out.write(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            raise FetchRefused(f"the server of the reference stopped sending for {self.read_timeout:g} s") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise FetchRefused("the connection to the server of the reference broke off") from None
        return total


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.4g} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _ip_literal(host: str) -> IPAddress | None:
    """``host`` as an address when it is written as one in the standard form, else None.

    Other numeric forms (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) are left
    to the resolver, which reads them as the C library does, so the address
    checked is the one that would be connected to.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# -- the policy of this process --------------------------------------------------------------

_active: FetchPolicy | None = None


def configure(policy: FetchPolicy) -> None:
    """Make ``policy`` the one every fetch of this process uses (:func:`.config.load` calls it).

    Process-wide because PyWPS fetches from inside its input objects, which
    know neither their process nor the service's configuration.
    """
    global _active
    _active = policy


def active_policy() -> FetchPolicy:
    """The configured policy; before any configuration the strict default (nothing allowed)."""
    return _active if _active is not None else FetchPolicy()
