"""Forms of the gates admin: parsing only. What may be decided, attached or assigned is the
services' call; the admin puts their refusals back on these forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from gates import selectors
from gates.models import (
    REJECT_OUTCOMES,
    Decision,
    Delegation,
    Evidence,
    GateApprover,
    GateReview,
    Outcome,
)
from programs.models import RiskTier


def clean_risk_tiers(value: Any) -> list[str]:
    """A JSON field takes anything; only a list of known tiers means "applies to these tiers".

    Without this a number crashed the save (``list(5)``) and a string became its letters.
    """
    if value in (None, ""):
        return []
    known = ", ".join(f'"{t}"' for t in RiskTier.values)
    if not isinstance(value, list):
        raise forms.ValidationError(
            f"Enter a list of risk tiers, e.g. [{known}]; an empty list means every tier."
        )
    unknown = [t for t in value if not isinstance(t, str) or t not in RiskTier.values]
    if unknown:
        raise forms.ValidationError(
            f"Unknown risk tier(s) {', '.join(repr(t) for t in unknown)}; use {known}."
        )
    return list(dict.fromkeys(value))


class RiskTiersForm(forms.ModelForm):
    def clean_risk_tiers(self) -> list[str]:
        return clean_risk_tiers(self.cleaned_data.get("risk_tiers"))


class OpenReviewForm(forms.ModelForm):
    class Meta:
        model = GateReview
        fields = ("initiative",)


class EvidenceForm(forms.Form):
    criterion = forms.ChoiceField()
    url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=Evidence._meta.get_field("url").max_length,
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, criteria: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        criterion = self.fields["criterion"]
        assert isinstance(criterion, forms.ChoiceField)
        criterion.choices = criteria


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect)
    outcome = forms.ChoiceField(
        choices=[("", "—")] + [(o, Outcome(o).label) for o in REJECT_OUTCOMES],
        required=False,
        help_text="For a rejection: Recycle (rework, new review), Hold or Kill.",
    )
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)


class ConditionForm(forms.Form):
    """One condition of a Conditional Go; a row left entirely blank is ignored.

    A row with anything in it needs an owner and a due date to be a condition at all; whether
    it is an acceptable one (a title, a date ahead) is approval_decide's to say.
    """

    title = forms.CharField(max_length=200, required=False)
    # The queryset is set per form (below) so it is read when the page is built, not at import.
    owner = forms.ModelChoiceField(
        queryset=get_user_model()._default_manager.none(), required=False
    )
    due_at = forms.DateTimeField(
        label="Due",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ModelChoiceField)
        owner.queryset = selectors.condition_owner_candidates()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Blank extra rows are skipped by the formset; a row with anything in it is complete.
        if data.get("owner") is None and "owner" not in self.errors:
            self.add_error("owner", "Choose who owns this condition.")
        if data.get("due_at") is None and "due_at" not in self.errors:
            self.add_error("due_at", "Give a due date and time.")
        return data


ConditionFormSet = forms.formset_factory(ConditionForm, extra=3, max_num=20, validate_max=True)


class GateApproverForm(forms.ModelForm):
    class Meta:
        model = GateApprover
        fields = ("user", "role", "business_unit")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Adding a holder for a role that has one replaces it (gate_approver_assign): validate
        # against the existing row so the one-per-role constraint is not a form error.
        existing = selectors.gate_approver_holding(
            role=data.get("role"), business_unit=data.get("business_unit")
        )
        if existing is not None:
            self.instance = existing
        return data


class DelegationForm(forms.ModelForm):
    class Meta:
        model = Delegation
        fields = ("principal", "deputy", "starts_on", "ends_on", "reason")
