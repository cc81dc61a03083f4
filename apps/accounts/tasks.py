from celery import shared_task

from apps.accounts.services import sessions_purge_expired


@shared_task(acks_late=True)
def sessions_clear_expired() -> int:
    return sessions_purge_expired()
