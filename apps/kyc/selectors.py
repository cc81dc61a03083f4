"""Reads for KYC, including THE eligibility gate.

`trading_eligibility` (and its shorthand `kyc_is_approved`) is the single gate for anything that
moves money or positions: placing orders, withdrawals and the like. Later features must call it
rather than re-deriving the rule from `KycApplication.status`, so that tightening the rule (for
example adding sanctions screening) happens in one place.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from apps.accounts.models import User
from apps.common.errors import NotFound
from apps.kyc.models import KycApplication, KycDocument, KycDocumentKind, KycStatus


@dataclass(frozen=True)
class Eligibility:
    allowed: bool
    code: str
    message: str


ELIGIBLE = Eligibility(allowed=True, code="ok", message="You can trade and withdraw.")

_NOT_APPROVED_MESSAGES: dict[str, str] = {
    KycStatus.DRAFT: "Complete and submit your identity verification to start trading.",
    KycStatus.SUBMITTED: "Your identity verification is being reviewed.",
    KycStatus.MORE_INFO_REQUESTED: (
        "We need more information to verify your identity. See your verification page."
    ),
    KycStatus.REJECTED: "Your identity verification was not approved.",
}


def kyc_application_for(*, user: User) -> KycApplication | None:
    """The user's application, or None if they have not started one."""
    return KycApplication.objects.filter(user=user).first()


def kyc_documents_for(*, application: KycApplication | None) -> QuerySet[KycDocument]:
    if application is None or application.pk is None:
        return KycDocument.objects.none()
    return KycDocument.objects.filter(application=application).order_by("uploaded_at", "id")


def kyc_missing_document_kinds(*, application: KycApplication | None) -> list[str]:
    present = set(kyc_documents_for(application=application).values_list("kind", flat=True))
    return [kind for kind in KycDocumentKind.values if kind not in present]


def kyc_document_for_download(*, document_id: int, requester: User) -> KycDocument:
    """The document if `requester` owns it or is active staff; otherwise `NotFound`.

    Non-owners get "not found" rather than "forbidden" so that document ids cannot be probed.
    """
    if not requester.is_active:
        raise NotFound("Document not found.", code="kyc_document_not_found")
    documents = KycDocument.objects.select_related("application")
    if not requester.is_staff:
        documents = documents.filter(application__user=requester)
    document = documents.filter(pk=document_id).first()
    if document is None:
        raise NotFound("Document not found.", code="kyc_document_not_found")
    return document


def kyc_is_approved(*, user: User) -> bool:
    return KycApplication.objects.filter(user=user, status=KycStatus.APPROVED).exists()


def trading_eligibility(*, user: User | AnonymousUser) -> Eligibility:
    """May `user` trade or withdraw right now? The one gate every money-moving feature calls.

    Checks, in order: an active account, a verified email address and an approved KYC
    application. `code` is machine-readable ("ok", "account_inactive", "email_not_verified",
    "kyc_not_approved"); `message` is a sentence fit to show the user.
    """
    if not isinstance(user, User):
        return Eligibility(False, "account_inactive", "Sign in to trade.")
    if not user.is_active:
        return Eligibility(False, "account_inactive", "This account is deactivated.")
    if not user.email_verified:
        return Eligibility(False, "email_not_verified", "Verify your email address before trading.")
    status = (
        KycApplication.objects.filter(user=user).values_list("status", flat=True).first()
        or KycStatus.DRAFT
    )
    if status != KycStatus.APPROVED:
        return Eligibility(False, "kyc_not_approved", _NOT_APPROVED_MESSAGES[status])
    return ELIGIBLE
