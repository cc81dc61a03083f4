"""Celery tasks of settlement: each calls exactly one service."""

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from apps.settlement.services import session_close_enqueue


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def session_close_enqueue_task(self: Task) -> list[str]:
    """Beat, every minute: enqueue end_of_session for calendars that closed (DAY expiry)."""
    return session_close_enqueue()
