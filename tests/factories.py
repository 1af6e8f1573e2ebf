from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Model
from django.utils import timezone

from gatekeeper.types import User
from programs.models import BusinessUnit, Initiative, Milestone, SuccessMetric

M = TypeVar("M", bound=Model)


class ModelFactory(Protocol[M]):
    """What tests use of a factory: calling it returns a saved row of its model."""

    def __call__(self, **kwargs: Any) -> M: ...
    def create(self, **kwargs: Any) -> M: ...
    def build(self, **kwargs: Any) -> M: ...
    def create_batch(self, size: int, **kwargs: Any) -> list[M]: ...


def typed(factory_class: type[factory.django.DjangoModelFactory[M]]) -> ModelFactory[M]:
    # factory_boy's metaclass turns ``SomeFactory(...)`` into ``SomeFactory.create(...)``, which
    # mypy cannot see (it types the call as an instance of the factory class). The same class is
    # returned, only typed by what the call really gives back.
    return cast("ModelFactory[M]", factory_class)


def _add_groups(user: User, create: bool, extracted: Iterable[str] | None, **kwargs: Any) -> None:
    if create and extracted:
        for name in extracted:
            user.groups.add(Group.objects.get_or_create(name=name)[0])


class _UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")
    groups = factory.PostGeneration(_add_groups)


class _BusinessUnitFactory(factory.django.DjangoModelFactory[BusinessUnit]):
    class Meta:
        model = BusinessUnit
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"bu{n}")
    name = factory.LazyAttribute(lambda b: f"Business unit {b.code}")


def _owner_in_business_unit(
    initiative: Initiative, create: bool, extracted: Any, **kwargs: Any
) -> None:
    if create and initiative.business_owner is not None:
        initiative.business_unit.members.add(initiative.business_owner)


class _InitiativeFactory(factory.django.DjangoModelFactory[Initiative]):
    """Creates rows directly (tests set up state); behaviour under test goes through services."""

    class Meta:
        model = Initiative
        skip_postgeneration_save = True

    key = factory.Sequence(lambda n: f"AI-T{n:04d}")
    name = factory.Sequence(lambda n: f"Initiative {n}")
    business_unit = factory.SubFactory(_BusinessUnitFactory)
    business_owner = factory.SubFactory(_UserFactory, groups=["business-owners"])
    sponsor = factory.SubFactory(_UserFactory)
    target_workflow = "Claims triage: adjusters review model suggestions"
    stage_entered_at = factory.LazyFunction(timezone.now)
    owner_in_business_unit = factory.PostGeneration(_owner_in_business_unit)


class _SuccessMetricFactory(factory.django.DjangoModelFactory[SuccessMetric]):
    class Meta:
        model = SuccessMetric

    initiative = factory.SubFactory(_InitiativeFactory)
    name = factory.Sequence(lambda n: f"Metric {n}")
    unit = "%"
    baseline = Decimal("40")
    target = Decimal("60")


class _MilestoneFactory(factory.django.DjangoModelFactory[Milestone]):
    class Meta:
        model = Milestone

    initiative = factory.SubFactory(_InitiativeFactory)
    stage = factory.LazyAttribute(lambda m: m.initiative.stage)
    title = factory.Sequence(lambda n: f"Milestone {n}")
    owner = factory.SubFactory(_UserFactory)
    due_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=7))
    next_alert_at = factory.LazyAttribute(lambda m: m.due_at)


UserFactory = typed(_UserFactory)
BusinessUnitFactory = typed(_BusinessUnitFactory)
InitiativeFactory = typed(_InitiativeFactory)
SuccessMetricFactory = typed(_SuccessMetricFactory)
MilestoneFactory = typed(_MilestoneFactory)
