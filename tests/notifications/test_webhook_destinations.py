"""Webhooks never reach internal addresses in production settings (SSRF).

The guard is the connection: whatever the URL looks like, the address the HTTP client resolves
is checked and is the one it connects to. These tests run a local listener that counts every TCP
connection it accepts and record every ``connect`` our sockets make, and post at it in every
spelling an attacker might try (OWASP's SSRF prevention cheat sheet).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from notifications.destinations import (
    DestinationNotAllowed,
    PublicOnlyPoolManager,
    destination_problem,
    is_public_address,
    shared_webhook_client,
    webhook_client,
)
from notifications.models import Channel, Delivery, DeliveryStatus, WebhookEndpoint
from notifications.outbox import emit
from notifications.services import delivery_attempt
from notifications.transports import REFUSED_DESTINATION
from tests.notifications.conftest import payload_with

PUBLIC_IP = "93.184.216.34"


class CountingListener:
    """An HTTP server on 127.0.0.1 that answers 200 to anything and counts connections."""

    def __init__(
        self,
        reply_status: int = 200,
        reply_headers: dict[str, str] | None = None,
        *,
        keep_alive: bool = False,
    ):
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 keeps the connection open for the next request, as real receivers do.
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                listener.requests.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(reply_status)
                for name, value in (reply_headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", "7")
                self.end_headers()
                self.wfile.write(b"secret!")

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                listener.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    server = CountingListener()
    yield server
    server.close()


@pytest.fixture
def connects(monkeypatch) -> list[Any]:
    """Every address a Python socket connects to from the test's thread during the test (the
    database's is libpq's). Only this thread's: the code under test sends from it, while a
    process-wide thread (the dispatch publisher, a broker pool left by an earlier test in this
    worker) may connect to its own servers at any moment."""
    seen: list[Any] = []
    real_connect = socket.socket.connect
    test_thread = threading.get_ident()

    def connect(sock: socket.socket, address: Any) -> None:
        if threading.get_ident() == test_thread:
            seen.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


@pytest.fixture
def guarded(settings) -> None:
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False


# {port} is the local listener's port: the forms that do reach this machine would hit it.
INTERNAL_URLS = [
    # userinfo tricks: urlsplit sees 1.1.1.1, the HTTP client connects to 127.0.0.1
    "http://127.0.0.1:{port}\\@1.1.1.1/x",
    "http://1.1.1.1@127.0.0.1:{port}/x",
    "http://user:pass@127.0.0.1:{port}/x",
    "http://1.1.1.1:80@127.0.0.1:{port}/x",
    # loopback by name and in every IPv4 spelling the resolver accepts
    "http://localhost:{port}/hook",
    "http://127.0.0.1:{port}/hook",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7f.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0177.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://0.0.0.0:{port}/",
    "http://0:{port}/",
    # IPv6 loopback, unspecified, ULA, link-local, site-local, multicast
    "http://[::1]:{port}/",
    "http://[::]:{port}/",
    "http://[0:0:0:0:0:0:0:1]:{port}/",
    "http://[fd00::1]:{port}/",
    "http://[fc00::1]:{port}/",
    "http://[fe80::1]:{port}/",
    "http://[fec0::1]:{port}/",
    "http://[ff02::1]:{port}/",
    # IPv6 forms of private IPv4: mapped, NAT64, 6to4, IPv4-compatible
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
    "http://[::ffff:169.254.169.254]:{port}/",
    "http://[::ffff:10.0.0.1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[64:ff9b::a9fe:a9fe]:{port}/",
    "http://[2002:7f00:1::1]:{port}/",
    "http://[2002:a9fe:a9fe::1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    # private, metadata, CGNAT, multicast, reserved, broadcast
    "http://10.1.2.3:{port}/hook",
    "http://172.16.0.1:{port}/hook",
    "http://192.168.0.10:{port}/hook",
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://100.64.0.1:{port}/",
    "http://100.127.255.254:{port}/",
    "http://224.0.0.1:{port}/",
    "http://239.255.255.250:{port}/",
    "http://240.0.0.1:{port}/",
    "http://255.255.255.255:{port}/",
    "http://192.0.0.1:{port}/",
    "http://198.18.0.1:{port}/",
    "http://[2001:db8::1]:{port}/",
]


@pytest.mark.parametrize("template", INTERNAL_URLS)
def test_the_http_client_refuses_every_internal_form_before_connecting(
    template, guarded, listener, connects
):
    with webhook_client() as client, pytest.raises(DestinationNotAllowed):
        client.urlopen("POST", template.format(port=listener.port), body=b"{}", timeout=5)

    assert connects == []
    assert listener.connections == 0


@pytest.mark.django_db
@pytest.mark.parametrize("template", INTERNAL_URLS)
def test_a_delivery_to_an_internal_form_dies_at_once_with_a_generic_error(
    template, guarded, listener, connects
):
    WebhookEndpoint.objects.create(name="internal", url=template.format(port=listener.port))
    with transaction.atomic():
        event = emit("review.submitted", payload_with(), key="ssrf")
    delivery = Delivery.objects.get(event=event, channel=Channel.WEBHOOK)

    assert delivery_attempt(delivery_id=delivery.pk).status == "dead"

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD
    assert delivery.attempts == 1
    # Nothing of what answered inside (status, body) nor where it is.
    assert delivery.last_error == f"attempt 1: {REFUSED_DESTINATION}"
    assert delivery.last_status_code is None
    assert connects == []
    assert listener.connections == 0


@pytest.mark.django_db
def test_delivery_to_a_private_endpoint_is_dead_lettered_unsent(settings, endpoint, receiver):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with transaction.atomic():
        event = emit("review.submitted", payload_with(), key="ssrf")
    delivery = Delivery.objects.get(event=event, channel=Channel.WEBHOOK)

    delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD
    assert "non-public" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.django_db
def test_the_allowance_lets_a_local_receiver_through(settings, listener):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    WebhookEndpoint.objects.create(name="local", url=f"http://127.0.0.1:{listener.port}/hook")
    with transaction.atomic():
        event = emit("review.submitted", payload_with(), key="local")
    delivery = Delivery.objects.get(event=event, channel=Channel.WEBHOOK)

    assert delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    assert listener.connections == 1


# --- pinning: the address checked is the address connected to ----------------------------------


def _answer(address: str, port: int) -> list[Any]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr: tuple[Any, ...] = (
        (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
    )
    return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]


class FakeDNS:
    """Names in ``table`` answer from it, one list of addresses per lookup in order (the last
    repeats); every other name goes to the real resolver."""

    def __init__(self) -> None:
        self.table: dict[str, list[list[str]]] = {}
        self.lookups: dict[str, int] = {}

    def answer(self, host: str, port: int) -> list[Any]:
        n = self.lookups.get(host, 0)
        self.lookups[host] = n + 1
        addresses = self.table[host][min(n, len(self.table[host]) - 1)]
        return [a for address in addresses for a in _answer(address, port)]


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDNS:
    dns = FakeDNS()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if isinstance(host, str) and host in dns.table:
            return dns.answer(host, int(port or 0))
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


def route_public_to(monkeypatch, port: int) -> list[Any]:
    """Connections to PUBLIC_IP land on the local ``port`` (a stand-in for a public server);
    returns every address our sockets are asked to connect to."""
    seen: list[Any] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        seen.append(address)
        if address[0] == PUBLIC_IP:
            address = ("127.0.0.1", port)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


@pytest.mark.django_db
def test_dns_rebinding_cannot_swap_the_address_between_check_and_connect(
    guarded, listener, fake_dns, monkeypatch
):
    connected = route_public_to(monkeypatch, listener.port)
    # Public at the first lookup, loopback at every later one: a check-then-connect client
    # would check the first answer and connect to the second.
    fake_dns.table["rebind.test"] = [[PUBLIC_IP], ["127.0.0.1"]]
    WebhookEndpoint.objects.create(name="rebind", url=f"http://rebind.test:{listener.port}/hook")
    with transaction.atomic():
        event = emit("review.submitted", payload_with(), key="rebind")
    delivery = Delivery.objects.get(event=event, channel=Channel.WEBHOOK)

    assert delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    # One lookup, and the connection went to exactly what it answered, under the URL's name.
    assert fake_dns.lookups["rebind.test"] == 1
    assert connected == [(PUBLIC_IP, listener.port)]
    assert listener.requests[0]["host"] == f"rebind.test:{listener.port}"

    # The next send looks up afresh, gets loopback, and is refused without connecting.
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
    )
    assert delivery_attempt(delivery_id=delivery.pk).status == "dead"
    delivery.refresh_from_db()
    assert delivery.last_error == f"attempt 2: {REFUSED_DESTINATION}"
    assert connected == [(PUBLIC_IP, listener.port)]
    assert listener.connections == 1


def test_a_name_with_one_internal_answer_among_public_ones_is_refused(
    guarded, listener, fake_dns, monkeypatch
):
    connected = route_public_to(monkeypatch, listener.port)
    fake_dns.table["mixed.test"] = [[PUBLIC_IP, "127.0.0.1"]]
    with webhook_client() as client, pytest.raises(DestinationNotAllowed):
        client.urlopen("POST", f"http://mixed.test:{listener.port}/", body=b"{}", timeout=5)
    assert connected == []
    assert listener.connections == 0


@pytest.mark.django_db
def test_a_redirect_from_an_allowed_destination_is_not_followed(
    guarded, listener, fake_dns, monkeypatch
):
    outside = CountingListener(302, {"Location": f"http://127.0.0.1:{listener.port}/x"})
    try:
        connected = route_public_to(monkeypatch, outside.port)
        fake_dns.table["hooks.test"] = [[PUBLIC_IP]]
        WebhookEndpoint.objects.create(name="moved", url="http://hooks.test/hook")
        with transaction.atomic():
            event = emit("review.submitted", payload_with(), key="moved")
        delivery = Delivery.objects.get(event=event, channel=Channel.WEBHOOK)

        assert delivery_attempt(delivery_id=delivery.pk).status == "dead"

        assert connected == [(PUBLIC_IP, 80)]
        assert outside.connections == 1
        assert listener.connections == 0
    finally:
        outside.close()


# --- the address rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:93.184.216.34",  # mapped public IPv4
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    ],
)
def test_public_addresses_pass(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "::ffff:7f00:1", "64:ff9b::a00:1", "2002:c0a8:1::1", "::7f00:1"],
)
def test_embedded_private_addresses_fail(address):
    assert not is_public_address(ipaddress.ip_address(address))


# --- early validation at save (advisory) ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://2130706433/",
        "http://[::ffff:7f00:1]/",
        "http://1.1.1.1@127.0.0.1/",
        "http://127.0.0.1:8400\\@1.1.1.1/x",
    ],
)
def test_saving_an_endpoint_at_an_internal_url_is_refused(url, guarded):
    assert destination_problem(url) is not None
    endpoint = WebhookEndpoint(name="internal", url=url)
    with pytest.raises(ValidationError) as refused:
        endpoint.clean()
    assert "url" in refused.value.message_dict


def test_public_address_passes(guarded):
    assert destination_problem("https://93.184.216.34/hook") is None  # an IP literal: no DNS


def test_the_allowance_skips_the_early_check(settings):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    assert destination_problem("http://127.0.0.1:8080/hook") is None


@pytest.mark.django_db
def test_clearing_event_types_in_the_admin_means_every_type(endpoint):
    endpoint.event_types = None  # what a cleared JSON field posts
    endpoint.full_clean()
    assert endpoint.event_types == []
    assert endpoint.subscribes_to("initiative.stalled")


# --- kept connections: reused, and still only to checked addresses -----------------------------


@pytest.fixture
def keep_alive_listener() -> Iterator[CountingListener]:
    server = CountingListener(keep_alive=True)
    yield server
    server.close()


def deliver_to(url: str, key: str) -> str:
    endpoint, _ = WebhookEndpoint.objects.get_or_create(name=url[:100], url=url)
    with transaction.atomic():
        event = emit("review.submitted", payload_with(), key=key)
    delivery = Delivery.objects.get(event=event, endpoint=endpoint)
    return delivery_attempt(delivery_id=delivery.pk).status


@pytest.mark.django_db
def test_sends_to_the_same_endpoint_reuse_one_connection(settings, keep_alive_listener):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    url = f"http://127.0.0.1:{keep_alive_listener.port}/hook"

    assert [deliver_to(url, f"k{i}") for i in range(3)] == ["delivered"] * 3

    assert len(keep_alive_listener.requests) == 3
    assert keep_alive_listener.connections == 1


@pytest.mark.django_db
def test_a_kept_connection_is_not_reused_once_private_networks_are_refused(
    settings, keep_alive_listener, connects
):
    url = f"http://127.0.0.1:{keep_alive_listener.port}/hook"
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    assert deliver_to(url, "allowed") == "delivered"

    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    assert deliver_to(url, "refused") == "dead"

    assert len(keep_alive_listener.requests) == 1
    assert keep_alive_listener.connections == 1
    assert connects == [("127.0.0.1", keep_alive_listener.port)]


@pytest.mark.django_db
def test_a_kept_public_connection_does_not_open_the_way_to_an_internal_one(
    guarded, keep_alive_listener, fake_dns, monkeypatch
):
    connected = route_public_to(monkeypatch, keep_alive_listener.port)
    fake_dns.table["hooks.test"] = [[PUBLIC_IP]]
    public = f"http://hooks.test:{keep_alive_listener.port}/hook"

    assert deliver_to(public, "public-1") == "delivered"
    assert deliver_to(f"http://127.0.0.1:{keep_alive_listener.port}/hook", "inside") == "dead"
    assert deliver_to(public, "public-2") == "delivered"

    # Both public sends over the one connection opened to the checked address; the internal
    # URL got its own pool, whose first connection was refused before any socket connected.
    assert connected == [(PUBLIC_IP, keep_alive_listener.port)]
    assert keep_alive_listener.connections == 1
    assert len(keep_alive_listener.requests) == 2
    assert fake_dns.lookups["hooks.test"] == 1


def test_the_kept_client_is_per_thread_and_per_process(monkeypatch):
    mine = shared_webhook_client()
    assert shared_webhook_client() is mine

    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.append(shared_webhook_client()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine

    parent = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)  # as in a forked pool child
    assert shared_webhook_client() is not mine


def test_the_kept_client_carries_the_guard_unless_private_networks_are_allowed(settings):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    guarded_client = shared_webhook_client()
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    open_client = shared_webhook_client()
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    guarded_again = shared_webhook_client()

    assert guarded_client is not open_client is not guarded_again
    assert isinstance(guarded_client, PublicOnlyPoolManager)
    assert isinstance(guarded_again, PublicOnlyPoolManager)
    assert not isinstance(open_client, PublicOnlyPoolManager)


@pytest.mark.django_db
def test_a_proxy_from_the_environment_is_not_used(settings, listener, monkeypatch):
    # Through a proxy, the proxy would pick the destination the guard judged.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9/")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True

    assert deliver_to(f"http://127.0.0.1:{listener.port}/hook", "direct") == "delivered"
    assert listener.connections == 1


@pytest.mark.django_db
def test_credentials_in_the_endpoint_url_are_sent_as_basic_auth(settings, listener):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    url = f"http://hook%40user:p%3Ass@127.0.0.1:{listener.port}/hook"

    assert deliver_to(url, "with-credentials") == "delivered"

    encoded = listener.requests[0]["authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded) == b"hook@user:p:ss"
