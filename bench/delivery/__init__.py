"""Delivery benchmark: outbox deliveries by real Celery workers vs. Celery's no-op task rate."""
