from django.urls import path

from apps.ledger import apis

app_name = "ledger_api"

urlpatterns = [
    path("accounts/", apis.CashAccountsApi.as_view(), name="accounts"),
    path("activities/cash/", apis.CashActivityApi.as_view(), name="cash-activity"),
]
