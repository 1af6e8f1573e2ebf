"""The reads bench's bare endpoint, served only by the bench URLconf.

``RawInitiativeListView`` is what a Django developer would serve the list with if they skipped
everything Gatekeeper does on top of the framework: the API's authentication and permission
classes (the same session or token, the same 401/403), then the bench's hand-written list SQL,
its rows returned as the driver gives them (each a JSON array). No scope (every caller sees
every row), no filter or ordering parameters, no throttle, no representation of the values.
Timed next to the real list, it shows how much of the list's time is the framework's own
per-request floor.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class RawInitiativeListView(APIView):
    throttle_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        from bench.reads import RAW_LIST

        count_sql, page_sql = RAW_LIST
        with connection.cursor() as cursor:
            cursor.execute(count_sql)
            (count,) = cursor.fetchone()
            cursor.execute(page_sql)
            rows = cursor.fetchall()
        return Response({"count": count, "results": rows})
