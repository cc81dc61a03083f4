"""Document uploads: only real PDF/JPEG/PNG within the size limit are stored; anything else is
refused with a clear message and leaves no file and no row behind."""

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.common.errors import InvalidInput, InvalidTransition
from apps.kyc.models import KycApplication, KycDocument
from apps.kyc.services import kyc_document_upload
from apps.kyc.uploads import format_megabytes, inspect_upload
from tests.integration.kyc.factories import KycApplicationFactory
from tests.integration.kyc.samples import GIF, HTML, JPEG, PDF, PNG, TEXT

pytestmark = pytest.mark.django_db

DOCUMENTS_URL = reverse("kyc_api:documents")
SMALL_LIMIT = 200 * 1024


def _upload(client: APIClient, name: str, content: bytes, *, kind: str = "identity_document"):
    upload = SimpleUploadedFile(name, content, content_type="application/pdf")
    return client.post(DOCUMENTS_URL, {"kind": kind, "file": upload}, format="multipart")


def _assert_nothing_stored(media_files: Callable[[], list[Path]]) -> None:
    assert media_files() == []
    assert KycDocument.objects.count() == 0
    assert KycApplication.objects.count() == 0
    assert not AuditEvent.objects.filter(action="kyc.document_uploaded").exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("passport.pdf", TEXT, id="text-named-pdf"),
        pytest.param("photo.png", GIF, id="gif-named-png"),
        pytest.param("photo.jpg", HTML, id="html-named-jpg"),
        pytest.param("passport.pdf", b"\x00" * 32, id="zero-bytes"),
    ],
)
def test_api_refuses_wrong_type_and_stores_nothing(
    verified_api_client: APIClient, media_files: Callable[[], list[Path]], name: str, content: bytes
) -> None:
    response = _upload(verified_api_client, name, content)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unsupported_file_type"
    assert body["message"] == "Unsupported file type. Allowed types: PDF, JPEG or PNG."
    assert body["fields"]["file"]
    _assert_nothing_stored(media_files)


def test_api_refuses_empty_file_and_stores_nothing(
    verified_api_client: APIClient, media_files: Callable[[], list[Path]]
) -> None:
    response = _upload(verified_api_client, "passport.pdf", b"")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "empty_file"
    assert "The file is empty" in body["message"]
    _assert_nothing_stored(media_files)


def test_api_refuses_too_large_file_and_stores_nothing(
    verified_api_client: APIClient,
    media_files: Callable[[], list[Path]],
    settings: Settings,
) -> None:
    settings.KYC_DOCUMENT_MAX_BYTES = SMALL_LIMIT
    response = _upload(verified_api_client, "passport.pdf", PDF + b"0" * SMALL_LIMIT)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "file_too_large"
    assert body["message"] == "The file is too large. The maximum size is 0.2 MB."
    _assert_nothing_stored(media_files)


def test_file_exactly_at_the_limit_is_accepted(
    verified_api_client: APIClient, settings: Settings
) -> None:
    settings.KYC_DOCUMENT_MAX_BYTES = SMALL_LIMIT
    content = PDF + b"0" * (SMALL_LIMIT - len(PDF))
    response = _upload(verified_api_client, "passport.pdf", content)
    assert response.status_code == 201, response.json()
    assert response.json()["size"] == SMALL_LIMIT


def test_limit_message_uses_megabytes_for_the_default() -> None:
    assert format_megabytes(10 * 1024 * 1024) == "10 MB"
    assert format_megabytes(int(2.5 * 1024 * 1024)) == "2.5 MB"


def test_size_is_checked_before_the_file_is_read(settings: Settings) -> None:
    settings.KYC_DOCUMENT_MAX_BYTES = 1024

    class UnreadableUpload(SimpleUploadedFile):
        def read(self, *args: object, **kwargs: object) -> bytes:
            raise AssertionError("an oversized upload must not be read")

        def chunks(self, *args: object, **kwargs: object):
            raise AssertionError("an oversized upload must not be read")

    upload = UnreadableUpload("big.pdf", PDF + b"0" * 4096)
    with pytest.raises(InvalidInput) as excinfo:
        inspect_upload(uploaded_file=upload)
    assert excinfo.value.code == "file_too_large"


@pytest.mark.parametrize(
    ("name", "content", "content_type", "extension"),
    [
        pytest.param("scan.pdf", PDF, "application/pdf", "pdf", id="pdf"),
        pytest.param("photo.png", PNG, "image/png", "png", id="png"),
        pytest.param("photo.jpeg", JPEG, "image/jpeg", "jpg", id="jpeg"),
        # The name lies; the bytes decide, and the stored file gets the real extension.
        pytest.param("passport.pdf", PNG, "image/png", "png", id="png-named-pdf"),
    ],
)
def test_api_accepts_real_documents_with_sniffed_type(
    verified_api_client: APIClient,
    user: User,
    media_files: Callable[[], list[Path]],
    kyc_media_root: Path,
    name: str,
    content: bytes,
    content_type: str,
    extension: str,
) -> None:
    response = _upload(verified_api_client, name, content)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["content_type"] == content_type
    assert body["original_name"] == name
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()

    document = KycDocument.objects.get(pk=body["id"])
    application = KycApplication.objects.get(user=user)
    assert document.application == application
    assert application.status == "draft"
    # Unguessable storage key that ignores the client's file name.
    assert re.fullmatch(rf"kyc/{application.pk}/[0-9a-f]{{32}}\.{extension}", document.file.name)
    assert media_files() == [kyc_media_root / document.file.name]
    assert (kyc_media_root / document.file.name).read_bytes() == content

    event = AuditEvent.objects.get(action="kyc.document_uploaded")
    assert event.actor_id == user.pk
    assert event.object_id == str(application.pk)
    assert event.after is not None
    assert event.after["sha256"] == body["sha256"]


def test_client_supplied_content_type_is_ignored(verified_api_client: APIClient) -> None:
    upload = SimpleUploadedFile("id.png", PNG, content_type="application/x-msdownload")
    response = verified_api_client.post(
        DOCUMENTS_URL, {"kind": "identity_document", "file": upload}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json()["content_type"] == "image/png"


def test_unknown_document_kind_is_refused(
    verified_api_client: APIClient, media_files: Callable[[], list[Path]]
) -> None:
    response = _upload(verified_api_client, "scan.pdf", PDF, kind="selfie")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert "kind" in response.json()["fields"]
    _assert_nothing_stored(media_files)


def test_file_is_removed_when_the_database_write_fails(
    user: User, media_files: Callable[[], list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_audit(**kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr("apps.kyc.services.audit_record", broken_audit)

    with pytest.raises(RuntimeError):
        kyc_document_upload(
            user=user,
            kind="identity_document",
            uploaded_file=SimpleUploadedFile("scan.pdf", PDF),
            ip=None,
        )

    _assert_nothing_stored(media_files)


def test_upload_refused_once_submitted_and_nothing_stored(
    user: User, media_files: Callable[[], list[Path]]
) -> None:
    KycApplicationFactory.create(user=user, submitted=True)

    with pytest.raises(InvalidTransition) as excinfo:
        kyc_document_upload(
            user=user,
            kind="proof_of_address",
            uploaded_file=SimpleUploadedFile("bill.pdf", PDF),
            ip="127.0.0.1",
        )

    assert excinfo.value.code == "kyc_not_editable"
    assert "submitted" in excinfo.value.message
    assert media_files() == []
    assert KycDocument.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        pytest.param("passport.pdf", TEXT, "Unsupported file type", id="wrong-type"),
        pytest.param("passport.pdf", b"", "The file is empty", id="empty"),
    ],
)
def test_web_form_shows_the_error_next_to_the_file_field(
    verified_client, media_files: Callable[[], list[Path]], name: str, content: bytes, expected: str
) -> None:
    response = verified_client.post(
        reverse("kyc:document_upload"),
        {"kind": "identity_document", "file": SimpleUploadedFile(name, content)},
    )

    assert response.status_code == 400
    assert expected in response.content.decode()
    assert response.context["upload_form"].errors["file"][0].startswith(expected)
    _assert_nothing_stored(media_files)


def test_web_form_too_large_message_states_the_limit(
    verified_client, media_files: Callable[[], list[Path]], settings: Settings
) -> None:
    settings.KYC_DOCUMENT_MAX_BYTES = SMALL_LIMIT
    response = verified_client.post(
        reverse("kyc:document_upload"),
        {
            "kind": "identity_document",
            "file": SimpleUploadedFile("a.pdf", PDF + b"0" * SMALL_LIMIT),
        },
    )
    assert response.status_code == 400
    assert "The maximum size is 0.2 MB." in response.content.decode()
    _assert_nothing_stored(media_files)
