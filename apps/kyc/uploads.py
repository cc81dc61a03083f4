"""Validation of uploaded KYC documents, done entirely before anything is stored."""

import hashlib
import os
import unicodedata
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from apps.common.errors import InvalidInput
from apps.kyc.models import ALLOWED_DOCUMENT_TYPES

ALLOWED_TYPE_LABELS = "PDF, JPEG or PNG"
# filetype looks at no more than this many leading bytes.
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class InspectedUpload:
    content_type: str
    size: int
    sha256: str
    original_name: str


def max_document_bytes() -> int:
    # Read on every call so that an override (tests, env) applies without a restart.
    return int(settings.KYC_DOCUMENT_MAX_BYTES)


def format_megabytes(size: int) -> str:
    megabytes = size / (1024 * 1024)
    if megabytes >= 0.1:
        return f"{megabytes:.1f}".removesuffix(".0") + " MB"
    # Only tiny, test-style limits end up here; "0.0 MB" would be misleading.
    return f"{max(1, round(size / 1024))} KB"


def clean_original_name(name: str | None) -> str:
    """A display-safe version of the client's file name (base name only, no control characters)."""
    base = os.path.basename((name or "").replace("\\", "/"))
    printable = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    return printable.strip()[:255]


def inspect_upload(*, uploaded_file: UploadedFile) -> InspectedUpload:
    """Check size and real type, and hash the content. Raises `InvalidInput` on any problem.

    The size Django reports is checked before reading, so an oversized file is refused without
    being loaded into memory; the type comes from the file's leading bytes, never from the name or
    the client's Content-Type header.
    """
    limit = max_document_bytes()
    declared_size = uploaded_file.size or 0
    if declared_size == 0:
        raise _empty()
    if declared_size > limit:
        raise _too_large(limit)

    uploaded_file.seek(0)
    head = uploaded_file.read(_SNIFF_BYTES)
    guessed = filetype.guess(head) if head else None
    if guessed is None or guessed.mime not in ALLOWED_DOCUMENT_TYPES:
        raise InvalidInput(
            f"Unsupported file type. Allowed types: {ALLOWED_TYPE_LABELS}.",
            code="unsupported_file_type",
            fields={"file": [f"Unsupported file type. Allowed types: {ALLOWED_TYPE_LABELS}."]},
        )

    # Count while hashing: the reported size is what the upload handler saw, but a file object
    # handed in from elsewhere could be longer than it claims.
    digest = hashlib.sha256()
    actual_size = 0
    for chunk in uploaded_file.chunks():
        actual_size += len(chunk)
        if actual_size > limit:
            raise _too_large(limit)
        digest.update(chunk)
    uploaded_file.seek(0)
    if actual_size == 0:
        raise _empty()

    return InspectedUpload(
        content_type=guessed.mime,
        size=actual_size,
        sha256=digest.hexdigest(),
        original_name=clean_original_name(uploaded_file.name),
    )


def _empty() -> InvalidInput:
    message = f"The file is empty. Choose a {ALLOWED_TYPE_LABELS} file that contains the document."
    return InvalidInput(message, code="empty_file", fields={"file": [message]})


def _too_large(limit: int) -> InvalidInput:
    message = f"The file is too large. The maximum size is {format_megabytes(limit)}."
    return InvalidInput(message, code="file_too_large", fields={"file": [message]})
