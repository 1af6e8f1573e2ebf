from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class CountedPage:
    """What a paginator pages when the page is read in another shape than the list is counted
    in: ``count()`` counts ``counted`` (the filtered scope), a slice is read by ``read(index)``
    (the same scope and order, with the page's columns), so the count's SQL carries none of
    them."""

    def __init__(self, counted: QuerySet[Any], read: Callable[[slice], list[Any]]) -> None:
        self.counted = counted
        self.read = read

    def count(self) -> int:
        return self.counted.count()

    def __getitem__(self, index: slice) -> list[Any]:
        return self.read(index)
