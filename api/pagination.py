from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class CountedPage:
    """What a paginator pages when the page is read in another shape than the list is counted
    in: ``count()`` counts ``counted`` (the filtered scope), a slice reads ``rows`` (the same
    scope and order, with the page's columns), so the count's SQL carries none of them."""

    def __init__(self, counted: QuerySet[Any], rows: QuerySet[Any]) -> None:
        self.counted = counted
        self.rows = rows

    def count(self) -> int:
        return self.counted.count()

    def __getitem__(self, index: slice) -> list[Any]:
        return list(self.rows[index])
