"""A plain django-fsm-2 model with django-fsm-log's audit record and an outbox table.

What a Django developer would write for "put an initiative on hold, keep a log, tell someone":
no database guards, no permission or condition checks, no stage clock, no deliveries.
Tables are created by the test runner's syncdb (the app has no migrations).
"""

from __future__ import annotations

from django.db import models
from django_fsm import FSMField, transition
from django_fsm_log.decorators import fsm_log_by

ACTIVE = ["proposed", "pilot", "integration", "hardening"]


class PeerInitiative(models.Model):
    name = models.CharField(max_length=200)
    stage = FSMField(default="proposed")
    held_from = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    @fsm_log_by
    @transition(field=stage, source=ACTIVE, target="on_hold")
    def hold(self, by=None) -> None:
        self.held_from = self.stage


class PeerOutbox(models.Model):
    topic = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.topic
