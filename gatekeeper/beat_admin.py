"""django-celery-beat's periodic task admin, without its one crash on bad input.

Its form's ``clean`` reads ``cleaned_data["task"]``, which is absent when the task field itself
was refused (e.g. a name longer than 200 characters): a KeyError, so a 500 instead of the field's
error. Imported by the URLconf, after the admin registered beat's own ModelAdmin.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask


class _PeriodicTaskForm(PeriodicTaskForm):
    def clean(self) -> dict[str, Any]:
        # The field already carries its own error; beat's clean then adds "Need name of task".
        self.cleaned_data.setdefault("task", "")
        return super().clean()


class _PeriodicTaskAdmin(PeriodicTaskAdmin):
    form = _PeriodicTaskForm


if admin.site.is_registered(PeriodicTask):
    admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, _PeriodicTaskAdmin)
