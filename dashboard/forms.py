from __future__ import annotations

from typing import Any, cast

from django import forms

from programs.models import BusinessUnit, RiskTier
from programs.portfolio import PortfolioFilters
from programs.stages import Stage


class PortfolioFilterForm(forms.Form):
    """The dashboard's GET filters; every panel and the CSV honour the same ones."""

    unit = forms.ChoiceField(label="Business unit", required=False)
    risk = forms.ChoiceField(
        label="Risk tier", required=False, choices=[("", "All tiers"), *RiskTier.choices]
    )
    stage = forms.ChoiceField(
        label="Stage", required=False, choices=[("", "All stages"), *Stage.choices]
    )

    def __init__(self, *args: Any, units: list[BusinessUnit], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unit = cast(forms.ChoiceField, self.fields["unit"])
        unit.choices = [("", "All units"), *((u.code, u.name) for u in units)]

    def filters(self) -> PortfolioFilters:
        """What to apply: the valid fields only (an unknown value is reported, not applied)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return PortfolioFilters(
            business_unit=data.get("unit") or "",
            risk_tier=data.get("risk") or "",
            stage=data.get("stage") or "",
        )
