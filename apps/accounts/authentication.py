from typing import Any

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from apps.accounts.models import ApiToken, User
from apps.accounts.selectors import api_token_by_raw
from apps.accounts.services import api_token_touch


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer brk_…` tokens for the mobile apps (stored hashed, expiring)."""

    keywords = (b"bearer", b"token")

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(
                "Malformed Authorization header; expected 'Bearer <token>'.",
                code="token_malformed",
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Malformed token.", code="token_malformed") from exc
        token = api_token_by_raw(raw=raw)
        if token is None:
            raise AuthenticationFailed("Invalid API token.", code="token_invalid")
        if token.revoked_at is not None:
            raise AuthenticationFailed("This API token has been revoked.", code="token_revoked")
        if token.expires_at <= timezone.now():
            raise AuthenticationFailed("This API token has expired.", code="token_expired")
        if not token.user.is_active:
            raise AuthenticationFailed("This account is disabled.", code="account_disabled")
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def is_token_request(request: Any) -> bool:
    return isinstance(getattr(request, "auth", None), ApiToken)
