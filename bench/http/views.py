"""Two bare endpoints for comparison, served only by the bench URLconf.

``SameWritesView`` makes the row writes a deciding approval makes (approval, review, two review
log rows, the initiative's stage and its transition record, three outbox events with their
deliveries) in raw SQL, in one transaction, with no authentication, permission, throttle, lock
order, quorum or state checks and no reads beyond locking the initiative row to toggle its stage.
``OneRowView`` updates one row. Both are what the guarantees are measured against.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# A deciding G1 approval writes 6, 6 and 8 deliveries for its three events (measured).
DELIVERIES_PER_EVENT = (6, 6, 8)


class _Bare(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []


def _event(cursor: Any, kind: str, key: str, payload: dict[str, Any], users: list[int]) -> None:
    now = timezone.now()
    cursor.execute(
        "INSERT INTO notifications_event (type, key, payload, created_at) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        [kind, key, json.dumps(payload), now],
    )
    event_id = cursor.fetchone()[0]
    rows: list[Any] = []
    for user in users:
        for channel in ("email", "in_app"):
            rows += [
                event_id,
                channel,
                user,
                f"user{user}@example.com" if channel == "email" else "",
                None,
                uuid.uuid4(),
                "pending",
                0,
                now,
                None,
                None,
                "",
                None,
                None,
                now,
                now,
            ]
    placeholders = ", ".join(["(" + ", ".join(["%s"] * 16) + ")"] * (len(rows) // 16))
    cursor.execute(
        "INSERT INTO notifications_delivery (event_id, channel, recipient_user_id, "
        "recipient_email, endpoint_id, uuid, status, attempts, next_attempt_at, claimed_at, "
        "claim_token, last_error, last_status_code, delivered_at, created_at, updated_at) "
        f"VALUES {placeholders}",
        rows,
    )


class SameWritesView(_Bare):
    def post(self, request: Request) -> Response:
        body = request.data
        approval, review, initiative = body["approval"], body["review"], body["initiative"]
        actor = body["actor"]
        users = [int(u) for u in body["users"]]
        now = timezone.now()
        tag = uuid.uuid4().hex
        per_event = [n // 2 for n in DELIVERIES_PER_EVENT]  # an e-mail and an in-app each
        payload = {
            "title": "AI-0000: approved the G1 review",
            "summary": "approved it: bench",
            "recipients": [{"user_id": u} for u in users],
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE gates_approval SET status = 'approved', comment = 'bench', "
                "decided_by_id = %s, decided_at = %s WHERE id = %s",
                [actor, now, approval],
            )
            cursor.execute(
                "INSERT INTO gates_reviewevent (review_id, kind, actor_id, on_behalf_of_id, "
                "approval_id, data, created_at) VALUES (%s, 'approval_decided', %s, NULL, %s, "
                "%s, %s)",
                [review, actor, approval, json.dumps({"decision": "approve"}), now],
            )
            _event(cursor, "approval.decided", f"bench-a:{tag}", payload, users[: per_event[0]])
            cursor.execute(
                "UPDATE gates_gatereview SET state = 'approved', outcome = 'go', decided_at = %s "
                "WHERE id = %s",
                [now, review],
            )
            # The stage guard needs a transition record for every change of stage, so each call
            # toggles the stage and writes the record (the target rows are reused).
            cursor.execute(
                "SELECT stage FROM programs_initiative WHERE id = %s FOR UPDATE", [initiative]
            )
            old = cursor.fetchone()[0]
            new = "pilot" if old == "proposed" else "proposed"
            cursor.execute(
                "UPDATE programs_initiative SET stage = %s, stage_entered_at = %s WHERE id = %s",
                [new, now, initiative],
            )
            cursor.execute(
                "INSERT INTO programs_stagetransition (initiative_id, transition, from_stage, "
                "to_stage, actor_id, reason, gate_review_id, created_at) "
                "VALUES (%s, 'bench', %s, %s, NULL, 'bench', %s, %s)",
                [initiative, old, new, review, now],
            )
            _event(
                cursor, "initiative.stage_changed", f"bench-s:{tag}", payload, users[: per_event[1]]
            )
            cursor.execute(
                "INSERT INTO gates_reviewevent (review_id, kind, actor_id, on_behalf_of_id, "
                "approval_id, data, created_at) VALUES (%s, 'review_decided', NULL, NULL, %s, "
                "%s, %s)",
                [review, approval, json.dumps({"outcome": "go"}), now],
            )
            _event(cursor, "review.decided", f"bench-r:{tag}", payload, users[: per_event[2]])
        return Response({"ok": True})


class OneRowView(_Bare):
    def post(self, request: Request, unit: int) -> Response:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE programs_businessunit SET name = %s WHERE id = %s",
                [f"bench {uuid.uuid4().hex[:8]}", unit],
            )
        return Response({"ok": True})
