"""Who sees the PMO dashboard: the PMO group (it sees and exports everything) and superusers."""

import rules

from programs.rules import is_admin, is_pmo

VIEW_PORTFOLIO = "dashboard.view_portfolio"

rules.add_perm(VIEW_PORTFOLIO, is_admin | is_pmo)
