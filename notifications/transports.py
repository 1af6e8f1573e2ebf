"""One class per channel; ``send(delivery)`` returns on success or raises ``TransportError``.

A transport does the I/O only. Claiming, retry scheduling and dead-lettering live in
``notifications.services`` so every channel gets the same guarantees (CONVENTIONS.md §7).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import smtplib
from typing import Any, ClassVar
from urllib.parse import unquote

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from standardwebhooks import Webhook
from urllib3 import BaseHTTPResponse, Timeout
from urllib3.exceptions import HTTPError
from urllib3.util import make_headers, parse_url

from notifications.conf import get_conf
from notifications.destinations import DestinationNotAllowed, shared_webhook_client
from notifications.messages import render
from notifications.models import Channel, Delivery, Notification


class TransportError(Exception):
    """A failed send. ``permanent`` means retrying cannot help (dead-letter now);
    ``retry_after`` (seconds) is the receiver's own "not before" (HTTP Retry-After)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.status_code = status_code


# The whole error a refused webhook destination gets: no address, status or body of anything
# inside the network.
REFUSED_DESTINATION = "destination not allowed (non-public address)"


class EndpointGone(TransportError):
    """The receiver answered 410 Gone: it asks us to stop sending for good."""

    def __init__(self, message: str, *, status_code: int = 410) -> None:
        super().__init__(message, permanent=True, status_code=status_code)


class Transport:
    kind: ClassVar[str]

    def send(self, delivery: Delivery) -> int | None:
        """Send; returns the receiver's status code where there is one."""
        raise NotImplementedError


class EmailTransport(Transport):
    kind = Channel.EMAIL

    def send(self, delivery: Delivery) -> int | None:
        event = delivery.event
        message = render(event.type, event.payload)
        context = {
            "message": message,
            "event": event,
            "recipient": delivery.recipient_user,
            "site_url": settings.SITE_URL,
        }
        mail = EmailMultiAlternatives(
            subject=f"[Gatekeeper] {message.title}",
            body=render_to_string("notifications/email.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[delivery.recipient_email],
            headers={
                # Lets a mail pipeline or a user's filter dedupe a retried send.
                "X-Gatekeeper-Event": event.key,
                "X-Gatekeeper-Delivery": delivery.webhook_id,
            },
        )
        mail.attach_alternative(render_to_string("notifications/email.html", context), "text/html")
        try:
            # Built here, not inside the backend, so a message that can never be built (a
            # newline in a header from an initiative's name) is told apart from a mail server
            # failing: resending the same content would fail the same way every time.
            mail.message()
        except ValueError as exc:  # BadHeaderError, or a newline in an address
            raise TransportError(f"message cannot be built: {exc}", permanent=True) from exc
        try:
            mail.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            raise TransportError(f"recipient refused: {exc.recipients}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        return None


def _retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def webhook_body(delivery: Delivery) -> str:
    """The JSON body, identical on every retry (only the signed timestamp changes).

    Recipients' e-mail addresses are dropped: an endpoint is a system integration, and it needs
    who (user ids and roles), not personal addresses.
    """
    event = delivery.event
    data: dict[str, Any] = dict(event.payload)
    if isinstance(data.get("recipients"), list):
        data["recipients"] = [
            {k: v for k, v in r.items() if k != "email"} if isinstance(r, dict) else r
            for r in data["recipients"]
        ]
    body = {
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "event_id": event.pk,
        "event_key": event.key,
        "data": data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


# What is read of an answer's body (nobody looks at it) so its connection can be reused.
MAX_ANSWER_BYTES = 64 * 1024


def _finish(response: BaseHTTPResponse) -> None:
    """Read the rest of a webhook answer and let its connection go back to the pool.

    Only a connection whose answer was read to the end can carry the next request, so a short
    body is drained; one longer than ``MAX_ANSWER_BYTES``, or one that breaks off, closes its
    connection instead. The status line already came: what follows does not change the result.
    """
    read = 0
    complete = False
    try:
        while read <= MAX_ANSWER_BYTES:
            chunk = response.read(8192, decode_content=False)
            if not chunk:
                complete = True
                break
            read += len(chunk)
    except (HTTPError, OSError):
        pass
    if not complete:
        response.close()  # closes the connection too: it must not carry another request
    response.release_conn()


def _basic_auth(userinfo: str) -> str:
    """``Authorization`` for credentials in the endpoint's URL (``https://user:pass@host/``),
    percent-decoded as requests decoded them."""
    user, _, password = userinfo.partition(":")
    return make_headers(basic_auth=f"{unquote(user)}:{unquote(password)}")["authorization"]


class WebhookTransport(Transport):
    kind = Channel.WEBHOOK

    def send(self, delivery: Delivery) -> int | None:
        endpoint = delivery.endpoint
        if endpoint is None:
            raise TransportError("the endpoint was deleted", permanent=True)
        if not endpoint.is_active:
            raise TransportError(
                f"endpoint disabled: {endpoint.disabled_reason or 'inactive'}", permanent=True
            )
        body = webhook_body(delivery)
        now = timezone.now()
        headers = {
            "content-type": "application/json",
            "user-agent": "Gatekeeper-Webhooks/1",
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(endpoint.secret).sign(
                msg_id=delivery.webhook_id, timestamp=now, data=body
            ),
        }
        timeout = get_conf().webhook_timeout_seconds
        try:
            userinfo = parse_url(endpoint.url).auth
            if userinfo:
                headers["authorization"] = _basic_auth(userinfo)
            response = shared_webhook_client().urlopen(
                "POST",
                endpoint.url,
                body=body.encode("utf-8"),
                headers=headers,
                timeout=Timeout(connect=timeout, read=timeout),
                # One try per attempt: retries are the delivery's, with backoff, in the database.
                retries=False,
                # A redirect could point the signed payload anywhere; the endpoint must
                # be registered at its final URL.
                redirect=False,
                # The body is read below, up to a bound: an endpoint cannot make a worker
                # hold an unbounded answer in memory.
                preload_content=False,
            )
        except DestinationNotAllowed as exc:
            # Nothing about the destination (its address, any answer) goes into the
            # delivery's error: that would let an endpoint's owner probe the inside network.
            raise TransportError(REFUSED_DESTINATION, permanent=True) from exc
        except (HTTPError, OSError, ValueError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        status = response.status
        _finish(response)
        if 200 <= status < 300:
            return status
        if status == 410:
            raise EndpointGone("endpoint answered 410 Gone", status_code=status)
        if status == 429 or status >= 500:
            raise TransportError(
                f"HTTP {status}",
                retry_after=_retry_after_seconds(response.headers.get("Retry-After"), now),
                status_code=status,
            )
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise TransportError(
                f"HTTP {status} redirect to {location!r} not followed; register the final URL",
                permanent=True,
                status_code=status,
            )
        raise TransportError(f"HTTP {status}", permanent=True, status_code=status)


class InAppTransport(Transport):
    kind = Channel.IN_APP

    def send(self, delivery: Delivery) -> int | None:
        if delivery.recipient_user_id is None:
            raise TransportError("the recipient user was deleted", permanent=True)
        message = render(delivery.event.type, delivery.event.payload)
        # Keyed by the delivery: a retry after a crash finds the row instead of adding one.
        Notification.objects.get_or_create(
            delivery=delivery,
            defaults={
                "user_id": delivery.recipient_user_id,
                "event_type": delivery.event.type,
                "title": message.title,
                "body": message.body,
                "link": message.link,
            },
        )
        return None


TRANSPORTS: dict[str, type[Transport]] = {
    t.kind: t for t in (EmailTransport, WebhookTransport, InAppTransport)
}


def get_transport(kind: str) -> Transport:
    try:
        return TRANSPORTS[kind]()
    except KeyError:
        raise TransportError(f"no transport for channel {kind!r}", permanent=True) from None
