from django.urls import path

from apps.funding import apis

app_name = "funding_api"

urlpatterns = [
    path("deposits/", apis.DepositListCreateApi.as_view(), name="deposits"),
    path("deposits/<int:deposit_id>/", apis.DepositDetailApi.as_view(), name="deposit"),
    path("withdrawals/", apis.WithdrawalListCreateApi.as_view(), name="withdrawals"),
    path("withdrawals/<int:withdrawal_id>/", apis.WithdrawalDetailApi.as_view(), name="withdrawal"),
    path(
        "withdrawals/<int:withdrawal_id>/cancel/",
        apis.WithdrawalCancelApi.as_view(),
        name="withdrawal-cancel",
    ),
    path("bank-accounts/", apis.BankAccountListCreateApi.as_view(), name="bank-accounts"),
    path(
        "bank-accounts/<int:bank_account_id>/",
        apis.BankAccountDetailApi.as_view(),
        name="bank-account",
    ),
]
