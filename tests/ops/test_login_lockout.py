"""Brute force on the admin login: wrong passwords lock the username and the address out."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def _attempt(client: Client, username: str, password: str, **extra: Any):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def _signed_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def test_wrong_passwords_lock_the_user_out_even_with_the_right_password_after():
    UserFactory(username="alice", is_staff=True)
    client = Client()
    answers = [_attempt(client, "alice", f"guess{i}").status_code for i in range(30)]
    limit = settings.AXES_FAILURE_LIMIT
    assert answers[: limit - 1] == [200] * (limit - 1)  # the login form with its error
    assert set(answers[limit:]) == {429}

    locked = _attempt(Client(REMOTE_ADDR="10.9.9.9"), "alice", "pw")
    assert locked.status_code == 429
    assert b"Sign-in temporarily locked" in locked.content
    assert not _signed_in(client)


def test_one_address_guessing_many_usernames_is_locked_out():
    UserFactory(username="bob", is_staff=True)
    client = Client(REMOTE_ADDR="203.0.113.7")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, f"nobody{i}", "x")
    assert _attempt(client, "bob", "pw").status_code == 429
    # Another address is not affected.
    other = Client(REMOTE_ADDR="203.0.113.8")
    assert _attempt(other, "bob", "pw").status_code == 302


def test_a_forged_forwarded_for_header_does_not_buy_fresh_guesses():
    UserFactory(username="carol", is_staff=True)
    client = Client(REMOTE_ADDR="203.0.113.9")
    for i in range(settings.AXES_FAILURE_LIMIT + 5):
        _attempt(client, f"spray{i}", "x", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    assert _attempt(client, "carol", "pw", HTTP_X_FORWARDED_FOR="198.51.100.250").status_code == 429


def test_an_admin_clears_a_lockout_in_the_admin_and_the_user_signs_in():
    UserFactory(username="dave", is_staff=True)
    for i in range(settings.AXES_FAILURE_LIMIT):
        _attempt(Client(), "dave", f"bad{i}")
    assert _attempt(Client(), "dave", "pw").status_code == 429

    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    staff = Client()
    staff.force_login(admin)
    listed = staff.get("/admin/axes/accessattempt/")
    assert listed.status_code == 200
    assert b"dave" in listed.content
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    confirm = staff.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert confirm.status_code == 302
    assert not AccessAttempt.objects.exists()

    client = Client()
    assert _attempt(client, "dave", "pw").status_code == 302
    assert _signed_in(client)
