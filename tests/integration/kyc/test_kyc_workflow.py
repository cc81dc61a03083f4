"""The KYC state machine end to end: applicant through the API, back office through the admin,
with an audit record for every submission and decision."""

import datetime as dt

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.common.errors import Forbidden, InvalidInput, InvalidTransition
from apps.kyc.models import KycApplication, KycStatus
from apps.kyc.selectors import trading_eligibility
from apps.kyc.services import (
    kyc_application_approve,
    kyc_application_reject,
    kyc_application_request_info,
    kyc_application_save_draft,
    kyc_application_submit,
)
from tests.factories import StaffFactory, TOTPDeviceFactory, UserFactory
from tests.integration.kyc.factories import KycApplicationFactory, complete_application
from tests.integration.kyc.samples import JPEG, PDF, PNG

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:kyc_kycapplication_changelist")


def _review_url(application: KycApplication, decision: str) -> str:
    return reverse("admin:kyc_kycapplication_review", args=[application.pk, decision])


def _admin_action(client: Client, action: str, *applications: KycApplication, **extra: str):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(a.pk) for a in applications], **extra}
    if action == "approve_selected":
        data["index"] = "0"
    return client.post(CHANGELIST, data, follow=True)


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def _audit(action: str, application: KycApplication) -> AuditEvent:
    return AuditEvent.objects.get(action=action, object_id=str(application.pk))


# --- happy path ---------------------------------------------------------------------------------


def test_draft_to_submitted_to_approved_through_api_and_admin(
    verified_api_client: APIClient, user: User, staff_client: Client, staff_user: User
) -> None:
    draft = {
        "legal_name": "Ada Lovelace",
        "date_of_birth": "1985-12-10",
        "address_line1": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "gb",
        "tax_id": "AB123456C",
    }
    response = verified_api_client.put(reverse("kyc_api:application"), draft, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["country"] == "GB"
    for kind, name, content in [
        ("identity_document", "passport.jpg", JPEG),
        ("proof_of_address", "bill.pdf", PDF),
    ]:
        upload = SimpleUploadedFile(name, content)
        response = verified_api_client.post(
            reverse("kyc_api:documents"), {"kind": kind, "file": upload}, format="multipart"
        )
        assert response.status_code == 201

    response = verified_api_client.post(reverse("kyc_api:submit"))
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "submitted"
    assert response.json()["editable"] is False
    application = KycApplication.objects.get(user=user)
    assert application.submitted_at is not None
    assert trading_eligibility(user=user).code == "kyc_not_approved"

    response = _admin_action(staff_client, "approve_selected", application)
    assert response.status_code == 200
    assert ("success", "Approve: 1 application(s).") in _messages(response)

    application.refresh_from_db()
    assert application.status == KycStatus.APPROVED
    assert application.reviewed_by == staff_user
    assert application.reviewed_at is not None
    assert trading_eligibility(user=user).allowed is True

    submitted = _audit("kyc.submitted", application)
    assert submitted.actor_id == user.pk
    assert submitted.before == {"status": "draft"}
    assert submitted.after is not None
    assert len(submitted.after["documents"]) == 2
    approved = _audit("kyc.approved", application)
    assert approved.actor_id == staff_user.pk
    assert approved.before == {"status": "submitted"}
    assert approved.after is not None
    assert approved.after["status"] == "approved"
    assert AuditEvent.objects.filter(action="kyc.document_uploaded").count() == 2
    assert AuditEvent.objects.filter(action="kyc.draft_saved").count() == 1
    # Personal data stays out of the append-only log.
    assert "Ada Lovelace" not in str(list(AuditEvent.objects.values_list("before", "after")))
    assert audit_chain_verify().ok


def test_admin_change_page_offers_review_buttons_and_approve_page_works(
    staff_client: Client, staff_user: User
) -> None:
    application = complete_application(submitted=True)
    change_url = reverse("admin:kyc_kycapplication_change", args=[application.pk])

    page = staff_client.get(change_url)
    assert page.status_code == 200
    html = page.content.decode()
    for decision in ("approve", "reject", "request_info"):
        assert _review_url(application, decision) in html
    # Documents are listed with links to the access-checked download view.
    document = application.documents.first()
    assert document is not None
    assert reverse("kyc:document_download", args=[document.pk]) in html
    assert 'name="_save"' not in html

    confirm = staff_client.get(_review_url(application, "approve"))
    assert confirm.status_code == 200
    response = staff_client.post(_review_url(application, "approve"))
    assert response.status_code == 302
    assert response["Location"] == change_url

    application.refresh_from_db()
    assert application.status == KycStatus.APPROVED
    assert _audit("kyc.approved", application).actor_id == staff_user.pk
    # A decided application offers no further decisions.
    html = staff_client.get(change_url).content.decode()
    assert _review_url(application, "approve") not in html


def test_admin_list_filters_by_status_and_searches_by_email_and_name(staff_client: Client) -> None:
    submitted = KycApplicationFactory.create(submitted=True, legal_name="Grace Hopper")
    KycApplicationFactory.create(legal_name="Alan Turing")

    by_status = staff_client.get(CHANGELIST, {"status__exact": "submitted"})
    assert list(by_status.context["cl"].result_list) == [submitted]
    by_name = staff_client.get(CHANGELIST, {"q": "hopper"})
    assert list(by_name.context["cl"].result_list) == [submitted]
    by_email = staff_client.get(CHANGELIST, {"q": submitted.user.email})
    assert list(by_email.context["cl"].result_list) == [submitted]


# --- reject / request information ------------------------------------------------------------


def test_reject_with_reason_from_admin_page_is_shown_to_user(
    staff_client: Client, staff_user: User, login_client
) -> None:
    application = complete_application(submitted=True)
    applicant = application.user
    reason = "The passport photo is unreadable & the name does not match."

    response = staff_client.post(_review_url(application, "reject"), {"reason": reason})
    assert response.status_code == 302

    application.refresh_from_db()
    assert application.status == KycStatus.REJECTED
    assert application.decision_reason == reason
    event = _audit("kyc.rejected", application)
    assert event.actor_id == staff_user.pk
    assert event.after is not None
    assert event.after["reason"] == reason

    device = TOTPDeviceFactory.create(user=applicant)
    page = login_client(applicant, device).get(reverse("kyc:application"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="badge rejected"' in html
    assert "The passport photo is unreadable &amp; the name does not match." in html

    api = login_client(applicant, device, api=True).get(reverse("kyc_api:application"))
    assert api.json()["status"] == "rejected"
    assert api.json()["decision_reason"] == reason
    assert api.json()["editable"] is False
    assert trading_eligibility(user=applicant).code == "kyc_not_approved"


def test_reject_action_uses_an_intermediate_page_for_the_reason(staff_client: Client) -> None:
    first = complete_application(submitted=True)
    second = complete_application(submitted=True)

    page = staff_client.post(
        CHANGELIST,
        {"action": "reject_selected", ACTION_CHECKBOX_NAME: [str(first.pk), str(second.pk)]},
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "<textarea" in html
    assert "Reason for rejection" in html
    first.refresh_from_db()
    assert first.status == KycStatus.SUBMITTED

    response = _admin_action(
        staff_client, "reject_selected", first, second, apply="1", reason="Documents expired."
    )
    assert ("success", "Reject: 2 application(s).") in _messages(response)
    for application in (first, second):
        application.refresh_from_db()
        assert application.status == KycStatus.REJECTED
        assert application.decision_reason == "Documents expired."
    assert AuditEvent.objects.filter(action="kyc.rejected").count() == 2


def test_reject_without_reason_is_refused_everywhere(
    staff_client: Client, staff_user: User
) -> None:
    application = complete_application(submitted=True)

    response = staff_client.post(_review_url(application, "reject"), {"reason": "   "})
    assert response.status_code == 200
    assert response.context["form"].errors["reason"] == ["Enter the rejection reason."]
    assert any(level == "error" for level, _ in _messages(response))

    response = _admin_action(staff_client, "reject_selected", application, apply="1", reason="")
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert ("error", "A reason is required; nothing was changed.") in _messages(response)

    with pytest.raises(InvalidInput) as excinfo:
        kyc_application_reject(
            application_id=application.pk, reviewer=staff_user, reason="", ip=None
        )
    assert excinfo.value.code == "reason_required"

    application.refresh_from_db()
    assert application.status == KycStatus.SUBMITTED
    assert not AuditEvent.objects.filter(action="kyc.rejected").exists()


def test_request_info_then_user_edits_and_resubmits(
    staff_client: Client, staff_user: User, login_client
) -> None:
    application = complete_application(submitted=True)
    applicant = application.user
    message = "Please upload a proof of address from the last three months."

    response = _admin_action(
        staff_client, "request_info_selected", application, apply="1", reason=message
    )
    assert ("success", "Request more information: 1 application(s).") in _messages(response)
    application.refresh_from_db()
    assert application.status == KycStatus.MORE_INFO_REQUESTED
    assert _audit("kyc.more_info_requested", application).actor_id == staff_user.pk

    client = login_client(applicant, TOTPDeviceFactory.create(user=applicant), api=True)
    shown = client.get(reverse("kyc_api:application")).json()
    assert shown["status"] == "more_info_requested"
    assert shown["decision_reason"] == message
    assert shown["editable"] is True

    edit = client.put(reverse("kyc_api:application"), {"city": "Hamburg"}, format="json")
    assert edit.status_code == 200
    upload = client.post(
        reverse("kyc_api:documents"),
        {"kind": "proof_of_address", "file": SimpleUploadedFile("bill.png", PNG)},
        format="multipart",
    )
    assert upload.status_code == 201

    resubmit = client.post(reverse("kyc_api:submit"))
    assert resubmit.status_code == 200, resubmit.json()
    application.refresh_from_db()
    assert application.status == KycStatus.SUBMITTED
    assert application.city == "Hamburg"
    assert application.decision_reason == ""
    assert application.documents.count() == 3
    assert (
        AuditEvent.objects.filter(action="kyc.submitted", object_id=str(application.pk)).count()
        == 1
    )

    approve = _admin_action(staff_client, "approve_selected", application)
    assert ("success", "Approve: 1 application(s).") in _messages(approve)
    application.refresh_from_db()
    assert application.status == KycStatus.APPROVED


# --- invalid transitions ----------------------------------------------------------------------


def test_approving_a_draft_is_an_invalid_transition(staff_user: User) -> None:
    application = complete_application()
    with pytest.raises(InvalidTransition) as excinfo:
        kyc_application_approve(application_id=application.pk, reviewer=staff_user, ip=None)
    assert excinfo.value.code == "invalid_kyc_transition"
    assert excinfo.value.status_code == 409
    assert "from 'draft' to 'approved'" in excinfo.value.message
    application.refresh_from_db()
    assert application.status == KycStatus.DRAFT
    assert not AuditEvent.objects.filter(action="kyc.approved").exists()


def test_approving_a_draft_in_admin_reports_an_error(staff_client: Client) -> None:
    application = complete_application()
    response = _admin_action(staff_client, "approve_selected", application)
    assert (
        "error",
        f"Application #{application.pk}: A KYC application cannot move from 'draft' to "
        "'approved'. From 'draft' it can only move to: submitted.",
    ) in _messages(response)
    application.refresh_from_db()
    assert application.status == KycStatus.DRAFT


def test_submitting_twice_is_refused_with_409(verified_api_client: APIClient, user: User) -> None:
    complete_application(user=user)
    assert verified_api_client.post(reverse("kyc_api:submit")).status_code == 200

    again = verified_api_client.post(reverse("kyc_api:submit"))
    assert again.status_code == 409
    assert again.json() == {
        "code": "invalid_kyc_transition",
        "message": "A KYC application cannot move from 'submitted' to 'submitted'. From "
        "'submitted' it can only move to: approved, more_info_requested, rejected.",
    }
    assert AuditEvent.objects.filter(action="kyc.submitted").count() == 1


@pytest.mark.parametrize("final", ["approved", "rejected"])
def test_final_states_refuse_every_decision(staff_user: User, final: str) -> None:
    application = complete_application(submitted=True)
    if final == "approved":
        kyc_application_approve(application_id=application.pk, reviewer=staff_user, ip=None)
    else:
        kyc_application_reject(
            application_id=application.pk, reviewer=staff_user, reason="No.", ip=None
        )

    for attempt in (
        lambda: kyc_application_approve(
            application_id=application.pk, reviewer=staff_user, ip=None
        ),
        lambda: kyc_application_reject(
            application_id=application.pk, reviewer=staff_user, reason="x", ip=None
        ),
        lambda: kyc_application_request_info(
            application_id=application.pk, reviewer=staff_user, message="x", ip=None
        ),
        lambda: kyc_application_submit(user=application.user, ip=None),
    ):
        with pytest.raises(InvalidTransition) as excinfo:
            attempt()
        assert excinfo.value.code == "invalid_kyc_transition"
        assert f"'{final}' is a final state" in excinfo.value.message


def test_non_staff_cannot_approve(user: User) -> None:
    application = complete_application(submitted=True)
    with pytest.raises(Forbidden) as excinfo:
        kyc_application_approve(application_id=application.pk, reviewer=user, ip=None)
    assert excinfo.value.code == "reviewer_not_staff"
    application.refresh_from_db()
    assert application.status == KycStatus.SUBMITTED


def test_non_staff_cannot_reach_the_admin_review_page(verified_client: Client) -> None:
    application = complete_application(submitted=True)
    response = verified_client.post(_review_url(application, "approve"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    application.refresh_from_db()
    assert application.status == KycStatus.SUBMITTED


def test_staff_without_review_permission_cannot_decide(login_client) -> None:
    viewer = StaffFactory.create(is_superuser=False)
    viewer.user_permissions.add(Permission.objects.get(codename="view_kycapplication"))
    client = login_client(viewer, TOTPDeviceFactory.create(user=viewer))
    application = complete_application(submitted=True)

    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    assert "approve_selected" not in listing.content.decode()
    assert client.post(_review_url(application, "approve")).status_code == 403
    change = client.get(reverse("admin:kyc_kycapplication_change", args=[application.pk]))
    assert _review_url(application, "approve") not in change.content.decode()
    application.refresh_from_db()
    assert application.status == KycStatus.SUBMITTED


def test_staff_cannot_approve_their_own_application(staff_client: Client, staff_user: User) -> None:
    application = complete_application(user=staff_user, submitted=True)

    with pytest.raises(Forbidden) as excinfo:
        kyc_application_approve(application_id=application.pk, reviewer=staff_user, ip=None)
    assert excinfo.value.code == "reviewer_is_applicant"

    response = _admin_action(staff_client, "approve_selected", application)
    assert (
        "error",
        f"Application #{application.pk}: You cannot review your own KYC application.",
    ) in _messages(response)
    application.refresh_from_db()
    assert application.status == KycStatus.SUBMITTED
    assert not AuditEvent.objects.filter(action="kyc.approved").exists()


def test_editing_after_approval_is_refused_with_409(
    verified_api_client: APIClient, user: User
) -> None:
    KycApplicationFactory.create(user=user, approved=True, legal_name="Original Name")

    response = verified_api_client.put(
        reverse("kyc_api:application"), {"legal_name": "Someone Else"}, format="json"
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "kyc_not_editable"
    assert "'approved'" in body["message"]

    upload = verified_api_client.post(
        reverse("kyc_api:documents"),
        {"kind": "identity_document", "file": SimpleUploadedFile("p.pdf", PDF)},
        format="multipart",
    )
    assert upload.status_code == 409
    assert upload.json()["code"] == "kyc_not_editable"
    assert KycApplication.objects.get(user=user).legal_name == "Original Name"


# --- submission preconditions -------------------------------------------------------------------


def test_submission_requires_every_field_and_both_documents(
    verified_api_client: APIClient, user: User
) -> None:
    KycApplicationFactory.create(user=user, tax_id="", city="")

    response = verified_api_client.post(reverse("kyc_api:submit"))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "kyc_incomplete"
    assert set(body["fields"]) == {"city", "tax_id", "documents"}
    assert body["fields"]["documents"] == [
        "Upload at least one identity document.",
        "Upload at least one proof of address.",
    ]
    assert "Still needed: city, tax id, documents." in body["message"]
    assert KycApplication.objects.get(user=user).status == KycStatus.DRAFT


def test_submission_without_any_application_is_404(verified_api_client: APIClient) -> None:
    response = verified_api_client.post(reverse("kyc_api:submit"))
    assert response.status_code == 404
    assert response.json()["code"] == "kyc_application_not_found"


def test_submission_requires_a_verified_email(login_client) -> None:
    applicant = UserFactory.create(email_verified_at=None)
    complete_application(user=applicant)
    client = login_client(applicant, TOTPDeviceFactory.create(user=applicant), api=True)

    response = client.post(reverse("kyc_api:submit"))
    assert response.status_code == 403
    assert response.json()["code"] == "email_not_verified"
    with pytest.raises(Forbidden):
        kyc_application_submit(user=applicant, ip=None)
    assert KycApplication.objects.get(user=applicant).status == KycStatus.DRAFT


def _years_ago(years: int) -> dt.date:
    today = timezone.localdate()
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def test_applicant_must_be_an_adult(user: User) -> None:
    eighteen = _years_ago(18)
    seventeen = eighteen + dt.timedelta(days=1)
    with pytest.raises(InvalidInput) as excinfo:
        kyc_application_save_draft(user=user, data={"date_of_birth": seventeen})
    assert excinfo.value.fields["date_of_birth"] == [
        "You must be at least 18 years old to open an account."
    ]
    application = kyc_application_save_draft(user=user, data={"date_of_birth": eighteen})
    assert application.date_of_birth == eighteen


def test_submission_rechecks_age_of_old_drafts(user: User) -> None:
    too_young = timezone.localdate() - dt.timedelta(days=365 * 10)
    # Written directly: the service refuses it, which is the point being tested.
    complete_application(user=user, date_of_birth=too_young)
    with pytest.raises(InvalidInput) as excinfo:
        kyc_application_submit(user=user, ip=None)
    assert "date_of_birth" in excinfo.value.fields
