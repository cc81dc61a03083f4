"""Writes for KYC. Every function owns its transaction and writes an audit record.

Locking: functions that read-then-change an application lock its row first
(`SELECT … FOR UPDATE`), so a reviewer's decision and the applicant's edit or resubmission are
serialised and each one validates the state it actually changes. `audit_record` takes the audit
chain lock last, as that module requires.

Documents: the file is validated (size, sniffed type, hash) before anything is written, and is
written to storage only after the state checks pass. If anything after the write fails inside the
service, the file is deleted again. A caller-owned outer transaction rolling back later cannot be
observed from here; call these services outside any enclosing `atomic` (views do).
"""

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.common.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from apps.kyc.countries import COUNTRIES
from apps.kyc.models import (
    KycApplication,
    KycDocument,
    KycDocumentKind,
    KycStatus,
)
from apps.kyc.selectors import kyc_missing_document_kinds
from apps.kyc.transitions import ensure_transition, is_editable
from apps.kyc.uploads import inspect_upload

MINIMUM_AGE_YEARS = 18
MAXIMUM_AGE_YEARS = 130
MAX_DOCUMENTS_PER_APPLICATION = 20
MAX_REASON_LENGTH = 2000

# Field name → maximum length for the free-text personal fields.
TEXT_FIELDS: dict[str, int] = {
    "legal_name": 200,
    "address_line1": 200,
    "address_line2": 200,
    "city": 100,
    "postal_code": 20,
    "tax_id": 50,
}
DRAFT_FIELDS: tuple[str, ...] = (*TEXT_FIELDS, "date_of_birth", "country")
REQUIRED_FOR_SUBMISSION: tuple[str, ...] = (
    "legal_name",
    "date_of_birth",
    "address_line1",
    "city",
    "postal_code",
    "country",
    "tax_id",
)


# --- helpers ----------------------------------------------------------------------------------


def _age_on(born: dt.date, today: dt.date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _clean_draft_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise and validate the provided subset of draft fields; raise `InvalidInput`."""
    unknown = sorted(set(data) - set(DRAFT_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown field(s): {', '.join(unknown)}.",
            fields={name: ["Unknown field."] for name in unknown},
        )
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, max_length in TEXT_FIELDS.items():
        if name not in data:
            continue
        value = " ".join(str(data[name] or "").split())
        if len(value) > max_length:
            errors[name] = [f"Use at most {max_length} characters."]
        cleaned[name] = value
    if "country" in data:
        country = str(data["country"] or "").strip().upper()
        if country and country not in COUNTRIES:
            errors["country"] = ["Choose a country (ISO 3166-1 alpha-2 code, e.g. DE)."]
        cleaned["country"] = country
    if "date_of_birth" in data:
        born = data["date_of_birth"]
        if born in (None, ""):
            cleaned["date_of_birth"] = None
        elif not isinstance(born, dt.date) or isinstance(born, dt.datetime):
            errors["date_of_birth"] = ["Enter a date of birth (YYYY-MM-DD)."]
        else:
            age = _age_on(born, timezone.localdate())
            if age < MINIMUM_AGE_YEARS:
                errors["date_of_birth"] = [
                    f"You must be at least {MINIMUM_AGE_YEARS} years old to open an account."
                ]
            elif age > MAXIMUM_AGE_YEARS:
                errors["date_of_birth"] = ["Check the year of your date of birth."]
            cleaned["date_of_birth"] = born
    if errors:
        first_field, messages = next(iter(errors.items()))
        raise InvalidInput(f"{first_field}: {messages[0]}", fields=errors)
    return cleaned


def _lock_own_application(*, user: User, create: bool) -> KycApplication:
    """The user's application row, locked for the rest of the transaction."""
    if create:
        application, _ = KycApplication.objects.select_for_update().get_or_create(user=user)
        return application
    existing = KycApplication.objects.select_for_update().filter(user=user).first()
    if existing is None:
        raise NotFound(
            "You have not started an identity verification yet.",
            code="kyc_application_not_found",
        )
    return existing


def _ensure_editable(application: KycApplication) -> None:
    if not is_editable(application.status):
        raise InvalidTransition(
            f"The application is '{application.status}' and can no longer be changed. Changes "
            "are possible only while it is a draft or when more information is requested.",
            code="kyc_not_editable",
        )


def _ensure_reviewer(*, reviewer: User) -> None:
    if not (reviewer.is_active and reviewer.is_staff):
        raise Forbidden(
            "Only back-office staff can review KYC applications.", code="reviewer_not_staff"
        )


def _lock_for_review(*, application_id: int, reviewer: User) -> KycApplication:
    application = KycApplication.objects.select_for_update().filter(pk=application_id).first()
    if application is None:
        raise NotFound("KYC application not found.", code="kyc_application_not_found")
    if application.user_id == reviewer.pk:
        raise Forbidden("You cannot review your own KYC application.", code="reviewer_is_applicant")
    return application


def _clean_reason(reason: str, *, what: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise InvalidInput(
            f"A {what} is required: the applicant is shown it.",
            code="reason_required",
            fields={"reason": [f"Enter the {what}."]},
        )
    if len(cleaned) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"The {what} is too long (at most {MAX_REASON_LENGTH} characters).",
            fields={"reason": [f"Use at most {MAX_REASON_LENGTH} characters."]},
        )
    return cleaned


def _document_summaries(application: KycApplication) -> list[dict[str, Any]]:
    return [doc.audit_summary() for doc in application.documents.order_by("id")]


# --- applicant --------------------------------------------------------------------------------


def kyc_application_save_draft(
    *, user: User, data: Mapping[str, Any], ip: str | None = None
) -> KycApplication:
    """Create or update the user's application with the given subset of personal fields.

    Locks the application row. Allowed only while the application is editable.
    """
    cleaned = _clean_draft_data(data)
    with transaction.atomic():
        application = _lock_own_application(user=user, create=True)
        _ensure_editable(application)
        changed = sorted(
            name for name, value in cleaned.items() if getattr(application, name) != value
        )
        for name in changed:
            setattr(application, name, cleaned[name])
        if changed:
            application.save(update_fields=[*changed, "updated_at"])
            # Field names only: the audit log is append-only, so personal data stays out of it.
            audit_record(
                action="kyc.draft_saved",
                actor=user,
                obj=application,
                after={"fields": changed},
                ip=ip,
            )
    return application


def kyc_document_upload(
    *, user: User, kind: str, uploaded_file: UploadedFile, ip: str | None
) -> KycDocument:
    """Validate and store one document for the user's application.

    Locks the application row (creating a draft if needed) so an upload cannot slip in after a
    concurrent submission.
    """
    if kind not in KycDocumentKind.values:
        raise InvalidInput(
            "Choose the document type: identity document or proof of address.",
            code="invalid_document_kind",
            fields={"kind": ["Choose identity document or proof of address."]},
        )
    inspected = inspect_upload(uploaded_file=uploaded_file)

    document: KycDocument | None = None
    try:
        with transaction.atomic():
            application = _lock_own_application(user=user, create=True)
            _ensure_editable(application)
            if application.documents.count() >= MAX_DOCUMENTS_PER_APPLICATION:
                raise InvalidInput(
                    f"An application can hold at most {MAX_DOCUMENTS_PER_APPLICATION} documents.",
                    code="too_many_documents",
                )
            document = KycDocument(
                application=application,
                kind=kind,
                original_name=inspected.original_name,
                content_type=inspected.content_type,
                size=inspected.size,
                sha256=inspected.sha256,
            )
            # Writes to storage; the name given here is discarded by upload_to.
            document.file.save("upload", uploaded_file, save=False)
            document.save(force_insert=True)
            audit_record(
                action="kyc.document_uploaded",
                actor=user,
                obj=application,
                after=document.audit_summary(),
                ip=ip,
            )
    except BaseException:
        if document is not None and document.file.name:
            document.file.storage.delete(document.file.name)
        raise
    return document


def kyc_application_submit(*, user: User, ip: str | None) -> KycApplication:
    """Submit for review (from draft or after more information was requested).

    Locks the application row; requires a verified email, every personal field and at least one
    document of each kind.
    """
    if not user.email_verified:
        raise Forbidden(
            "Verify your email address before submitting your identity verification.",
            code="email_not_verified",
        )
    with transaction.atomic():
        application = _lock_own_application(user=user, create=False)
        source = application.status
        ensure_transition(source, KycStatus.SUBMITTED)

        errors: dict[str, list[str]] = {
            name: ["This field is required to submit."]
            for name in REQUIRED_FOR_SUBMISSION
            if getattr(application, name) in (None, "")
        }
        missing_kinds = kyc_missing_document_kinds(application=application)
        if missing_kinds:
            labels = [KycDocumentKind(kind).label.lower() for kind in missing_kinds]
            errors["documents"] = [f"Upload at least one {label}." for label in labels]
        if errors:
            missing = [name.replace("_", " ") for name in errors]
            raise InvalidInput(
                f"The application is incomplete. Still needed: {', '.join(missing)}.",
                code="kyc_incomplete",
                fields=errors,
            )
        # Re-checked because the draft may have been saved long ago under other rules.
        _clean_draft_data({"date_of_birth": application.date_of_birth})

        application.status = KycStatus.SUBMITTED
        application.submitted_at = timezone.now()
        application.decision_reason = ""
        application.save(update_fields=["status", "submitted_at", "decision_reason", "updated_at"])
        audit_record(
            action="kyc.submitted",
            actor=user,
            obj=application,
            before={"status": source},
            after={"status": application.status, "documents": _document_summaries(application)},
            ip=ip,
        )
    return application


# --- back office ------------------------------------------------------------------------------


def _decide(
    *,
    application_id: int,
    reviewer: User,
    target: KycStatus,
    reason: str,
    action: str,
    ip: str | None,
) -> KycApplication:
    _ensure_reviewer(reviewer=reviewer)
    with transaction.atomic():
        application = _lock_for_review(application_id=application_id, reviewer=reviewer)
        source = application.status
        ensure_transition(source, target)
        application.status = target
        application.decision_reason = reason
        application.reviewed_by = reviewer
        application.reviewed_at = timezone.now()
        application.save(
            update_fields=["status", "decision_reason", "reviewed_by", "reviewed_at", "updated_at"]
        )
        after: dict[str, Any] = {"status": target, "documents": _document_summaries(application)}
        if reason:
            after["reason"] = reason
        audit_record(
            action=action,
            actor=reviewer,
            obj=application,
            before={"status": source},
            after=after,
            ip=ip,
        )
    return application


def kyc_application_approve(
    *, application_id: int, reviewer: User, ip: str | None
) -> KycApplication:
    """Approve a submitted application. Locks the application row; reviewer must be other staff."""
    return _decide(
        application_id=application_id,
        reviewer=reviewer,
        target=KycStatus.APPROVED,
        reason="",
        action="kyc.approved",
        ip=ip,
    )


def kyc_application_reject(
    *, application_id: int, reviewer: User, reason: str, ip: str | None
) -> KycApplication:
    """Reject a submitted application (final) with a reason shown to the applicant.

    Locks the application row; reviewer must be other staff.
    """
    _ensure_reviewer(reviewer=reviewer)
    return _decide(
        application_id=application_id,
        reviewer=reviewer,
        target=KycStatus.REJECTED,
        reason=_clean_reason(reason, what="rejection reason"),
        action="kyc.rejected",
        ip=ip,
    )


def kyc_application_request_info(
    *, application_id: int, reviewer: User, message: str, ip: str | None
) -> KycApplication:
    """Send a submitted application back to the applicant with what is missing.

    Locks the application row; reviewer must be other staff.
    """
    _ensure_reviewer(reviewer=reviewer)
    return _decide(
        application_id=application_id,
        reviewer=reviewer,
        target=KycStatus.MORE_INFO_REQUESTED,
        reason=_clean_reason(message, what="description of the information needed"),
        action="kyc.more_info_requested",
        ip=ip,
    )


def kyc_document_view_record(*, document: KycDocument, viewer: User, ip: str | None) -> None:
    """Audit a back-office look at someone else's identity document."""
    with transaction.atomic():
        audit_record(
            action="kyc.document_viewed",
            actor=viewer,
            obj=document.application,
            after={"document_id": document.pk, "kind": document.kind},
            ip=ip,
        )
