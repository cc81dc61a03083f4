"""The applicant's REST API: shapes, validation and the {code, message} error contract."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.kyc.models import KycApplication
from tests.factories import TOTPDeviceFactory, UserFactory
from tests.integration.kyc.factories import KycDocumentFactory, complete_application

pytestmark = pytest.mark.django_db


def test_get_before_starting_returns_an_empty_editable_draft(
    verified_api_client: APIClient,
) -> None:
    response = verified_api_client.get(reverse("kyc_api:application"))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] is None
    assert body["status"] == "draft"
    assert body["editable"] is True
    assert body["legal_name"] == ""
    assert body["documents"] == []
    assert KycApplication.objects.count() == 0


def test_put_saves_a_partial_draft_and_keeps_other_fields(
    verified_api_client: APIClient, user: User
) -> None:
    url = reverse("kyc_api:application")
    first = verified_api_client.put(
        url, {"legal_name": "  Marie   Curie ", "country": "fr"}, format="json"
    )
    assert first.status_code == 200
    assert first.json()["legal_name"] == "Marie Curie"
    second = verified_api_client.put(url, {"city": "Paris"}, format="json")
    assert second.status_code == 200
    application = KycApplication.objects.get(user=user)
    assert (application.legal_name, application.country, application.city) == (
        "Marie Curie",
        "FR",
        "Paris",
    )
    assert application.status == "draft"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"country": "XX"}, "country", id="unknown-country"),
        pytest.param({"country": "GER"}, "country", id="alpha-3"),
        pytest.param({"date_of_birth": "2020-01-01"}, "date_of_birth", id="minor"),
        pytest.param({"date_of_birth": "not-a-date"}, "date_of_birth", id="bad-date"),
        pytest.param({"legal_name": "x" * 201}, "legal_name", id="too-long"),
    ],
)
def test_invalid_draft_fields_get_a_field_error(
    verified_api_client: APIClient, payload: dict[str, str], field: str
) -> None:
    response = verified_api_client.put(reverse("kyc_api:application"), payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert list(body["fields"]) == [field]
    assert KycApplication.objects.count() == 0


def test_documents_list_shows_only_the_callers_documents(
    verified_api_client: APIClient, user: User
) -> None:
    mine = complete_application(user=user)
    KycDocumentFactory.create()  # someone else's

    response = verified_api_client.get(reverse("kyc_api:documents"))
    assert response.status_code == 200
    ids = [doc["id"] for doc in response.json()]
    assert ids == list(mine.documents.order_by("uploaded_at", "id").values_list("id", flat=True))
    assert set(response.json()[0]) == {
        "id",
        "kind",
        "original_name",
        "content_type",
        "size",
        "sha256",
        "uploaded_at",
    }
    # No storage path is ever exposed.
    assert "file" not in response.json()[0]


def test_api_requires_authentication_with_error_shape() -> None:
    response = APIClient().get(reverse("kyc_api:application"))
    assert response.status_code in (401, 403)
    body = response.json()
    assert set(body) >= {"code", "message"}
    assert body["code"] == "not_authenticated"


def test_api_requires_otp_verified_session(login_client) -> None:
    applicant = UserFactory.create()
    TOTPDeviceFactory.create(user=applicant)
    client = login_client(applicant, None, api=True)
    response = client.post(reverse("kyc_api:submit"))
    assert response.status_code == 403
    assert response.json()["code"] == "otp_required"


def test_schema_documents_the_kyc_endpoints(verified_api_client: APIClient) -> None:
    response = verified_api_client.get(reverse("api-schema"))
    assert response.status_code == 200
    schema = response.content.decode()
    for path in (
        "/api/v1/kyc/application/:",
        "/api/v1/kyc/application/documents/:",
        "/api/v1/kyc/application/submit/:",
    ):
        assert path in schema
    assert "multipart/form-data" in schema
