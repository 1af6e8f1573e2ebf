from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from programs.models import BusinessUnit, Initiative, Milestone, SuccessMetric


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            for name in extracted:
                self.groups.add(Group.objects.get_or_create(name=name)[0])


class BusinessUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessUnit
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"bu{n}")
    name = factory.LazyAttribute(lambda b: f"Business unit {b.code}")


class InitiativeFactory(factory.django.DjangoModelFactory):
    """Creates rows directly (tests set up state); behaviour under test goes through services."""

    class Meta:
        model = Initiative
        skip_postgeneration_save = True

    key = factory.Sequence(lambda n: f"AI-T{n:04d}")
    name = factory.Sequence(lambda n: f"Initiative {n}")
    business_unit = factory.SubFactory(BusinessUnitFactory)
    business_owner = factory.SubFactory(UserFactory, groups=["business-owners"])
    sponsor = factory.SubFactory(UserFactory)
    target_workflow = "Claims triage: adjusters review model suggestions"
    stage_entered_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def owner_in_business_unit(self, create, extracted, **kwargs):
        if create and self.business_owner_id:
            self.business_unit.members.add(self.business_owner)


class SuccessMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuccessMetric

    initiative = factory.SubFactory(InitiativeFactory)
    name = factory.Sequence(lambda n: f"Metric {n}")
    unit = "%"
    baseline = Decimal("40")
    target = Decimal("60")


class MilestoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Milestone

    initiative = factory.SubFactory(InitiativeFactory)
    stage = factory.LazyAttribute(lambda m: m.initiative.stage)
    title = factory.Sequence(lambda n: f"Milestone {n}")
    owner = factory.SubFactory(UserFactory)
    due_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=7))
    next_alert_at = factory.LazyAttribute(lambda m: m.due_at)
