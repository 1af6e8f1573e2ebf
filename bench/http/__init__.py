"""HTTP benchmark: deciding approvals through the API vs. bare endpoints making the same writes."""
