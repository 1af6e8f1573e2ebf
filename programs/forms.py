"""Forms of the programs admin: parsing only; the services decide what is allowed."""

from __future__ import annotations

from typing import Any

from django import forms

from gatekeeper.errors import ValidationFailed
from programs.models import SuccessMetric
from programs.services.metrics import metric_values_check

_TARGETS = ("baseline", "target")
_DEFINITION = ("name", "unit", "direction", *_TARGETS)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class RequiredReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=True)


class SuccessMetricForm(forms.ModelForm):
    """A metric row of the initiative page. A baseline or target once set is what a gate
    judges against: an emptied box is a mistake to point out, not a wish to clear it, so
    clearing takes its own checkbox (and the service decides whether the user may)."""

    clear_baseline = forms.BooleanField(required=False, label="Clear baseline")
    clear_target = forms.BooleanField(required=False, label="Clear target")

    class Meta:
        model = SuccessMetric
        fields = _DEFINITION

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in _TARGETS:
            had = getattr(self.instance, name) if self.instance.pk else None
            if data.get(f"clear_{name}"):
                data[name] = None
            elif name in data and data[name] is None and had is not None:
                self.add_error(
                    name, f"The {name} is {had}; tick 'Clear {name}' to remove it on purpose."
                )
        numbers = {name: data.get(name) for name in _TARGETS if name not in self.errors}
        try:
            metric_values_check(unit=data.get("unit") or "", values=numbers)
        except ValidationFailed as exc:
            for name, msgs in exc.errors.items():
                self.add_error(name, [f"{m} (unit {data.get('unit')!r})" for m in msgs])
        return data

    def changes(self) -> dict[str, Any]:
        """What the user changed, for metric_add/metric_update; a ticked clear is a change."""
        names = {n for n in self.changed_data if n in _DEFINITION}
        names |= {n for n in _TARGETS if self.cleaned_data.get(f"clear_{n}")}
        return {name: self.cleaned_data.get(name) for name in sorted(names)}
