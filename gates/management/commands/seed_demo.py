"""`seed_demo`: the demo portfolio for `make run`, with gate approvers and reviews in flight.

It lives in gates (the top of the layering) because it needs both apps: programs' loader makes
the portfolio, then this command assigns gate roles and opens reviews through the services, so
the approvals inbox, reminders and escalations have something real to show.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from gates import selectors, services
from gates.models import Approval, CriterionKind, GateRole
from programs import services as programs
from programs.demo import AWAITING_APPROVAL, DEMO_PASSWORD, PortfolioLoader
from programs.models import Initiative, MilestoneStatus


class Command(BaseCommand):
    help = "Load a demo portfolio: business units, people, initiatives in every stage, reviews."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when the database already holds initiatives (used by `make run`)",
        )
        parser.add_argument(
            "--allow-known-passwords",
            action="store_true",
            help="load even with DJANGO_DEBUG off (the demo users' passwords are public)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_known_passwords"]:
            # Every demo account, a superuser included, has the password printed below: on a
            # real deployment that is an open door, so it takes an explicit, named flag.
            raise CommandError(
                "seed_demo creates accounts with a publicly known password (a superuser "
                "included) and refuses to run with DJANGO_DEBUG off; pass "
                "--allow-known-passwords if this really is a throwaway environment."
            )
        if options["if_empty"] and Initiative.objects.exists():
            self.stdout.write("Initiatives exist; demo portfolio not loaded.")
            return
        with transaction.atomic():
            people = PortfolioLoader().load()
            self._gates(people)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo portfolio loaded: {Initiative.objects.count()} initiatives. "
                "Sign in at /admin/ as 'pmo', 'finance.owner' (has an approval waiting) or "
                f"'risk.approver' (password '{DEMO_PASSWORD}'); 'admin' is a superuser."
            )
        )

    def _gates(self, people: dict[str, Any]) -> None:
        for role, username in (
            (GateRole.BUSINESS, "sponsor"),
            (GateRole.RISK, "risk.approver"),
            (GateRole.PLATFORM, "platform.approver"),
            (GateRole.SECURITY, "security.approver"),
            (GateRole.PMO, "pmo"),
        ):
            services.gate_approver_assign(actor=None, user=people[username], role=role)

        # G1 reviews submitted a while ago whose approvals are now overdue, so the escalation
        # sweep has work the first time beat runs (AI-023 has stalled waiting on them).
        for key, owner in AWAITING_APPROVAL:
            initiative = Initiative.objects.get(key=key)
            programs.initiative_assign_owner(
                initiative=initiative, actor=None, business_owner=people[owner]
            )
            for milestone in initiative.milestones.filter(status=MilestoneStatus.OPEN):
                programs.milestone_waive(
                    milestone=milestone, actor=None, reason="Not needed before the pilot starts"
                )
            review = services.gate_review_open(initiative=initiative, actor=people["ml.lead"])
            self._attach_evidence(review, people["ml.lead"])
            services.gate_review_submit(review=review, actor=people["ml.lead"])
            past = timezone.now() - dt.timedelta(days=1)
            Approval.objects.filter(review=review).update(due_at=past, remind_at=past)

        # AI-006: a draft G1 review whose checklist shows what is still missing.
        churn = Initiative.objects.get(key="AI-006")
        services.gate_review_open(initiative=churn, actor=people["ml.lead"])

    @staticmethod
    def _attach_evidence(review: Any, actor: Any) -> None:
        for status in selectors.review_checklist(review=review):
            criterion = status.criterion
            if criterion.kind == CriterionKind.EVIDENCE and not status.evidence:
                services.evidence_attach(
                    review=review,
                    actor=actor,
                    criterion=criterion,
                    url=f"https://wiki.example.com/{review.initiative.key}/{criterion.code}",
                    note=f"{criterion.text}: see the linked page.",
                )
