import logging

from celery import shared_task

from apps.audit.selectors import audit_chain_verify

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def audit_chain_verify_task() -> dict[str, object]:
    result = audit_chain_verify()
    if not result.ok:
        logger.error("audit chain broken at #%s: %s", result.broken_seq, result.problem)
    return {"ok": result.ok, "checked": result.checked, "broken_seq": result.broken_seq}
