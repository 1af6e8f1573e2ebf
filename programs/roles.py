"""Group names from DESIGN.md §1 Roles; created by a data migration."""

BUSINESS_OWNERS = "business-owners"
APPROVERS = "approvers"
PMO = "pmo"
INTEGRATIONS = "integrations"

ALL_GROUPS = (BUSINESS_OWNERS, APPROVERS, PMO, INTEGRATIONS)
