"""REST API for deposits, withdrawals and bank accounts (mobile apps). Thin: parse, call one
service or selector, serialise. Money is a decimal string; errors are {"code", "message",
"fields"?}; another user's object is `404 not_found`."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.http import client_ip
from apps.funding import selectors, services
from apps.funding.models import BankAccount, Deposit, Withdrawal
from apps.ledger.apis import ERRORS, request_user
from apps.ledger.fields import MoneyField, PositiveMoneyField
from apps.ledger.pagination import NewestFirstCursorPagination

# --- bank accounts ---------------------------------------------------------------------------


class BankAccountOutput(serializers.ModelSerializer[BankAccount]):
    account_number = serializers.CharField(source="masked_number", read_only=True)

    class Meta:
        model = BankAccount
        fields = (
            "id",
            "holder_name",
            "bank_name",
            "account_number",
            "currency",
            "status",
            "whitelisted_at",
            "created_at",
        )
        read_only_fields = fields


class BankAccountInput(serializers.Serializer[Any]):
    holder_name = serializers.CharField(max_length=140)
    bank_name = serializers.CharField(max_length=140)
    account_number = serializers.CharField(max_length=64, help_text="Account number or IBAN.")
    currency = serializers.CharField(max_length=3)
    otp = serializers.CharField(
        max_length=16, allow_blank=True, help_text="A fresh code from your authenticator app."
    )


class BankAccountListCreateApi(generics.ListAPIView[BankAccount]):
    serializer_class = BankAccountOutput
    pagination_class = None

    @extend_schema(operation_id="bank_accounts_list", summary="The caller's bank accounts")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[BankAccount]:
        return selectors.bank_accounts_for(user=request_user(self.request))

    @extend_schema(
        operation_id="bank_accounts_create",
        summary="Add a payout bank account (OTP step-up); staff verify it before withdrawals",
        request=BankAccountInput,
        responses={201: BankAccountOutput, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = BankAccountInput(data=request.data)
        data.is_valid(raise_exception=True)
        bank_account = services.bank_account_add(
            user=request_user(request), ip=client_ip(request._request), **data.validated_data
        )
        return Response(BankAccountOutput(bank_account).data, status=status.HTTP_201_CREATED)


class BankAccountDetailApi(APIView):
    @extend_schema(
        operation_id="bank_accounts_retrieve",
        responses={200: BankAccountOutput, 404: ERRORS[404]},
    )
    def get(self, request: Request, bank_account_id: int) -> Response:
        bank_account = selectors.bank_account_get_for(
            user=request_user(request), bank_account_id=bank_account_id
        )
        return Response(BankAccountOutput(bank_account).data)

    @extend_schema(
        operation_id="bank_accounts_remove",
        summary="Remove a bank account (withdrawals to it that have not started will fail)",
        responses={200: BankAccountOutput, 404: ERRORS[404]},
    )
    def delete(self, request: Request, bank_account_id: int) -> Response:
        user = request_user(request)
        selectors.bank_account_get_for(user=user, bank_account_id=bank_account_id)
        bank_account = services.bank_account_remove(
            bank_account_id=bank_account_id, actor=user, ip=client_ip(request._request)
        )
        return Response(BankAccountOutput(bank_account).data)


# --- deposits --------------------------------------------------------------------------------


class DepositOutput(serializers.ModelSerializer[Deposit]):
    amount = MoneyField(read_only=True)

    class Meta:
        model = Deposit
        fields = (
            "id",
            "amount",
            "currency",
            "status",
            "gateway",
            "gateway_reference",
            "idempotency_key",
            "failure_reason",
            "created_at",
            "completed_at",
        )
        read_only_fields = fields


class DepositInput(serializers.Serializer[Any]):
    amount = PositiveMoneyField()
    currency = serializers.CharField(max_length=3)
    idempotency_key = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="Repeat a request with the same key to get the same deposit back.",
    )


class DepositListCreateApi(generics.ListAPIView[Deposit]):
    serializer_class = DepositOutput
    pagination_class = NewestFirstCursorPagination

    @extend_schema(operation_id="deposits_list", summary="The caller's deposits, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Deposit]:
        return selectors.deposits_for(user=request_user(self.request))

    @extend_schema(
        operation_id="deposits_create",
        summary="Deposit money (charged through the payment gateway in the background)",
        request=DepositInput,
        responses={201: DepositOutput, 200: DepositOutput, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = DepositInput(data=request.data)
        data.is_valid(raise_exception=True)
        deposit, created = services.deposit_request(
            user=request_user(request), ip=client_ip(request._request), **data.validated_data
        )
        deposit.refresh_from_db()  # in eager mode the gateway step already ran
        return Response(
            DepositOutput(deposit).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class DepositDetailApi(APIView):
    @extend_schema(
        operation_id="deposits_retrieve", responses={200: DepositOutput, 404: ERRORS[404]}
    )
    def get(self, request: Request, deposit_id: int) -> Response:
        deposit = selectors.deposit_get_for(user=request_user(request), deposit_id=deposit_id)
        return Response(DepositOutput(deposit).data)


# --- withdrawals -----------------------------------------------------------------------------


class WithdrawalOutput(serializers.ModelSerializer[Withdrawal]):
    amount = MoneyField(read_only=True)
    bank_account = BankAccountOutput(read_only=True)
    approvals_required = serializers.IntegerField(source="requires_approvals", read_only=True)

    class Meta:
        model = Withdrawal
        fields = (
            "id",
            "amount",
            "currency",
            "status",
            "bank_account",
            "approvals_required",
            "gateway_reference",
            "failure_reason",
            "created_at",
            "completed_at",
        )
        read_only_fields = fields


class WithdrawalInput(serializers.Serializer[Any]):
    amount = PositiveMoneyField()
    bank_account_id = serializers.IntegerField(min_value=1)
    otp = serializers.CharField(
        max_length=16, allow_blank=True, help_text="A fresh code from your authenticator app."
    )


class WithdrawalListCreateApi(generics.ListAPIView[Withdrawal]):
    serializer_class = WithdrawalOutput
    pagination_class = NewestFirstCursorPagination

    @extend_schema(operation_id="withdrawals_list", summary="The caller's withdrawals")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Withdrawal]:
        return selectors.withdrawals_for(user=request_user(self.request))

    @extend_schema(
        operation_id="withdrawals_create",
        summary="Withdraw to a whitelisted bank account (KYC approved, OTP step-up)",
        request=WithdrawalInput,
        responses={201: WithdrawalOutput, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = WithdrawalInput(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.withdrawal_request(
            user=request_user(request), ip=client_ip(request._request), **data.validated_data
        )
        withdrawal.refresh_from_db()  # in eager mode the payout step already ran
        return Response(WithdrawalOutput(withdrawal).data, status=status.HTTP_201_CREATED)


class WithdrawalDetailApi(APIView):
    @extend_schema(
        operation_id="withdrawals_retrieve", responses={200: WithdrawalOutput, 404: ERRORS[404]}
    )
    def get(self, request: Request, withdrawal_id: int) -> Response:
        withdrawal = selectors.withdrawal_get_for(
            user=request_user(request), withdrawal_id=withdrawal_id
        )
        return Response(WithdrawalOutput(withdrawal).data)


class WithdrawalCancelApi(APIView):
    @extend_schema(
        operation_id="withdrawals_cancel",
        summary="Cancel a withdrawal that is still waiting for approval (funds are released)",
        request=None,
        responses={200: WithdrawalOutput, **ERRORS},
    )
    def post(self, request: Request, withdrawal_id: int) -> Response:
        withdrawal = services.withdrawal_cancel(
            user=request_user(request),
            withdrawal_id=withdrawal_id,
            ip=client_ip(request._request),
        )
        return Response(WithdrawalOutput(withdrawal).data)
