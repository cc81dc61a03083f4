"""REST endpoints for the mobile apps: token login, profile, tokens, sessions."""

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import selectors, services
from apps.accounts.models import ApiToken
from apps.common.errors import Forbidden


class TokenOutput(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ("id", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at")


class TokenCreatedOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    token = serializers.CharField(help_text="The secret. Shown only in this response.")


class ApiLoginInput(serializers.Serializer[Any]):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False)
    otp = serializers.CharField(max_length=16)
    token_name = serializers.CharField(max_length=80, default="Mobile app")


class ApiLoginView(APIView):
    """Exchange email + password + authenticator code for an API token (one step for apps)."""

    mfa_exempt = True
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=ApiLoginInput, responses={201: TokenCreatedOutput})
    def post(self, request: Request) -> Response:
        data = ApiLoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.auth_api_login(request=request._request, **data.validated_data)
        body = TokenOutput(token).data | {"token": raw}
        return Response(body, status=status.HTTP_201_CREATED)


class MeView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "id": serializers.IntegerField(),
                "email": serializers.EmailField(),
                "full_name": serializers.CharField(),
                "email_verified": serializers.BooleanField(),
                "can_trade": serializers.BooleanField(),
                "trading_block_reason": serializers.CharField(allow_null=True),
            },
        )
    )
    def get(self, request: Request) -> Response:
        from apps.kyc.selectors import trading_eligibility

        user: Any = request.user
        eligibility = trading_eligibility(user=user)
        return Response(
            {
                "id": user.pk,
                "email": user.email,
                "full_name": user.full_name,
                "email_verified": user.email_verified,
                "can_trade": eligibility.allowed,
                "trading_block_reason": None if eligibility.allowed else eligibility.code,
            }
        )


class TokenCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=80)
    ttl_days = serializers.IntegerField(min_value=1, max_value=365, required=False)


class TokenListCreateView(APIView):
    @extend_schema(responses=TokenOutput(many=True))
    def get(self, request: Request) -> Response:
        tokens = selectors.user_api_tokens(user=request.user)  # type: ignore[arg-type]
        return Response(TokenOutput(tokens, many=True).data)

    @extend_schema(request=TokenCreateInput, responses={201: TokenCreatedOutput})
    def post(self, request: Request) -> Response:
        if not isinstance(request.successful_authenticator, SessionAuthentication):
            raise Forbidden(
                "API tokens can only be created from a signed-in, OTP-verified session.",
                code="session_required",
            )
        data = TokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.api_token_create(request=request._request, **data.validated_data)
        return Response(TokenOutput(token).data | {"token": raw}, status=status.HTTP_201_CREATED)


class TokenRevokeView(APIView):
    @extend_schema(request=None, responses={200: TokenOutput})
    def delete(self, request: Request, token_id: int) -> Response:
        token = services.api_token_revoke(request=request._request, token_id=token_id)
        return Response(TokenOutput(token).data)
