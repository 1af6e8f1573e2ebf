"""Where webhooks may be sent: public internet addresses only (SSRF), checked at connect time.

The security boundary is the connection itself. ``webhook_client()`` makes connections that
resolve the host once, refuse unless every answer is a public address, and connect
to exactly those answers. So the address checked is the address connected to: URL-parser tricks
(``http://127.0.0.1\\@1.1.1.1/``), numeric host spellings (``http://2130706433/``), IPv6 forms
of private IPv4 and DNS rebinding between a check and the connect have nothing to slip through.

``destination_problem`` is the early, advisory check behind the model's validation (a clear
error at save); it is not what keeps a send from reaching an internal address.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
from typing import Any

import certifi
from django.conf import settings
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import parse_url
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address (RFC 6052 NAT64, RFC 3056 6to4): the packet ends up
# at the embedded IPv4 address, so that is the one to judge.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class DestinationNotAllowed(Exception):
    """A connection refused because its address is not public.

    Deliberately not an ``OSError``: urllib3 would wrap and retry those; this one must leave
    the HTTP client unchanged.
    """


def private_networks_allowed() -> bool:
    return bool(getattr(settings, "GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS", False))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the translating forms."""
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return address.ipv4_mapped
    if address in _NAT64:  # 64:ff9b::a.b.c.d
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48
        return address.sixtofour
    return None


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses.

    ``is_global`` alone is not enough: it is True for multicast, and for IPv6 forms that carry
    a private IPv4 address (``::ffff:127.0.0.1``); the explicit flags also keep this strict
    on Python versions whose special-purpose registries differ.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        if address.is_site_local:  # fec0::/10, deprecated but still routed internally
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _address_of(sockaddr: tuple[Any, ...]) -> IPAddress:
    # A link-local IPv6 answer may carry a zone ("fe80::1%eth0").
    return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])


class _PublicOnlyConnectionMixin:
    """Replaces urllib3's resolve-and-connect so the address it checks is the one it uses."""

    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        try:
            answers = socket.getaddrinfo(
                self._dns_host.strip("[]"), self.port, allowed_gai_family(), socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        # Every answer, not just the first: otherwise a name answering one public and one
        # private address could still reach the private one on a fallback.
        refused = [
            str(address)
            for address in (_address_of(answer[4]) for answer in answers)
            if not is_public_address(address)
        ]
        if refused or not answers:
            logger.warning(
                "webhook connection to %r refused: non-public address %s",
                self.host,
                ", ".join(refused) or "(none)",
            )
            raise DestinationNotAllowed(self.host)
        error: OSError | None = None
        # Connect to these exact socket addresses: no second lookup a rebinding could answer.
        for family, kind, proto, _name, sockaddr in answers:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(
                    self,  # type: ignore[arg-type]
                    f"Connection to {self.host} timed out. (connect timeout={self.timeout})",
                ) from exc
            except OSError as exc:
                sock.close()
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(
            self,  # type: ignore[arg-type]
            f"Failed to establish a new connection: {error}",
        ) from error


class PublicOnlyHTTPConnection(_PublicOnlyConnectionMixin, HTTPConnection):
    pass


class PublicOnlyHTTPSConnection(_PublicOnlyConnectionMixin, HTTPSConnection):
    # The host stays the name from the URL, so SNI, certificate checks and the Host header
    # are about that name while the socket goes to the checked address.
    pass


class PublicOnlyHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = PublicOnlyHTTPConnection


class PublicOnlyHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = PublicOnlyHTTPSConnection


class PublicOnlyPoolManager(PoolManager):
    """A urllib3 pool manager whose every connection goes through the address check.

    It makes plain pools only: no proxy (through a proxy the socket goes to the proxy, and the
    proxy picks the destination, so the check would judge the wrong address), and urllib3 reads
    no proxy settings from the environment.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_classes_by_scheme = {
            "http": PublicOnlyHTTPConnectionPool,
            "https": PublicOnlyHTTPSConnectionPool,
        }


def webhook_client() -> PoolManager:
    """A new HTTP client for webhook sends; public destinations only unless the setting allows.

    urllib3 itself rather than requests on top of it: requests' work around each call (merging
    session settings, cookies and hooks, preparing the URL and body) cost a webhook worker more
    CPU than urllib3's send. Certificates are checked against certifi's bundle, as requests
    did. The caller owns the client (``clear()`` closes its connections); deliveries use
    ``shared_webhook_client()``.
    """
    options: dict[str, Any] = {
        "num_pools": 10,
        "maxsize": 10,
        "cert_reqs": "CERT_REQUIRED",
        "ca_certs": certifi.where(),
    }
    if private_networks_allowed():
        return PoolManager(**options)
    return PublicOnlyPoolManager(**options)


class _SharedClient(threading.local):
    client: PoolManager | None = None
    pid: int = 0
    private_allowed: bool = False


_shared = _SharedClient()


def shared_webhook_client() -> PoolManager:
    """This process's and thread's webhook client, kept so its connections are reused.

    A new TCP (and TLS) connection per send cost more than the send itself. Reuse keeps the
    SSRF guarantee: the address check runs in ``_new_conn``, when a connection is opened, and a
    pooled connection stays bound to the socket address that was checked then. urllib3 keys its
    pools by scheme, host and port, so a kept connection is only ever reused for the same URL
    authority it was opened for; a later DNS answer for that name (rebinding) is never looked
    up for a kept connection, and the first new connection is checked again. What a kept
    connection could carry past a change is the setting itself, so a client made while private
    networks were allowed (no guard) is closed and replaced as soon as they are not.

    Per thread, so no two threads share its pools' bookkeeping. Per process: a prefork pool
    child must not share its parent's sockets, so a client from another pid is dropped (not
    closed: closing would act on sockets that are the parent's too).
    """
    allowed = private_networks_allowed()
    state = _shared
    if state.client is not None and state.pid == os.getpid():
        if state.private_allowed == allowed:
            return state.client
        state.client.clear()
    state.client = webhook_client()
    state.pid = os.getpid()
    state.private_allowed = allowed
    return state.client


def close_shared_webhook_client() -> None:
    """Close this thread's kept client (its pooled connections); the next send makes one."""
    state = _shared
    if state.client is not None and state.pid == os.getpid():
        state.client.clear()
    state.client = None


def destination_problem(url: str) -> str | None:
    """Why ``url`` is no webhook destination, or None if it looks fine (or cannot be told yet).

    Parsed the way the HTTP client parses it, so the host judged here is the one it would
    connect to. A name that does not resolve now passes: it may resolve later, and every send
    is checked again at connect time.
    """
    if private_networks_allowed():
        return None
    if "\\" in url:
        # Parsers disagree about a backslash before "@" (the host would depend on who reads it).
        return "must not contain a backslash"
    try:
        host = (parse_url(url).host or "").strip("[]")
    except ValueError:
        return None  # the field's own validators say what is wrong with it
    if not host:
        return None
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for answer in answers:
        address = _address_of(answer[4])
        if not is_public_address(address):
            return f"points at non-public address {address}; webhooks go to public addresses only"
    return None
