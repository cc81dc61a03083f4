"""Row locking: an applicant's edit that races a reviewer's decision waits for it, then sees the
new state and is refused, instead of changing data the reviewer just approved."""

import threading

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from apps.common.errors import InvalidTransition
from apps.kyc.models import KycApplication, KycStatus
from apps.kyc.services import kyc_application_save_draft
from tests.factories import StaffFactory
from tests.integration.kyc.factories import complete_application

pytestmark = pytest.mark.django_db(transaction=True)


def test_edit_waits_for_a_concurrent_decision_and_then_is_refused() -> None:
    application = complete_application(submitted=True)
    reviewer = StaffFactory.create()
    # Submitted applications are not editable; reopen it as the reviewer would have done.
    KycApplication.objects.filter(pk=application.pk).update(
        status=KycStatus.MORE_INFO_REQUESTED,
        decision_reason="Need a clearer scan.",
        reviewed_by=reviewer,
        reviewed_at=timezone.now(),
    )
    lock_taken = threading.Event()
    release = threading.Event()
    outcome: dict[str, object] = {}

    def reviewer_holds_the_row() -> None:
        try:
            with transaction.atomic():
                KycApplication.objects.select_for_update().get(pk=application.pk)
                lock_taken.set()
                release.wait(timeout=10)
                KycApplication.objects.filter(pk=application.pk).update(
                    status=KycStatus.REJECTED, decision_reason="Forged."
                )
        finally:
            connection.close()

    def applicant_edits() -> None:
        try:
            kyc_application_save_draft(user=application.user, data={"legal_name": "Changed"})
            outcome["result"] = "saved"
        except InvalidTransition as exc:
            outcome["result"] = exc.code
        finally:
            connection.close()

    holder = threading.Thread(target=reviewer_holds_the_row)
    holder.start()
    assert lock_taken.wait(timeout=10)
    editor = threading.Thread(target=applicant_edits)
    editor.start()
    editor.join(timeout=0.5)
    assert editor.is_alive(), "the edit must wait for the reviewer's row lock"

    release.set()
    holder.join(timeout=10)
    editor.join(timeout=10)
    close_old_connections()

    assert outcome["result"] == "kyc_not_editable"
    application.refresh_from_db()
    assert application.status == KycStatus.REJECTED
    assert application.legal_name != "Changed"
