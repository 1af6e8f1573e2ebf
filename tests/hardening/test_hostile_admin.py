"""Hostile input against every admin page: no input may produce a 5xx, and a refused post
changes nothing.

Every registered ModelAdmin is visited as each role (superuser, PMO, business owner, approver):
its changelist with each filter parameter, the date hierarchy and the search box given hostile
values, and its add and change forms posted with a browser's own form data in which one field at
a time (as the superuser, who sees every field) or every field at once (as the other roles)
is replaced by a hostile value.
"""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db import models, transaction
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from gates import services as gates_services
from gates.models import Delegation
from integrations.models import InboundDelivery, Integration, TicketState
from notifications.models import WebhookEndpoint
from programs.models import ExternalReference
from tests.factories import InitiativeFactory, MilestoneFactory, UserFactory
from tests.gates.helpers import submitted_review

pytestmark = pytest.mark.django_db

LONG = "x" * 10_000
NUL = "a\x00b"
CONTROL = "a\r\n\x07b"  # CR, LF and BEL in one value
HUGE = str(2**63)
TEXTS = [LONG, NUL, CONTROL]
NUMBERS = [HUGE, "-1e30", "abc", "2147483647"]
DATES = ["0001-01-01", "9999-12-31"]
# For filter parameters, whose type the page does not say.
ANY = [LONG, NUL, HUGE, "abc", "-1", *DATES]
# The other roles see the same pages through narrower querysets: fewer values keep it quick.
FEW = [LONG, HUGE, "9999-12-31"]
CONTROL_TEXTS = {NUL, CONTROL}


# --- the world ------------------------------------------------------------------------------


@pytest.fixture
def world(panel, initiative) -> dict[str, Any]:
    """One row of (nearly) every admin's model, made the way the product makes them."""
    review = submitted_review(initiative, initiative.delivery_lead)
    MilestoneFactory(initiative=initiative, owner=initiative.business_owner)
    ExternalReference.objects.create(initiative=initiative, system="jira", key="AIOPS-1")
    today = timezone.localdate()
    gates_services.delegation_create(
        actor=None, principal=panel.risk, deputy=panel.platform, starts_on=today, ends_on=today
    )
    WebhookEndpoint.objects.create(name="Ops", url="https://hooks.example.com/in")
    integration = Integration.objects.create(
        name="Jira", slug="jira", kind="jira", service_user=panel.bot
    )
    initiative.business_unit.members.add(panel.bot)  # the integration's scope
    InboundDelivery.objects.create(integration=integration, delivery_id="d-1", body={"a": 1})
    TicketState.objects.create(integration=integration, issue_key="AIOPS-1", last_event_ts=1)
    owner = initiative.business_owner
    for user in (owner, panel.risk, panel.pmo):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return {
        "superuser": UserFactory(username="root", is_staff=True, is_superuser=True),
        "pmo": panel.pmo,
        "business_owner": owner,
        "approver": panel.risk,
        "review": review,
    }


# --- reading a page as a browser would ---------------------------------------------------------


class _FormFields(HTMLParser):
    """The name/value pairs a browser would submit from the page's main form."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[tuple[str, str]] = []
        self._select: tuple[str, bool] | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._textarea: str | None = None
        self._text: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            # The page's own form, not the header's log-out button.
            self._in_form = a.get("method", "").lower() == "post" and a.get("id") != "logout-form"
        if not self._in_form or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = (name, "multiple" in a)
            self._select_first, self._select_chosen = None, False
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.data.append((self._select[0], value))
                self._select_chosen = True
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select" and self._select:
            name, multiple = self._select
            if not multiple and not self._select_chosen and self._select_first is not None:
                self.data.append((name, self._select_first))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data.append((self._textarea, "".join(self._text).lstrip("\n")))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text.append(data)


def _form_data(html: str) -> list[tuple[str, str]]:
    parser = _FormFields()
    parser.feed(html)
    return parser.data


def _post_body(data: list[tuple[str, str]]) -> dict[str, list[str]]:
    body: dict[str, list[str]] = {}
    for name, value in data:
        body.setdefault(name, []).append(value)
    return body


def _hostile_values(field: forms.Field) -> list[str]:
    if isinstance(field, forms.SplitDateTimeField | forms.DateTimeField | forms.DateField):
        return DATES
    if isinstance(field, forms.IntegerField | forms.DecimalField | forms.FloatField):
        return NUMBERS
    if isinstance(field, forms.ModelChoiceField | forms.ChoiceField):
        return ["abc", HUGE]
    if isinstance(field, forms.URLField):
        # 501 to 2048 characters once crashed the evidence form; 10k is past any limit.
        return ["https://example.com/" + "a" * 600, "https://example.com/" + LONG, CONTROL]
    if isinstance(field, forms.JSONField):
        return ['["a\\u0000"]', "1e999"]
    if isinstance(field, forms.BooleanField):
        return []
    return TEXTS


def _html_names(name: str, field: forms.Field) -> list[str]:
    if isinstance(field, forms.SplitDateTimeField):
        return [f"{name}_0", f"{name}_1"]
    return [name]


OUR_APPS = {"programs", "gates", "notifications", "integrations"}


def _is_single_line(model: type[models.Model], name: str) -> bool:
    """A one-line text field of ours (third-party models keep their own rules)."""
    if model._meta.app_label not in OUR_APPS:
        return False
    try:
        field = model._meta.get_field(name)
    except Exception:
        return False
    return isinstance(field, models.CharField) and not field.choices


# --- asking ------------------------------------------------------------------------------------


class Probe:
    def __init__(self, user: Any) -> None:
        self.client = Client()
        self.client.force_login(user)
        self.failures: list[str] = []

    def request(self, method: str, url: str, data: Any = None) -> Any:
        # A savepoint per request: a database error in a view that is not atomic must not poison
        # the test's transaction for every request after it.
        try:
            with transaction.atomic():
                response = getattr(self.client, method)(url, data or {})
        except Exception as exc:  # the test client re-raises what the view raised: a 500
            self.failures.append(f"{method.upper()} {url[:200]} {_short(data)}: {exc!r}"[:600])
            return None
        if response.status_code >= 500:
            self.failures.append(f"{method.upper()} {url[:200]}: {response.status_code}")
            return None
        return response


def _short(data: Any) -> str:
    if not data:
        return ""
    return repr({k: (v if len(repr(v)) < 60 else repr(v)[:60] + "…") for k, v in data.items()})


def _snapshot(model: type[models.Model]) -> list[dict[str, Any]]:
    return list(model._default_manager.order_by("pk").values())


def _changelist(
    probe: Probe, model: type[models.Model], model_admin: admin.ModelAdmin, *, values: list[str]
) -> None:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    response = probe.request("get", url)
    if response is None or response.status_code != 200 or "cl" not in (response.context or {}):
        return
    cl: ChangeList = response.context["cl"]
    params: set[str] = set()
    for spec in cl.filter_specs:
        params.update(p for p in spec.expected_parameters() if p is not None)
    queries: list[dict[str, str]] = []
    for param in sorted(params):
        queries += [{param: v} for v in values]
    if model_admin.search_fields:
        queries += [{"q": v} for v in [*TEXTS, "%'\"\\"]]
    if model_admin.date_hierarchy:
        field = model_admin.date_hierarchy
        for year in ("1", "9999", HUGE):
            queries.append({f"{field}__year": year})
        queries += [
            {f"{field}__year": "9999", f"{field}__month": "12"},
            {f"{field}__year": "9999", f"{field}__month": "12", f"{field}__day": "31"},
            {f"{field}__year": "1", f"{field}__month": "1", f"{field}__day": "1"},
            {f"{field}__year": "2026", f"{field}__month": "13"},
            {f"{field}__gte": "9999-12-31 23:59:59"},
            {f"{field}__lt": "0001-01-01 00:00:00"},
        ]
    queries += [{"o": "999.-1"}, {"p": HUGE}, {"_to_field": "password"}]
    for query in queries:
        probe.request("get", url, query)


def _admin_urls(model: type[models.Model], obj: Any) -> list[str]:
    opts = model._meta
    urls = []
    try:
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        if obj is not None:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    except NoReverseMatch:
        pass
    return urls


def _forms(probe: Probe, model: type[models.Model], *, one_field_at_a_time: bool) -> None:
    obj = model._default_manager.order_by("pk").first()
    for url in _admin_urls(model, obj):
        response = probe.request("get", url)
        if response is None or response.status_code != 200:
            continue
        adminform = (response.context or {}).get("adminform")
        if adminform is None:
            continue
        form = adminform.form
        editable = {
            name: field
            for name, field in form.fields.items()
            if not field.disabled and _hostile_values(field)
        }
        if not editable:
            continue
        baseline = _post_body(_form_data(response.content.decode()))
        trials: list[tuple[dict[str, list[str]], set[str]]] = []
        if one_field_at_a_time:
            for name, field in editable.items():
                for value in _hostile_values(field):
                    body = dict(baseline)
                    for html_name in _html_names(name, field):
                        body[html_name] = [value]
                    trials.append((body, {name} if value in CONTROL_TEXTS else set()))
        else:
            for value in [*TEXTS, *NUMBERS, *DATES]:
                body = dict(baseline)
                for name, field in editable.items():
                    for html_name in _html_names(name, field):
                        body[html_name] = [value]
                trials.append((body, set(editable) if value in CONTROL_TEXTS else set()))
        for body, controlled in trials:
            before = _snapshot(model)
            response = probe.request("post", url, body)
            if response is None:
                continue
            if response.status_code == 302:
                accepted = [n for n in controlled if _is_single_line(model, n)]
                if accepted:
                    probe.failures.append(f"POST {url} accepted control characters in {accepted}")
            elif _snapshot(model) != before:
                probe.failures.append(
                    f"POST {url} was refused ({response.status_code}) but changed rows"
                )


ROLES = ["superuser", "pmo", "business_owner", "approver"]


# The probe sends bare dates and times on purpose; Django reads them in the current time zone
# and warns that they came without one, which is the answer, not a defect of the page.
@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime:RuntimeWarning")
@pytest.mark.parametrize("role", ROLES)
def test_no_admin_changelist_query_is_a_server_error(world, role):
    probe = Probe(world[role])
    for model, model_admin in list(admin.site._registry.items()):
        _changelist(probe, model, model_admin, values=ANY if role == "superuser" else FEW)
    assert not probe.failures, "\n".join(probe.failures)


@pytest.mark.parametrize("role", ROLES)
def test_no_admin_form_post_is_a_server_error_and_a_refusal_changes_nothing(world, role):
    probe = Probe(world[role])
    for model in list(admin.site._registry):
        _forms(probe, model, one_field_at_a_time=role == "superuser")
    assert not probe.failures, "\n".join(probe.failures)


def test_the_evidence_form_takes_what_a_browser_calls_a_url_and_refuses_the_rest(world):
    """An evidence URL of 501-2048 characters once reached the database past the form (500)."""
    other = InitiativeFactory(delivery_lead=UserFactory())
    review = gates_services.gate_review_open(initiative=other, actor=other.delivery_lead)
    probe = Probe(world["superuser"])
    url = reverse("admin:gates_gatereview_attach", args=[review.pk])
    page = probe.request("get", url)
    assert page is not None and page.status_code == 200
    criterion = next(v for n, v in _form_data(page.content.decode()) if n == "criterion")
    for link in ["https://example.com/" + "a" * n for n in (480, 600, 2000, 2100, 10_000)]:
        probe.request("post", url, {"criterion": criterion, "url": link, "note": ""})
    for note in (NUL, LONG):
        probe.request("post", url, {"criterion": criterion, "url": "", "note": note})
    assert not probe.failures, "\n".join(probe.failures)
    stored = sorted(len(e.url) for e in review.evidence.filter(url__startswith="https://example"))
    assert stored == [500, 620, 2020]  # 2100+ is refused on the form, not by the database


@pytest.mark.parametrize("query", [{"stage__exact": "\x00"}, {"q": "\x00"}])
def test_nul_in_a_changelist_query_is_a_400(world, query):
    client = Client()
    client.force_login(world["superuser"])
    response = client.get(reverse("admin:programs_initiative_changelist"), query)
    assert response.status_code == 400


@pytest.mark.parametrize("month", ["", "12"])
def test_a_date_hierarchy_at_the_end_of_the_calendar_is_a_400(world, month):
    client = Client()
    client.force_login(world["superuser"])
    query = {"created_at__year": "9999", **({"created_at__month": month} if month else {})}
    response = client.get(reverse("admin:notifications_event_changelist"), query)
    assert response.status_code == 400


def test_nul_in_a_json_body_is_a_400(world):
    client = Client()
    client.force_login(world["superuser"])
    response = client.post(
        "/api/v1/initiatives/", '{"name": "a\\u0000b"}', content_type="application/json"
    )
    assert response.status_code == 400


def test_absurd_delegations_are_refused(world):
    from gatekeeper.errors import ValidationFailed

    principal, deputy = world["approver"], world["pmo"]
    today = timezone.localdate()
    absurd = [
        (dt.date(1, 1, 1), dt.date(9999, 12, 31)),
        (dt.date(2001, 1, 1), dt.date(2001, 1, 2)),
        (today - dt.timedelta(days=3), today - dt.timedelta(days=1)),
        (today + dt.timedelta(days=400), today + dt.timedelta(days=401)),
    ]
    before = Delegation.objects.count()
    for starts_on, ends_on in absurd:
        with pytest.raises(ValidationFailed):
            gates_services.delegation_create(
                actor=None, principal=principal, deputy=deputy, starts_on=starts_on, ends_on=ends_on
            )
    assert Delegation.objects.count() == before
