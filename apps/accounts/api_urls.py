from django.urls import path

from apps.accounts import apis

app_name = "accounts_api"

urlpatterns = [
    path("auth/login/", apis.ApiLoginView.as_view(), name="login"),
    path("auth/tokens/", apis.TokenListCreateView.as_view(), name="tokens"),
    path("auth/tokens/<int:token_id>/", apis.TokenRevokeView.as_view(), name="token-revoke"),
    path("me/", apis.MeView.as_view(), name="me"),
]
