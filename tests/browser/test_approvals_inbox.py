"""A business owner approves a gate from the admin approvals inbox: one click plus a comment."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from django.conf import settings

from gatekeeper.types import User
from gates import services
from gates.models import Approval, ApprovalStatus, GateRole, ReviewState
from programs.roles import APPROVERS, PMO
from programs.stages import Stage
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.gates.helpers import submitted_review

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def g1_review():
    owner = UserFactory(username="fiona", is_staff=True, groups=["business-owners"])
    pmo = UserFactory(username="priya", is_staff=True, groups=[PMO, APPROVERS])
    services.gate_approver_assign(actor=None, user=pmo, role=GateRole.PMO)
    initiative = InitiativeFactory(
        business_owner=owner, delivery_lead=UserFactory(username="jonas"), name="Expense anomalies"
    )
    SuccessMetricFactory(initiative=initiative)
    return submitted_review(initiative, initiative.delivery_lead)


def _decide_in_browser(page, live_server, login, username: str, comment: str) -> None:
    login(username)
    page.goto(f"{live_server.url}/admin/gates/approvalinbox/")
    page.click("a.button:has-text('Decide')")
    page.check("input[name=decision][value=approve]")
    page.fill("textarea[name=comment]", comment)
    page.click("#content input[type=submit], #content button[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "Recorded your decision" in page.inner_text(".messagelist")


def test_both_approvers_click_approve_and_the_initiative_enters_pilot(
    live_server, page, login, g1_review
):
    _decide_in_browser(page, live_server, login, "fiona", "Owner: we run the pilot in AP")
    mine = Approval.objects.get(review=g1_review, role=GateRole.BUSINESS_OWNER)
    assert mine.status == ApprovalStatus.APPROVED
    assert mine.comment == "Owner: we run the pilot in AP"
    assert cast(User, mine.decided_by).username == "fiona"

    page.context.clear_cookies()
    _decide_in_browser(page, live_server, login, "priya", "PMO: scope and exit criteria fine")

    g1_review.refresh_from_db()
    assert g1_review.state == ReviewState.APPROVED
    g1_review.initiative.refresh_from_db()
    assert g1_review.initiative.stage == Stage.PILOT


def test_inbox_lists_only_what_the_user_may_decide(live_server, page, login, g1_review):
    UserFactory(username="outsider", is_staff=True, groups=["business-owners"])
    login("outsider")
    page.goto(f"{live_server.url}/admin/gates/approvalinbox/")
    assert g1_review.initiative.key not in page.content()
    approval = cast(Approval, Approval.objects.filter(review=g1_review).first())
    response = page.goto(f"{live_server.url}/admin/gates/approvalinbox/{approval.pk}/decide/")
    assert response.status == 404


# Screenshots of the pages a business owner sees, refreshed on every run (var/ is git-ignored).
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _approve(page, comment: str) -> str:
    page.check("input[name=decision][value=approve]")
    page.fill("textarea[name=comment]", comment)
    page.click("#content input[type=submit], #content button[type=submit]")
    page.wait_for_selector(".messagelist")
    return " ".join(page.inner_text(".messagelist").split())


def test_owner_sees_what_waits_approves_and_is_told_the_gate_waits_for_the_pmo(
    live_server, page, login, g1_review
):
    key = g1_review.initiative.key
    login("fiona")
    page.goto(f"{live_server.url}/admin/")
    box = page.inner_text("#approvals-waiting")
    assert "1 approval waits for you" in box
    _shot(page, "home")

    page.click("#approvals-waiting a.button")
    page.wait_for_selector("#result_list")
    assert key in page.inner_text("#result_list")
    _shot(page, "inbox")

    page.click("a.button:has-text('Decide')")
    page.wait_for_selector("#initiative-link")
    assert "Business owner fiona" in page.inner_text("#content")  # what the check looked at
    _shot(page, "decide")
    message = _approve(page, "Owner: we run the pilot in AP")
    assert "the G1 gate still waits for the PMO approver (1 of 2 approved)" in message
    assert "Nothing waits for your decision." in page.inner_text("#content")

    page.context.clear_cookies()
    login("priya")
    page.goto(f"{live_server.url}/admin/")
    assert "1 approval waits for you" in page.inner_text("#approvals-waiting")
    page.goto(f"{live_server.url}/admin/gates/approvalinbox/")
    page.click("a.button:has-text('Decide')")
    message = _approve(page, "PMO: scope and exit criteria fine")
    assert f"G1 approved: {key} moved to Pilot." in message
    g1_review.initiative.refresh_from_db()
    assert g1_review.initiative.stage == Stage.PILOT


def test_someone_with_nothing_to_do_sees_no_add_buttons(live_server, page, login, g1_review):
    UserFactory(username="idle", is_staff=True)
    login("idle")
    page.goto(f"{live_server.url}/admin/")
    assert "Nothing waits for your decision." in page.inner_text("#approvals-waiting")
    # Neither on the home page nor in the side navigation, nor above the lists.
    assert page.locator("div.app-gates a.addlink").count() == 0
    page.goto(f"{live_server.url}/admin/gates/gatereview/")
    assert page.locator("#content a.addlink, div.app-gates a.addlink").count() == 0
    assert "No gate review concerns you yet." in page.inner_text("#content")
    page.goto(f"{live_server.url}/admin/gates/delegation/")
    assert page.locator("#content a.addlink, div.app-gates a.addlink").count() == 0
