"""The admin as a busy business owner reads it: what waits on the home page, deadlines in words,
the facts behind each criterion, what happens after a decision, and no button they may not use."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from gates import services
from gates.models import Approval, ApprovalStatus, Gate
from tests.factories import (
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)
from tests.gates.helpers import approve_all, submitted_review

pytestmark = pytest.mark.django_db

HOME = reverse("admin:index")
INBOX = reverse("admin:gates_approvalinbox_changelist")
REVIEWS = reverse("admin:gates_gatereview_changelist")
DELEGATIONS = reverse("admin:gates_delegation_changelist")


def _staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def _text(response) -> str:
    """The page's visible words, tags dropped and whitespace squeezed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _overdue(approval: Approval, days: int) -> None:
    # Due at noon, ``days`` calendar days ago: the inbox counts overdue days by date, so a
    # deadline a fixed number of hours back reads one day more just after midnight.
    day = timezone.localdate() - dt.timedelta(days=days)
    due_at = dt.datetime.combine(day, dt.time(12), tzinfo=timezone.get_current_timezone())
    Approval.objects.filter(pk=approval.pk).update(due_at=due_at)


@pytest.fixture
def review(initiative):
    return submitted_review(initiative, initiative.delivery_lead)


@pytest.fixture
def nobody(db):
    """A staff member with nothing to do: no initiative, no approval, no group."""
    return UserFactory(username="idle.staff", is_staff=True)


# --- the admin home ---------------------------------------------------------------------------


def test_home_tells_an_owner_how_many_approvals_wait(client, review, initiative):
    client.force_login(_staff(initiative.business_owner))
    response = client.get(HOME)
    text = _text(response)
    assert "1 approval waits for you" in text
    assert "overdue" not in text
    assert f'href="{INBOX}"' in response.content.decode()


def test_home_counts_the_overdue_ones(client, initiative, panel):
    first = submitted_review(initiative, initiative.delivery_lead)
    other = InitiativeFactory(delivery_lead=UserFactory())
    SuccessMetricFactory(initiative=other)
    submitted_review(other, other.delivery_lead)
    _overdue(first.approvals.get(role="pmo"), days=2)
    client.force_login(_staff(panel.pmo))
    assert "2 approvals wait for you (1 overdue)" in _text(client.get(HOME))


def test_home_says_when_nothing_waits(client, nobody):
    client.force_login(nobody)
    text = _text(client.get(HOME))
    assert "Nothing waits for your decision." in text
    assert "wait for you" not in text


# --- the inbox ------------------------------------------------------------------------------


def test_inbox_shows_overdue_in_red_and_lists_it_first(client, initiative, panel):
    on_time = submitted_review(initiative, initiative.delivery_lead)
    late_initiative = InitiativeFactory(delivery_lead=UserFactory(), name="Late one")
    SuccessMetricFactory(initiative=late_initiative)
    late = submitted_review(late_initiative, late_initiative.delivery_lead)
    _overdue(late.approvals.get(role="pmo"), days=3)
    client.force_login(_staff(panel.pmo))
    response = client.get(INBOX)
    html = response.content.decode()
    assert 'class="overdue"' in html and "overdue by 3 days" in html
    assert 'alt="False"' not in html and 'alt="True"' not in html  # no boolean icons
    assert html.index(late_initiative.key) < html.index(on_time.initiative.key)
    assert "due in" in _text(response)


def test_decided_by_me_lists_what_the_user_decided(client, review, initiative):
    owner = _staff(initiative.business_owner)
    approval = review.approvals.get(role="business_owner")
    services.approval_decide(approval=approval, actor=owner, decision="approve", comment="ok")
    client.force_login(owner)
    waiting = client.get(INBOX)
    assert initiative.key not in waiting.content.decode()
    assert "Decided by me" in _text(waiting)
    decided = client.get(INBOX, {"view": "decided"})
    text = _text(decided)
    assert initiative.key in text and "Approved" in text
    assert "Decide" not in re.sub(r"Decided", "", text)  # nothing to decide in this view


def test_empty_inbox_says_nothing_waits(client, nobody):
    client.force_login(nobody)
    text = _text(client.get(INBOX))
    assert "Nothing waits for your decision." in text
    assert "You have not decided any approval yet." in _text(client.get(INBOX, {"view": "decided"}))


# --- the decide page -----------------------------------------------------------------------


def test_decide_page_links_the_initiative_and_shows_what_each_check_looked_at(
    client, review, initiative
):
    owner = _staff(initiative.business_owner)
    owner.first_name, owner.last_name = "Fiona", "Meyer"
    owner.save()
    metric = initiative.metrics.get()
    MilestoneFactory(initiative=initiative, title="Sign data agreement")
    client.force_login(owner)
    approval = review.approvals.get(role="business_owner")
    response = client.get(reverse("admin:gates_approvalinbox_decide", args=[approval.pk]))
    html = response.content.decode()
    text = _text(response)
    assert reverse("admin:programs_initiative_change", args=[initiative.pk]) in html
    assert f"{metric.name}: 40 % → 60 %" in text
    unit = initiative.business_unit
    assert f"Business owner Fiona Meyer; business unit {unit.name} ({unit.code})" in text
    assert f"Target workflow: {initiative.target_workflow}" in text


def test_milestone_details_list_the_open_ones(initiative):
    from gates.criteria import describe_check

    MilestoneFactory(initiative=initiative, title="Sign data agreement")
    lines = describe_check("stage_milestones_closed", initiative)
    assert len(lines) == 1 and lines[0].startswith("Open: Sign data agreement (due ")
    assert describe_check("no_open_gate_conditions", initiative) == ["No gate condition is open"]


def test_after_a_decision_the_message_says_what_happens_next(client, review, initiative, panel):
    owner = _staff(initiative.business_owner)
    client.force_login(owner)
    mine = review.approvals.get(role="business_owner")
    response = client.post(
        reverse("admin:gates_approvalinbox_decide", args=[mine.pk]),
        {"decision": "approve", "comment": "Fine", "outcome": ""},
        follow=True,
    )
    total = review.approvals.count()
    assert (
        f"Recorded your decision; the G1 gate still waits for the PMO approver (1 of {total} "
        "approved)." in _text(response)
    )

    client.force_login(_staff(panel.pmo))
    pmo = review.approvals.get(role="pmo")
    response = client.post(
        reverse("admin:gates_approvalinbox_decide", args=[pmo.pk]),
        {"decision": "approve", "comment": "Fine", "outcome": ""},
        follow=True,
    )
    assert f"G1 approved: {initiative.key} moved to Pilot." in _text(response)


def test_a_rejection_says_where_the_initiative_is_now(client, review, initiative, panel):
    client.force_login(_staff(panel.pmo))
    pmo = review.approvals.get(role="pmo")
    response = client.post(
        reverse("admin:gates_approvalinbox_decide", args=[pmo.pk]),
        {"decision": "reject", "comment": "No budget", "outcome": "kill"},
        follow=True,
    )
    assert f"G1 rejected (Kill): {initiative.key} is now Cancelled." in _text(response)


# --- the evidence pack page --------------------------------------------------------------------


def test_evidence_pack_page_shows_names_labels_and_local_times(
    client, settings, review, initiative, panel
):
    settings.TIME_ZONE = "Europe/Berlin"
    panel.pmo.first_name, panel.pmo.last_name = "Priya", "Shah"
    panel.pmo.save()
    approve_all(review, panel)
    review.refresh_from_db()
    client.force_login(panel.pmo)
    response = client.get(reverse("gates:evidence-pack-html", args=[review.pk]))
    text = _text(response)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text)  # no ISO strings
    decided = timezone.localtime(review.decided_at, timezone=dt.UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Berlin")
    )
    assert f"{decided:%H:%M} CE" in text  # CET or CEST, the site's zone
    assert "Priya Shah" in text
    assert "Business owner" in text and "business_owner" not in text
    assert initiative.business_unit.name in text
    # The JSON export keeps codes and ISO strings.
    pack = client.get(reverse("gates:evidence-pack-json", args=[review.pk])).json()
    assert pack["approvals"][0]["role"] == "business_owner"
    assert "T" in pack["review"]["decided_at"]


# --- what each role is offered -----------------------------------------------------------------


def test_someone_with_nothing_to_do_sees_no_add_buttons_or_actions(client, nobody, review):
    client.force_login(nobody)
    home = client.get(HOME).content.decode()
    gates_section = home[home.index('id="app-gates"') if 'id="app-gates"' in home else 0 :]
    gates_section = gates_section[: gates_section.find("</table>")]
    assert "addlink" not in gates_section
    reviews = client.get(REVIEWS)
    assert reviews.status_code == 200
    assert "No gate review concerns you yet." in _text(reviews)
    assert reverse("admin:gates_gatereview_add") not in reviews.content.decode()
    assert reviews.context["cl"].model_admin.get_actions(reviews.wsgi_request) == {}
    assert client.get(reverse("admin:gates_gatereview_add")).status_code == 403
    delegations = client.get(DELEGATIONS)
    assert reverse("admin:gates_delegation_add") not in delegations.content.decode()
    assert "No delegation names you." in _text(delegations)


def test_the_initiatives_people_may_open_and_submit_reviews(client, initiative):
    lead = _staff(initiative.delivery_lead)
    client.force_login(lead)
    response = client.get(REVIEWS)
    assert reverse("admin:gates_gatereview_add") in response.content.decode()
    actions = response.context["cl"].model_admin.get_actions(response.wsgi_request)
    assert "submit_reviews" in actions
    form = client.get(reverse("admin:gates_gatereview_add")).context["adminform"].form
    assert list(form.fields["initiative"].queryset) == [initiative]


def test_an_approver_may_delegate_and_revoke_only_their_own(client, panel, nobody):
    approver = _staff(panel.risk)
    client.force_login(approver)
    response = client.get(DELEGATIONS)
    assert reverse("admin:gates_delegation_add") in response.content.decode()
    admin_ = response.context["cl"].model_admin
    assert "revoke" not in admin_.get_actions(response.wsgi_request)  # nothing of theirs yet
    services.delegation_create(
        actor=None,
        principal=approver,
        deputy=nobody,
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate(),
    )
    response = client.get(DELEGATIONS)
    assert "revoke" in admin_.get_actions(response.wsgi_request)
    client.force_login(nobody)  # the deputy sees it but may not revoke it
    response = client.get(DELEGATIONS)
    assert approver.username in response.content.decode()
    assert "revoke" not in admin_.get_actions(response.wsgi_request)


def _gate_filter(response):
    return next(
        (f for f in response.context["cl"].filter_specs if getattr(f, "field_path", "") == "gate"),
        None,
    )


def test_review_filters_list_only_gates_the_user_can_see(client, initiative, panel):
    from tests.gates.helpers import pass_gate

    other = InitiativeFactory(delivery_lead=UserFactory())
    SuccessMetricFactory(initiative=other)
    pass_gate(other, panel)
    submitted_review(other, other.delivery_lead)  # a G2 review the first owner never sees
    submitted_review(initiative, initiative.delivery_lead)

    client.force_login(_staff(panel.pmo))
    listed = [label for _, label in _gate_filter(client.get(REVIEWS)).lookup_choices]
    assert sorted(listed) == sorted(str(g) for g in Gate.objects.filter(code__in=["G1", "G2"]))

    client.force_login(_staff(initiative.business_owner))
    # One gate among their reviews: nothing to filter by, so no filter (never G2's).
    assert _gate_filter(client.get(REVIEWS)) is None


def test_pending_approvals_are_not_in_decided_view(client, review, panel):
    client.force_login(_staff(panel.pmo))
    assert review.initiative.key not in client.get(INBOX, {"view": "decided"}).content.decode()
    assert Approval.objects.filter(review=review, status=ApprovalStatus.PENDING).count() == 2
