"""REST API for the applicant (mobile apps). Thin: parse, call one service or selector, serialise.

Errors are raised as `DomainError`s and rendered as {"code", "message", "fields"} by the project's
exception handler.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.common.errors import Forbidden
from apps.common.http import client_ip
from apps.kyc.models import KycApplication, KycDocument, KycDocumentKind, KycStatus
from apps.kyc.selectors import kyc_application_for, kyc_documents_for
from apps.kyc.services import (
    kyc_application_save_draft,
    kyc_application_submit,
    kyc_document_upload,
)
from apps.kyc.transitions import is_editable

# A raw schema because a serializer cannot declare a field called "fields".
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


class DocumentOutputSerializer(serializers.ModelSerializer[KycDocument]):
    class Meta:
        model = KycDocument
        fields = ("id", "kind", "original_name", "content_type", "size", "sha256", "uploaded_at")
        read_only_fields = fields


class ApplicationOutputSerializer(serializers.ModelSerializer[KycApplication]):
    id = serializers.IntegerField(allow_null=True, read_only=True)
    editable = serializers.SerializerMethodField()
    documents = serializers.SerializerMethodField()

    class Meta:
        model = KycApplication
        fields = (
            "id",
            "status",
            "decision_reason",
            "editable",
            "legal_name",
            "date_of_birth",
            "address_line1",
            "address_line2",
            "city",
            "postal_code",
            "country",
            "tax_id",
            "submitted_at",
            "reviewed_at",
            "documents",
        )
        read_only_fields = fields

    def get_editable(self, application: KycApplication) -> bool:
        return is_editable(application.status)

    @extend_schema_field(DocumentOutputSerializer(many=True))
    def get_documents(self, application: KycApplication) -> list[dict[str, Any]]:
        documents = kyc_documents_for(application=application)
        return list(DocumentOutputSerializer(documents, many=True).data)


class ApplicationInputSerializer(serializers.Serializer[Any]):
    """Every field is optional: a draft may be saved piecemeal. Omitted fields keep their value;
    an empty string (or null date) clears one. Country and age rules are checked by the service."""

    legal_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    date_of_birth = serializers.DateField(required=False, allow_null=True)
    address_line1 = serializers.CharField(max_length=200, required=False, allow_blank=True)
    address_line2 = serializers.CharField(max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True)
    country = serializers.CharField(
        max_length=2, required=False, allow_blank=True, help_text="ISO 3166-1 alpha-2, e.g. DE."
    )
    tax_id = serializers.CharField(max_length=50, required=False, allow_blank=True)


class DocumentInputSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=KycDocumentKind.choices)
    # Emptiness, size and type are judged by the service so the API and the web page agree.
    file = serializers.FileField(allow_empty_file=True)


def _request_user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):
        raise Forbidden("Sign in first.", code="not_authenticated")
    return user


def _application_or_blank(user: User) -> KycApplication:
    # An unsaved instance renders as an empty draft, so clients need no special "none yet" case.
    return kyc_application_for(user=user) or KycApplication(user=user, status=KycStatus.DRAFT)


_ERRORS = {
    400: OpenApiResponse(ERROR_SCHEMA, description="Invalid input"),
    403: OpenApiResponse(ERROR_SCHEMA, description="Not allowed"),
    404: OpenApiResponse(ERROR_SCHEMA, description="Not found"),
    409: OpenApiResponse(ERROR_SCHEMA, description="Not possible in the current state"),
}


class KycApplicationApi(APIView):
    @extend_schema(
        operation_id="kyc_application_retrieve",
        summary="The caller's KYC application (an empty draft if none was started)",
        responses={200: ApplicationOutputSerializer},
    )
    def get(self, request: Request) -> Response:
        application = _application_or_blank(_request_user(request))
        return Response(ApplicationOutputSerializer(application).data)

    @extend_schema(
        operation_id="kyc_application_save_draft",
        summary="Save personal details (allowed in draft or when more information is requested)",
        request=ApplicationInputSerializer,
        responses={200: ApplicationOutputSerializer, **_ERRORS},
    )
    def put(self, request: Request) -> Response:
        serializer = ApplicationInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        application = kyc_application_save_draft(
            user=_request_user(request), data=serializer.validated_data, ip=client_ip(request)
        )
        return Response(ApplicationOutputSerializer(application).data)


class KycDocumentsApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="kyc_documents_list",
        summary="Documents attached to the caller's application",
        responses={200: DocumentOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        application = kyc_application_for(user=_request_user(request))
        documents = kyc_documents_for(application=application)
        return Response(DocumentOutputSerializer(documents, many=True).data)

    @extend_schema(
        operation_id="kyc_documents_upload",
        summary="Upload a document (PDF, JPEG or PNG; type detected from content)",
        request={"multipart/form-data": DocumentInputSerializer},
        responses={201: DocumentOutputSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = DocumentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = kyc_document_upload(
            user=_request_user(request),
            kind=serializer.validated_data["kind"],
            uploaded_file=serializer.validated_data["file"],
            ip=client_ip(request),
        )
        return Response(DocumentOutputSerializer(document).data, status=status.HTTP_201_CREATED)


class KycSubmitApi(APIView):
    @extend_schema(
        operation_id="kyc_application_submit",
        summary="Submit the application for review",
        request=None,
        responses={200: ApplicationOutputSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        application = kyc_application_submit(user=_request_user(request), ip=client_ip(request))
        return Response(ApplicationOutputSerializer(application).data)
