"""The peer a Django developer would build instead of Gatekeeper's engine (bench only)."""
