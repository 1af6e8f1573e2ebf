from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from programs.roles import PMO
from tests.factories import InitiativeFactory, UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def test_anonymous_call_is_401_problem_with_token_challenge():
    response = APIClient().get("/api/v1/initiatives/")
    assert response.status_code == 401
    assert response["Content-Type"].startswith(PROBLEM)
    assert response["WWW-Authenticate"] == "Token"
    assert set(response.json()) == {"type", "title", "status", "detail", "errors"}


def test_token_is_stored_hashed_and_works(client_for):
    user = UserFactory(groups=[PMO])
    instance, token = AuthToken.objects.create(user=user)
    assert token not in (instance.digest, instance.token_key)
    assert instance.expiry is not None
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/initiatives/").status_code == 200


def test_default_token_lifetime_is_ninety_days():
    instance, _ = AuthToken.objects.create(user=UserFactory())
    assert instance.expiry - timezone.now() > dt.timedelta(days=89)


def test_expired_token_is_refused():
    user = UserFactory(groups=[PMO])
    _, token = AuthToken.objects.create(user=user, expiry=dt.timedelta(seconds=-1))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.get("/api/v1/initiatives/")
    assert response.status_code == 401


def test_a_token_is_checked_in_full_and_its_user_must_be_active():
    user = UserFactory(groups=[PMO])
    _, token = AuthToken.objects.create(user=user)
    api = APIClient()

    def answer(presented: str) -> int:
        api.credentials(HTTP_AUTHORIZATION=f"Token {presented}")
        return api.get("/api/v1/initiatives/").status_code

    # The stored key (its first 15 characters) finds the row; the rest must hash to its digest.
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert answer(forged) == 401
    assert answer(token[:15]) == 401
    # Two tokens of one user: each works, by its own digest.
    _, second = AuthToken.objects.create(user=user)
    assert (answer(token), answer(second)) == (200, 200)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert (answer(token), answer(second)) == (401, 401)


@pytest.mark.parametrize(
    "header",
    [b"Token \x00abc", b"Token \xff\xfe", b"Token a b", b"Token", "Token " + "a" * 5000],
)
def test_malformed_token_is_401_not_500(header):
    api = APIClient()
    value = header.decode("latin-1") if isinstance(header, bytes) else header
    response = api.get("/api/v1/initiatives/", HTTP_AUTHORIZATION=value)
    assert response.status_code == 401
    assert response["Content-Type"].startswith(PROBLEM)


def test_issue_api_token_prints_a_working_token_once():
    user = UserFactory(username="jira-bot", groups=[PMO])
    out = io.StringIO()
    call_command("issue_api_token", "jira-bot", stdout=out, stderr=io.StringIO())
    token = out.getvalue().strip()
    assert AuthToken.objects.filter(user=user).count() == 1
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/initiatives/").status_code == 200


def test_admin_issues_token_with_expiry_and_shows_it_once(client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    owner = UserFactory(username="svc")
    client.force_login(admin)
    add = reverse("admin:knox_authtoken_add")
    form = client.get(add)
    assert form.status_code == 200
    expiry = timezone.now() + dt.timedelta(days=30)
    response = client.post(
        add,
        {"user": owner.pk, "expiry_0": expiry.strftime("%Y-%m-%d"), "expiry_1": "12:00:00"},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    token = next(m.split()[1] for m in messages if m.startswith("TOKEN "))
    row = AuthToken.objects.get(user=owner)
    assert row.expiry is not None
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/initiatives/").status_code == 200


def test_session_auth_requires_csrf_for_writes():
    user = UserFactory(groups=[PMO])
    initiative = InitiativeFactory()
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(user)
    assert api.get("/api/v1/initiatives/").status_code == 200
    response = api.post(
        f"/api/v1/initiatives/{initiative.key}/transitions/",
        {"transition": "hold", "reason": "x"},
        format="json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.fixture
def pmo_api(client_for):
    return client_for(UserFactory(groups=[PMO]))


def test_unknown_path_is_problem_404(pmo_api):
    response = pmo_api.get("/api/v1/nope/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith(PROBLEM)


def test_wrong_method_is_problem_405(pmo_api):
    response = pmo_api.delete("/api/v1/initiatives/")
    assert response.status_code == 405
    assert response["Content-Type"].startswith(PROBLEM)
    assert "Allow" in response


def test_wrong_media_type_is_problem_415(pmo_api):
    initiative = InitiativeFactory()
    response = pmo_api.post(
        f"/api/v1/initiatives/{initiative.key}/transitions/",
        "transition=hold",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert response["Content-Type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[1, 2]",
        '"hold"',
        '{"transition": 12}',
        '{"transition": "hold", "reason": "a\\u0000b"}',
        '{"transition": "hold", "reason": ["x"]}',
        '{"transition": "hold", "reason": "' + "x" * 6000 + '"}',
        '{"transition": "hold", "expected_stage": 1e400}',
    ],
)
def test_bad_bodies_are_400_problems(pmo_api, body):
    initiative = InitiativeFactory()
    response = pmo_api.post(
        f"/api/v1/initiatives/{initiative.key}/transitions/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "query",
    [
        "owner=99999999999999999999999",
        "owner=a%00b",
        "business_unit=%00",
        "external_ref=JIRA",
        "updated_since=not-a-date",
        "updated_since=9999-12-31T23:59:59-12:00",
        "stage=nowhere",
        "limit=99999999999999999999&offset=99999999999999999999",
        "ordering=nonsense",
    ],
)
def test_odd_query_strings_never_500(pmo_api, query):
    InitiativeFactory()
    response = pmo_api.get(f"/api/v1/initiatives/?{query}")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response["Content-Type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/initiatives/AI%00X/",
        "/api/v1/metrics/99999999999999999999999/",
        "/api/v1/milestones/abc/",
        "/api/v1/approvals/-1/",
    ],
)
def test_odd_lookups_are_problem_404(pmo_api, path):
    response = pmo_api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith(PROBLEM)


def test_schema_and_docs_are_served_without_a_cdn(client):
    client.force_login(UserFactory())
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn.jsdelivr" not in html and "unpkg" not in html
    assert client.get("/api/redoc/").status_code == 200
