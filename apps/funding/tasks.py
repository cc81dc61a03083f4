"""Celery tasks for funding: each calls exactly one service.

All are idempotent (the services re-check the row's state under lock), acknowledged late (a
worker crash redelivers them) and retried with exponential backoff on transient errors: the
database being unreachable or the payment gateway being unavailable.
"""

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from apps.funding.gateways import GatewayUnavailable
from apps.funding.services import deposit_process, funding_resume_stalled, withdrawal_process

TRANSIENT_ERRORS = (OperationalError, InterfaceError, GatewayUnavailable)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=10,
)
def deposit_process_task(self: Task, deposit_id: int) -> str:
    return deposit_process(deposit_id=deposit_id).status


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=10,
)
def withdrawal_process_task(self: Task, withdrawal_id: int) -> str:
    return withdrawal_process(withdrawal_id=withdrawal_id).status


@shared_task(bind=True, acks_late=True)
def funding_resume_stalled_task(self: Task) -> int:
    return funding_resume_stalled()
