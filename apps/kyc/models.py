"""KYC applications and their supporting documents.

State changes and uploads go through `apps.kyc.services` (which validate, lock and audit); these
models hold data only.
"""

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from apps.kyc.countries import COUNTRIES

# The only types accepted for documents, keyed by the MIME type sniffed from the file's bytes.
ALLOWED_DOCUMENT_TYPES: dict[str, str] = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
}


def validate_country_code(value: str) -> None:
    if value and value not in COUNTRIES:
        raise ValidationError(
            "%(value)s is not an ISO 3166-1 alpha-2 country code.",
            code="invalid_country",
            params={"value": value},
        )


class KycStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    MORE_INFO_REQUESTED = "more_info_requested", "More information requested"


class KycApplication(models.Model):
    """One user's identity verification. Personal fields stay blank until the user fills them in;
    completeness is enforced at submission, not here, so that drafts can be saved piecemeal."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        # Identity records must outlive a casual account deletion (retention obligations).
        on_delete=models.PROTECT,
        related_name="kyc_application",
    )
    legal_name = models.CharField(max_length=200, blank=True)
    date_of_birth = models.DateField(null=True, blank=True)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[validate_country_code],
        help_text="ISO 3166-1 alpha-2 code, e.g. DE.",
    )
    tax_id = models.CharField("tax ID", max_length=50, blank=True)

    status = models.CharField(
        max_length=32, choices=KycStatus.choices, default=KycStatus.DRAFT, db_index=True
    )
    # Shown to the applicant: the rejection reason or the information the back office needs.
    decision_reason = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Most recently submitted first; never-submitted drafts last.
        ordering = [F("submitted_at").desc(nulls_last=True), "-id"]
        verbose_name = "KYC application"
        permissions = [("review_kycapplication", "Can approve, reject or query KYC applications")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=KycStatus.values), name="kyc_application_status_valid"
            ),
            # A negative decision the applicant cannot read the reason for is useless to them.
            models.CheckConstraint(
                condition=~Q(status__in=[KycStatus.REJECTED, KycStatus.MORE_INFO_REQUESTED])
                | ~Q(decision_reason=""),
                name="kyc_application_reason_for_negative_decision",
            ),
            models.CheckConstraint(
                condition=~Q(
                    status__in=[
                        KycStatus.APPROVED,
                        KycStatus.REJECTED,
                        KycStatus.MORE_INFO_REQUESTED,
                    ]
                )
                | Q(reviewed_by__isnull=False, reviewed_at__isnull=False),
                name="kyc_application_decision_has_reviewer",
            ),
        ]

    def __str__(self) -> str:
        return f"KYC #{self.pk} ({self.status})"


class KycDocumentKind(models.TextChoices):
    IDENTITY_DOCUMENT = "identity_document", "Identity document"
    PROOF_OF_ADDRESS = "proof_of_address", "Proof of address"


def kyc_document_upload_to(instance: "KycDocument", filename: str) -> str:
    """`kyc/<application id>/<random uuid>.<sniffed extension>`.

    The client's file name is ignored: it may be guessable, contain path tricks or lie about the
    type. The random part keeps storage keys unguessable even if a bucket is misconfigured.
    """
    extension = ALLOWED_DOCUMENT_TYPES[instance.content_type]
    return f"kyc/{instance.application_id}/{uuid.uuid4().hex}.{extension}"


class KycDocument(models.Model):
    application = models.ForeignKey(
        KycApplication, on_delete=models.PROTECT, related_name="documents"
    )
    kind = models.CharField(max_length=32, choices=KycDocumentKind.choices)
    file = models.FileField(upload_to=kyc_document_upload_to, max_length=255)
    # Display only; never used to build a path.
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["uploaded_at", "id"]
        verbose_name = "KYC document"
        indexes = [models.Index(fields=["application", "kind"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=KycDocumentKind.values), name="kyc_document_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(content_type__in=list(ALLOWED_DOCUMENT_TYPES)),
                name="kyc_document_content_type_allowed",
            ),
            models.CheckConstraint(condition=Q(size__gt=0), name="kyc_document_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def extension(self) -> str:
        return ALLOWED_DOCUMENT_TYPES.get(self.content_type, "bin")

    def natural_download_name(self) -> str:
        return f"{self.kind}-{self.pk}.{self.extension}"

    def audit_summary(self) -> dict[str, Any]:
        return {
            "document_id": self.pk,
            "kind": self.kind,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }
