"""Thin Celery entry points for the API's periodic work."""

from celery import shared_task

from api import services


@shared_task(name="api.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    return services.idempotency_keys_purge_expired()


@shared_task(name="api.purge_expired_tokens", ignore_result=True)
def purge_expired_tokens() -> int:
    return services.api_tokens_purge_expired()
