from collections.abc import Sequence

from django.db.models import QuerySet
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import ApiToken, User, UserSession
from apps.accounts.tokens import hashes_equal, token_hash, token_lookup_prefix


def user_has_confirmed_totp(*, user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def user_totp_devices(*, user: User) -> QuerySet[TOTPDevice]:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id")


def user_backup_codes_remaining(*, user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def user_sessions(*, user: User) -> Sequence[UserSession]:
    return list(UserSession.objects.filter(user=user).order_by("-last_seen_at"))


def user_api_tokens(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def api_token_by_raw(*, raw: str) -> ApiToken | None:
    """Find the token row for a presented secret; None if it is malformed or unknown."""
    if token_lookup_prefix(raw) is None:
        return None
    digest = token_hash(raw)
    token = ApiToken.objects.select_related("user").filter(key_hash=digest).first()
    if token is None or not hashes_equal(token.key_hash, digest):
        return None
    return token
