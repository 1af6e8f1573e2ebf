"""Guessing API tokens locks the address out, through the same axes records as the admin login."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from api.services import api_tokens_purge_expired
from gatekeeper.celery import BEAT_SCHEDULE
from programs.roles import PMO
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/initiatives/"
PROBLEM = "application/problem+json"
ATTACKER = "203.0.113.66"
NEIGHBOUR = "203.0.113.67"


def _call(address: str, authorization: str):
    return APIClient(REMOTE_ADDR=address).get(URL, HTTP_AUTHORIZATION=authorization)


@pytest.fixture
def token() -> str:
    _, value = AuthToken.objects.create(user=UserFactory(groups=[PMO]))
    return value


def _guesses(token: str, n: int) -> list[str]:
    # Half share the real token's first characters, so a lockout keyed on the recorded label
    # (rather than the address) would also lock the real token out everywhere.
    return [
        (token[:8] if i % 2 else "") + secrets.token_hex(32)[: 64 - (8 if i % 2 else 0)]
        for i in range(n)
    ]


def _lock(address: str, token: str) -> None:
    for guess in _guesses(token, settings.AXES_FAILURE_LIMIT):
        _call(address, f"Token {guess}")


def _assert_locked_problem(response) -> None:
    assert response.status_code == 429
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == "https://gatekeeper.dev/problems/too-many-failed-logins"
    assert body["status"] == 429
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert response["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))


def test_two_hundred_bad_tokens_lock_the_address_and_the_valid_token_with_it(token, caplog):
    caplog.set_level(logging.DEBUG)
    limit = settings.AXES_FAILURE_LIMIT
    guesses = _guesses(token, 200)
    answers = [_call(ATTACKER, f"Token {guess}") for guess in guesses]

    assert [a.status_code for a in answers[: limit - 1]] == [401] * (limit - 1)
    assert all(a["WWW-Authenticate"] == "Token" for a in answers[: limit - 1])
    for answer in answers[limit - 1 :]:
        _assert_locked_problem(answer)

    _assert_locked_problem(_call(ATTACKER, f"Token {token}"))
    assert _call(NEIGHBOUR, f"Token {token}").status_code == 200

    # The admin sees who is locked out and why, but never a token.
    attempts = list(AccessAttempt.objects.all())
    assert {a.ip_address for a in attempts} == {ATTACKER}
    assert all(a.username.startswith("api-token:") for a in attempts)
    assert any(a.username == f"api-token:{token[:8]}" for a in attempts)
    stored = " ".join(
        f"{a.username} {a.get_data} {a.post_data} {a.user_agent} {a.path_info}" for a in attempts
    )
    for secret in [token, *guesses]:
        assert secret not in stored
        assert secret not in caplog.text


def test_the_admin_clears_an_api_lockout_and_the_valid_token_works_again(token):
    _lock(ATTACKER, token)
    _assert_locked_problem(_call(ATTACKER, f"Token {token}"))

    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    staff = Client()
    staff.force_login(admin)
    listed = staff.get("/admin/axes/accessattempt/")
    assert listed.status_code == 200
    assert ATTACKER.encode() in listed.content
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    confirm = staff.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert confirm.status_code == 302
    assert not AccessAttempt.objects.exists()

    assert _call(ATTACKER, f"Token {token}").status_code == 200


@pytest.mark.parametrize(
    "header", ["Token", "Token a b", "Token \x00abc", "Token \xff\xfe", "Token " + "a" * 5000]
)
def test_malformed_headers_are_still_401_and_count_as_failures(header):
    answers = [_call(ATTACKER, header) for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert {a.status_code for a in answers[:-1]} == {401}
    assert all(a["Content-Type"].startswith(PROBLEM) for a in answers[:-1])
    _assert_locked_problem(answers[-1])
    attempt = AccessAttempt.objects.get()
    assert attempt.username == "api-token:malformed"
    assert attempt.failures_since_start == settings.AXES_FAILURE_LIMIT


def test_an_expired_token_counts_as_a_failure():
    _, expired = AuthToken.objects.create(
        user=UserFactory(groups=[PMO]), expiry=dt.timedelta(seconds=-1)
    )
    assert _call(ATTACKER, f"Token {expired}").status_code == 401
    assert AccessAttempt.objects.get().username == f"api-token:{expired[:8]}"


def test_other_schemes_and_no_header_are_not_token_attempts():
    assert _call(ATTACKER, "Bearer abc").status_code == 401
    assert APIClient(REMOTE_ADDR=ATTACKER).get(URL).status_code == 401
    assert not AccessAttempt.objects.exists()


def test_passwords_and_tokens_count_against_the_same_address(token):
    admin_login = Client(REMOTE_ADDR=ATTACKER)
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_login.post("/admin/login/?next=/admin/", {"username": f"nobody{i}", "password": "x"})
    _assert_locked_problem(_call(ATTACKER, "Token " + "0" * 64))
    _assert_locked_problem(_call(ATTACKER, f"Token {token}"))
    UserFactory(username="eve", is_staff=True)
    locked = admin_login.post("/admin/login/?next=/admin/", {"username": "eve", "password": "pw"})
    assert locked.status_code == 429


def _lockout_reads(api) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert api.get(URL).status_code == 200
    return [q["sql"] for q in queries.captured_queries if "axes_" in q["sql"]]


def test_a_valid_token_asks_for_a_lockout_once_until_the_address_fails(token):
    api = APIClient(REMOTE_ADDR=NEIGHBOUR)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    cache.delete(f"api-token-address:{NEIGHBOUR}")
    first = _lockout_reads(api)
    assert len(first) == 1 and first[0].startswith("SELECT")
    assert _lockout_reads(api) == []  # "allowed" is kept in the shared cache
    assert not AccessAttempt.objects.exists()
    # One refused token from the address: the next request asks the database again, and a
    # check that read it before the failure can't put "allowed" back over the mark.
    assert _call(NEIGHBOUR, "Token " + "0" * 64).status_code == 401
    assert len(_lockout_reads(api)) == 1
    assert len(_lockout_reads(api)) == 1


def test_a_lockout_applies_on_the_next_request_after_allowed_was_kept(token):
    api = APIClient(REMOTE_ADDR=ATTACKER)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    cache.delete(f"api-token-address:{ATTACKER}")
    assert api.get(URL).status_code == 200
    assert api.get(URL).status_code == 200  # served on the kept "allowed"
    for guess in _guesses(token, settings.AXES_FAILURE_LIMIT - 1):
        assert _call(ATTACKER, f"Token {guess}").status_code == 401
    assert api.get(URL).status_code == 200  # one short of the limit
    assert _call(ATTACKER, "Token " + "0" * 64).status_code == 429
    _assert_locked_problem(api.get(URL))


def test_a_token_request_reads_no_other_tokens_and_the_purge_deletes_expired_ones(token):
    user = AuthToken.objects.get().user
    AuthToken.objects.create(user=user, expiry=dt.timedelta(seconds=-1))  # another, expired
    api = APIClient(REMOTE_ADDR=NEIGHBOUR)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    with CaptureQueriesContext(connection) as queries:
        assert api.get(URL).status_code == 200
    token_reads = [q["sql"] for q in queries.captured_queries if "knox_authtoken" in q["sql"]]
    assert len(token_reads) == 1  # the presented token (knox would also read the user's others)
    assert AuthToken.objects.filter(user=user).count() == 2
    assert api_tokens_purge_expired() == 1
    assert list(AuthToken.objects.filter(user=user).values_list("token_key", flat=True)) == [
        token[:15]
    ]
    assert BEAT_SCHEDULE["api.purge_expired_tokens"]["task"] == "api.purge_expired_tokens"


def test_an_expired_token_presented_is_refused_and_deleted():
    _, expired = AuthToken.objects.create(
        user=UserFactory(groups=[PMO]), expiry=dt.timedelta(seconds=-1)
    )
    assert _call(NEIGHBOUR, f"Token {expired}").status_code == 401
    assert not AuthToken.objects.exists()
