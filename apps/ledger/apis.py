"""REST API: the caller's cash accounts and cash activity. Thin: parse, call a selector,
serialise. Money is always a decimal string."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request

from apps.accounts.models import User
from apps.common.errors import Forbidden
from apps.ledger.fields import MoneyField
from apps.ledger.models import CashAccount, PostingLine
from apps.ledger.pagination import NewestFirstCursorPagination
from apps.ledger.selectors import cash_accounts_for, cash_activity

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
ERRORS = {
    400: OpenApiResponse(ERROR_SCHEMA, description="Invalid input"),
    403: OpenApiResponse(ERROR_SCHEMA, description="Not allowed (e.g. KYC, OTP step-up)"),
    404: OpenApiResponse(ERROR_SCHEMA, description="Not found"),
    409: OpenApiResponse(ERROR_SCHEMA, description="Not possible now (e.g. insufficient funds)"),
}


def request_user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):
        raise Forbidden("Sign in first.", code="not_authenticated")
    return user


class CashAccountOutput(serializers.ModelSerializer[CashAccount]):
    balance = MoneyField(read_only=True)
    held = MoneyField(read_only=True, help_text="Reserved for open buy orders and withdrawals.")
    available = MoneyField(read_only=True, help_text="balance - held")

    class Meta:
        model = CashAccount
        fields = (
            "id",
            "currency",
            "balance",
            "held",
            "available",
            "trading_blocked",
            "trading_blocked_reason",
            "short_selling_enabled",
            "created_at",
        )
        read_only_fields = fields


class CashActivityOutput(serializers.ModelSerializer[PostingLine]):
    posting_id = serializers.IntegerField(read_only=True)
    account_id = serializers.IntegerField(read_only=True)
    kind = serializers.CharField(source="posting.kind", read_only=True)
    reference_type = serializers.CharField(source="posting.reference_type", read_only=True)
    reference_id = serializers.CharField(source="posting.reference_id", read_only=True)
    memo = serializers.CharField(source="posting.memo", read_only=True)
    amount = MoneyField(read_only=True, help_text="Signed: positive = money in, negative = out.")
    balance_after = MoneyField(read_only=True, help_text="The account's balance after this line.")
    created_at = serializers.DateTimeField(source="posting.created_at", read_only=True)

    class Meta:
        model = PostingLine
        fields = (
            "id",
            "posting_id",
            "account_id",
            "kind",
            "reference_type",
            "reference_id",
            "memo",
            "currency",
            "amount",
            "balance_after",
            "created_at",
        )
        read_only_fields = fields


class CashActivityQuery(serializers.Serializer[Any]):
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
    since = serializers.DateTimeField(required=False, help_text="Inclusive.")
    until = serializers.DateTimeField(required=False, help_text="Exclusive.")


class CashAccountsApi(generics.ListAPIView[CashAccount]):
    serializer_class = CashAccountOutput
    pagination_class = None

    @extend_schema(
        operation_id="cash_accounts_list",
        summary="The caller's cash accounts with balance, held and available amounts",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[CashAccount]:
        return cash_accounts_for(user=request_user(self.request))


class CashActivityApi(generics.ListAPIView[PostingLine]):
    serializer_class = CashActivityOutput
    pagination_class = NewestFirstCursorPagination

    @extend_schema(
        operation_id="cash_activity_list",
        summary="Cash movements, newest first, with the running balance after each",
        parameters=[
            OpenApiParameter("currency", str, description="ISO 4217 code, e.g. USD"),
            OpenApiParameter("since", str, description="ISO 8601 date-time, inclusive"),
            OpenApiParameter("until", str, description="ISO 8601 date-time, exclusive"),
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[PostingLine]:
        query = CashActivityQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return cash_activity(user=request_user(self.request), **query.validated_data)
