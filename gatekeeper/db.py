"""Model building blocks shared by the apps (a kernel module, below every app in the layering)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, models, transaction


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise TypeError(f"{self.model.__name__} records are append-only and cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError(f"{self.model.__name__} records are append-only and cannot be deleted")


class AppendOnlyModel(models.Model):
    """A history record: written once, never edited or deleted through the ORM.

    Each concrete model also gets a PostgreSQL trigger in its migrations so that raw SQL from
    the app can't rewrite history either.
    """

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError(f"{type(self).__name__} records are append-only and cannot be edited")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError(f"{type(self).__name__} records are append-only and cannot be deleted")


def create_once(model: type[models.Model], **fields: Any) -> bool:
    """Insert a row whose unique constraint says "this happened"; False if it already had.

    The savepoint keeps a duplicate from aborting the caller's transaction, so a sweep that
    races another (or repeats itself) just moves on: "once" is the database's fact.
    """
    try:
        with transaction.atomic():
            model._default_manager.create(**fields)
    except IntegrityError:
        return False
    return True
