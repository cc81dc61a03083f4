"""The applicant's web page and the access-checked document download."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.kyc.models import KycApplication, KycStatus
from tests.factories import TOTPDeviceFactory, UserFactory
from tests.integration.kyc.factories import KycApplicationFactory, complete_application
from tests.integration.kyc.samples import PDF, PNG

pytestmark = pytest.mark.django_db


def test_new_user_sees_an_empty_form_with_labels(verified_client: Client) -> None:
    response = verified_client.get(reverse("kyc:application"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="badge draft"' in html
    for label in ("Legal name", "Date of birth", "Country of residence", "Tax ID", "Document type"):
        assert label in html
    assert 'for="id_legal_name"' in html
    assert 'enctype="multipart/form-data"' in html
    assert "Identity document" in html
    assert "Proof of address" in html


def test_full_flow_through_the_web_page(verified_client: Client, user: User) -> None:
    response = verified_client.post(
        reverse("kyc:application"),
        {
            "legal_name": "Katherine Johnson",
            "date_of_birth": "1970-08-26",
            "address_line1": "1 Main Street",
            "address_line2": "",
            "city": "Hampton",
            "postal_code": "23669",
            "country": "US",
            "tax_id": "123-45-6789",
        },
    )
    assert response.status_code == 302
    for kind, name, content in [
        ("identity_document", "id.png", PNG),
        ("proof_of_address", "b.pdf", PDF),
    ]:
        response = verified_client.post(
            reverse("kyc:document_upload"),
            {"kind": kind, "file": SimpleUploadedFile(name, content)},
        )
        assert response.status_code == 302

    response = verified_client.post(reverse("kyc:submit"), follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "submitted for review" in html
    assert 'class="badge submitted"' in html
    # No longer editable: no form fields, no upload form, no submit button.
    assert 'name="legal_name"' not in html
    assert 'name="file"' not in html
    assert KycApplication.objects.get(user=user).status == KycStatus.SUBMITTED


def test_invalid_country_shows_error_next_to_field(verified_client: Client) -> None:
    response = verified_client.post(reverse("kyc:application"), {"country": "ZZ"})
    assert response.status_code == 400
    assert response.context["draft_form"].errors["country"]
    assert 'class="field-error"' in response.content.decode()


def test_minor_gets_a_clear_error(verified_client: Client) -> None:
    response = verified_client.post(reverse("kyc:application"), {"date_of_birth": "2015-01-01"})
    assert response.status_code == 400
    assert response.context["draft_form"].errors["date_of_birth"] == [
        "You must be at least 18 years old to open an account."
    ]


def test_incomplete_submission_explains_what_is_missing(
    verified_client: Client, user: User
) -> None:
    KycApplicationFactory.create(user=user, tax_id="")
    response = verified_client.post(reverse("kyc:submit"), follow=True)
    html = response.content.decode()
    assert "The application is incomplete. Still needed: tax id, documents." in html
    assert KycApplication.objects.get(user=user).status == KycStatus.DRAFT


def test_more_info_request_is_shown_and_form_is_editable(
    verified_client: Client, user: User
) -> None:
    application = complete_application(user=user, submitted=True)
    KycApplication.objects.filter(pk=application.pk).update(
        status=KycStatus.MORE_INFO_REQUESTED,
        decision_reason="Please upload the back of your ID card.",
        reviewed_by=UserFactory.create(is_staff=True),
        reviewed_at=application.submitted_at,
    )
    html = verified_client.get(reverse("kyc:application")).content.decode()
    assert 'class="badge more_info_requested"' in html
    assert "Please upload the back of your ID card." in html
    assert 'name="legal_name"' in html
    assert 'name="file"' in html


def test_posting_the_form_after_approval_is_refused(verified_client: Client, user: User) -> None:
    KycApplicationFactory.create(user=user, approved=True, legal_name="Kept")
    response = verified_client.post(
        reverse("kyc:application"), {"legal_name": "Changed"}, follow=True
    )
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert any(
        level == "error" and "'approved' and can no longer be changed" in text
        for level, text in shown
    )
    assert 'name="legal_name"' not in response.content.decode()
    assert KycApplication.objects.get(user=user).legal_name == "Kept"


def test_uploading_after_submission_is_refused_with_a_message(
    verified_client: Client, user: User, media_files
) -> None:
    complete_application(user=user, submitted=True)
    before = media_files()
    response = verified_client.post(
        reverse("kyc:document_upload"),
        {"kind": "identity_document", "file": SimpleUploadedFile("late.pdf", PDF)},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any("'submitted' and can no longer be changed" in m for m in messages)
    assert media_files() == before
    assert KycApplication.objects.get(user=user).documents.count() == 2


# --- document download ---------------------------------------------------------------------------


def _document_url(application: KycApplication) -> str:
    document = application.documents.first()
    assert document is not None
    return reverse("kyc:document_download", args=[document.pk])


def test_owner_downloads_own_document_as_attachment(verified_client: Client, user: User) -> None:
    application = complete_application(user=user)
    response = verified_client.get(_document_url(application))
    assert response.status_code == 200
    assert response.getvalue() == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    assert not AuditEvent.objects.filter(action="kyc.document_viewed").exists()


def test_another_user_gets_404(login_client) -> None:
    application = complete_application()
    stranger = UserFactory.create()
    client = login_client(stranger, TOTPDeviceFactory.create(user=stranger))
    assert client.get(_document_url(application)).status_code == 404


def test_missing_document_is_404(verified_client: Client) -> None:
    assert verified_client.get(reverse("kyc:document_download", args=[999_999])).status_code == 404


def test_staff_can_download_and_the_access_is_audited(
    staff_client: Client, staff_user: User
) -> None:
    application = complete_application()
    response = staff_client.get(_document_url(application))
    assert response.status_code == 200
    assert response.getvalue() == PDF
    event = AuditEvent.objects.get(action="kyc.document_viewed")
    assert event.actor_id == staff_user.pk
    assert event.object_id == str(application.pk)


def test_anonymous_is_sent_to_login(client: Client) -> None:
    application = complete_application()
    response = client.get(_document_url(application))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_session_without_second_factor_cannot_download(
    unverified_client: Client, user: User
) -> None:
    application = complete_application(user=user)
    response = unverified_client.get(_document_url(application))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:mfa-verify"))


def test_media_url_does_not_serve_documents(verified_client: Client, user: User) -> None:
    application = complete_application(user=user)
    document = application.documents.first()
    assert document is not None
    assert verified_client.get(document.file.url).status_code == 404
