"""Writes for users, authentication, MFA, sessions and API tokens.

Every security-relevant event is appended to the audit log inside the same transaction. Side
effects (emails) run after commit. Locks: `user_*` services lock the user row
(`select_for_update`) where they read-modify-write it; the audit chain lock is always last.
"""

import datetime as dt
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import ApiToken, User, UserSession
from apps.accounts.tokens import token_generate, token_hash
from apps.audit.services import audit_record
from apps.common.errors import DomainError, Forbidden, InvalidInput, NotFound
from apps.common.http import client_ip, user_agent

EMAIL_VERIFY_SALT = "accounts.email-verify"


class LoginFailed(DomainError):
    code = "invalid_credentials"
    status_code = 401


class LoginLockedOut(DomainError):
    code = "login_locked"
    status_code = 429


class OtpInvalid(DomainError):
    code = "otp_invalid"
    status_code = 400


def _request_user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise Forbidden("Sign in first.", code="not_authenticated")
    return user


# --- Sign-up and email verification ----------------------------------------------------------


def user_sign_up(
    *, email: str, password: str, full_name: str = "", request: HttpRequest | None = None
) -> User:
    """Create a trader account and send the email-verification link after commit."""
    email = User.objects.normalize_email(email.strip()).lower()
    if not email:
        raise InvalidInput("Enter your email address.", fields={"email": ["Required."]})
    if User.objects.filter(email__iexact=email).exists():
        raise InvalidInput(
            "An account with this email already exists.",
            code="email_taken",
            fields={"email": ["An account with this email already exists."]},
        )
    candidate = User(email=email, full_name=full_name.strip())
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InvalidInput(
            " ".join(exc.messages), code="weak_password", fields={"password": exc.messages}
        ) from exc
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
            audit_record(
                action="user.signed_up",
                actor=candidate,
                obj=candidate,
                after={"email": email},
                ip=client_ip(request),
            )
            transaction.on_commit(lambda: user_email_verification_send(user=candidate))
    except IntegrityError as exc:  # lost a race with a concurrent sign-up for the same email
        raise InvalidInput(
            "An account with this email already exists.", code="email_taken"
        ) from exc
    return candidate


def email_verification_token(*, user: User) -> str:
    return signing.dumps({"uid": user.pk, "email": user.email}, salt=EMAIL_VERIFY_SALT)


def user_email_verification_send(*, user: User) -> None:
    link = settings.SITE_URL.rstrip("/") + reverse(
        "accounts:verify-email", kwargs={"token": email_verification_token(user=user)}
    )
    send_mail(
        subject="Confirm your email address",
        message=(
            "Welcome to Brokerage.\n\nConfirm your email address by opening this link:\n"
            f"{link}\n\nIf you did not open an account, ignore this message."
        ),
        from_email=None,
        recipient_list=[user.email],
    )


def user_email_verify(*, token: str, request: HttpRequest | None = None) -> User:
    try:
        data = signing.loads(
            token, salt=EMAIL_VERIFY_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE_SECONDS
        )
    except signing.SignatureExpired as exc:
        raise InvalidInput(
            "This verification link has expired; request a new one.", code="link_expired"
        ) from exc
    except signing.BadSignature as exc:
        raise InvalidInput("This verification link is not valid.", code="link_invalid") from exc
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=data.get("uid")).first()
        if user is None or user.email != data.get("email"):
            raise InvalidInput("This verification link is not valid.", code="link_invalid")
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            audit_record(action="user.email_verified", actor=user, obj=user, ip=client_ip(request))
    return user


# --- Login, logout, sessions ----------------------------------------------------------------


def _session_register(*, request: HttpRequest, user: User) -> None:
    session: SessionBase = request.session
    if session.session_key is None:
        session.save()
    UserSession.objects.update_or_create(
        session_key=session.session_key,
        defaults={
            "user": user,
            "ip": client_ip(request),
            "user_agent": user_agent(request),
            "last_seen_at": timezone.now(),
        },
    )


def _session_rotate(*, request: HttpRequest) -> None:
    """New session id, same data: stops fixation across a privilege change (login, OTP)."""
    old_key = request.session.session_key
    request.session.cycle_key()
    if old_key:
        UserSession.objects.filter(session_key=old_key).update(
            session_key=request.session.session_key
        )


def auth_login(*, request: HttpRequest, email: str, password: str) -> User:
    """Check the password (throttled by django-axes) and start a not-yet-OTP-verified session."""
    email = email.strip().lower()
    user = authenticate(request, username=email, password=password)
    if getattr(request, "axes_locked_out", False):
        raise LoginLockedOut(lockout_message())
    if user is None or not isinstance(user, User):
        with transaction.atomic():
            audit_record(
                action="auth.login_failed", after={"email": email[:254]}, ip=client_ip(request)
            )
        raise LoginFailed("Email or password is incorrect.")
    with transaction.atomic():
        login(request, user)  # Django rotates the session id here
        _session_register(request=request, user=user)
        audit_record(action="auth.login", actor=user, obj=user, ip=client_ip(request))
    return user


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        "Too many failed sign-in attempts. This account is locked for this address for "
        f"{minutes} minutes; try again later or reset your password."
    )


def auth_logout(*, request: HttpRequest) -> None:
    user: Any = request.user
    with transaction.atomic():
        if user.is_authenticated:
            UserSession.objects.filter(session_key=request.session.session_key).delete()
            audit_record(action="auth.logout", actor=user, obj=user, ip=client_ip(request))
        logout(request)  # flushes the server-side session


def user_session_touch(*, request: HttpRequest) -> None:
    UserSession.objects.filter(session_key=request.session.session_key).update(
        last_seen_at=timezone.now()
    )


def _session_store_delete(session_key: str) -> None:
    engine: Any = __import__(settings.SESSION_ENGINE, fromlist=["SessionStore"])
    engine.SessionStore(session_key=session_key).delete()


def user_sessions_revoke_others(*, request: HttpRequest) -> int:
    """Sign out every other session of the current user (server-side deletion)."""
    user = _request_user(request)
    current = request.session.session_key
    with transaction.atomic():
        others = list(
            UserSession.objects.filter(user=user)
            .exclude(session_key=current)
            .values_list("session_key", flat=True)
        )
        for key in others:
            _session_store_delete(key)
        UserSession.objects.filter(session_key__in=others).delete()
        audit_record(
            action="auth.sessions_revoked",
            actor=user,
            obj=user,
            after={"count": len(others)},
            ip=client_ip(request),
        )
    return len(others)


def user_session_revoke(*, request: HttpRequest, session_id: int) -> None:
    user = _request_user(request)
    with transaction.atomic():
        row = UserSession.objects.filter(user=user, pk=session_id).first()
        if row is None:
            raise NotFound("That session does not exist.", code="session_not_found")
        if row.session_key == request.session.session_key:
            raise InvalidInput("Use “Sign out” to end the current session.", code="current_session")
        _session_store_delete(row.session_key)
        row.delete()
        audit_record(action="auth.session_revoked", actor=user, obj=user, ip=client_ip(request))


# --- MFA ----------------------------------------------------------------------------------------


def mfa_totp_enrollment_begin(*, user: User) -> TOTPDevice:
    """A fresh, unconfirmed authenticator device; any earlier unconfirmed one is discarded."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def _backup_codes_replace(*, user: User) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name="Backup codes", defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [
        f"{secrets.token_hex(2)}-{secrets.token_hex(2)}"
        for _ in range(settings.MFA_BACKUP_CODE_COUNT)
    ]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=c) for c in codes])
    return codes


def _otp_verified_login(*, request: HttpRequest, device: Device) -> None:
    otp_login(request, device)
    _session_rotate(request=request)


def mfa_totp_enrollment_confirm(*, request: HttpRequest, device_id: int, token: str) -> list[str]:
    """Confirm the device with a code from the app, verify the session, issue backup codes.

    Replaces any previously confirmed authenticator, so a user can move to a new phone.
    """
    user = _request_user(request)
    token = token.strip().replace(" ", "")
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(pk=device_id, user=user, confirmed=False)
            .first()
        )
        if device is None:
            raise InvalidInput(
                "This enrolment has expired; start again.", code="enrollment_not_found"
            )
        if not device.verify_token(token):
            raise OtpInvalid("That code is not valid. Check the time on your phone and try again.")
        replaced = TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk)
        replaced_count = replaced.count()
        replaced.delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _backup_codes_replace(user=user)
        _otp_verified_login(request=request, device=device)
        audit_record(
            action="mfa.device_enrolled",
            actor=user,
            obj=device,
            after={"kind": "totp", "replaced": replaced_count},
            ip=client_ip(request),
        )
    return codes


def mfa_verify(*, request: HttpRequest, token: str) -> Device:
    """Check a TOTP or backup code for the signed-in user and mark the session OTP-verified.

    django-otp rejects a TOTP code at or before the last accepted time step (no replay), burns
    a backup code on use, and throttles repeated failures per device.
    """
    user = _request_user(request)
    token = token.strip().replace(" ", "")
    with transaction.atomic():
        device = match_token(user, token) if token else None
        if device is None:
            audit_record(action="mfa.failed", actor=user, obj=user, ip=client_ip(request))
        else:
            _otp_verified_login(request=request, device=device)
            kind = "backup_code" if isinstance(device, StaticDevice) else "totp"
            audit_record(
                action="mfa.verified",
                actor=user,
                obj=device,
                after={"kind": kind},
                ip=client_ip(request),
            )
    if device is None:
        raise OtpInvalid("That code is not valid or was already used.")
    return device


def mfa_backup_codes_regenerate(*, request: HttpRequest) -> list[str]:
    user = _request_user(request)
    with transaction.atomic():
        codes = _backup_codes_replace(user=user)
        audit_record(
            action="mfa.backup_codes_regenerated", actor=user, obj=user, ip=client_ip(request)
        )
    return codes


# --- API tokens ---------------------------------------------------------------------------------


def api_token_create(
    *, request: HttpRequest, name: str, ttl_days: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token for the signed-in, OTP-verified user. Returns (token row, raw secret)."""
    user = _request_user(request)
    if not (user.is_authenticated and getattr(user, "otp_device", None) is not None):
        raise Forbidden(
            "API tokens can only be created from a session verified with your authenticator.",
            code="otp_required",
        )
    name = name.strip()
    if not name:
        raise InvalidInput("Give the token a name.", fields={"name": ["Required."]})
    ttl = settings.API_TOKEN_DEFAULT_TTL_DAYS if ttl_days is None else ttl_days
    if not 1 <= ttl <= 365:
        raise InvalidInput(
            "Token lifetime must be between 1 and 365 days.",
            fields={"ttl_days": ["Between 1 and 365."]},
        )
    raw, prefix = token_generate()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name[:80],
            prefix=prefix,
            key_hash=token_hash(raw),
            expires_at=timezone.now() + dt.timedelta(days=ttl),
        )
        audit_record(
            action="api_token.created",
            actor=user,
            obj=token,
            after={"name": token.name, "prefix": prefix, "expires_at": token.expires_at},
            ip=client_ip(request),
        )
    return token, raw


def api_token_revoke(*, request: HttpRequest, token_id: int) -> ApiToken:
    user = _request_user(request)
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
        if token is None:
            raise NotFound("That token does not exist.", code="token_not_found")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                action="api_token.revoked",
                actor=user,
                obj=token,
                after={"prefix": token.prefix},
                ip=client_ip(request),
            )
    return token


def api_token_touch(*, token: ApiToken) -> None:
    # At most one write a minute per token: authentication is on every request's hot path.
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


# --- Password reset -----------------------------------------------------------------------------


def user_password_reset(*, user: User, new_password: str, request: HttpRequest | None) -> None:
    """Set a new password from a reset link. It signs the user out everywhere and does NOT log
    them in: they sign in again with the new password *and* their second factor."""
    try:
        validate_password(new_password, user=user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password") from exc
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.set_password(new_password)
        locked.save(update_fields=["password"])
        for key in UserSession.objects.filter(user=locked).values_list("session_key", flat=True):
            _session_store_delete(key)
        UserSession.objects.filter(user=locked).delete()
        ApiToken.objects.filter(user=locked, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        audit_record(action="auth.password_reset", actor=locked, obj=locked, ip=client_ip(request))


def auth_api_login(
    *, request: HttpRequest, email: str, password: str, otp: str, token_name: str
) -> tuple[ApiToken, str]:
    """Password + second factor in one call, for apps; mints a token from the verified session."""
    auth_login(request=request, email=email, password=password)
    try:
        mfa_verify(request=request, token=otp)
    except OtpInvalid:
        logout(request)
        raise
    token, raw = api_token_create(request=request, name=token_name)
    # The app authenticates with the token from now on; the short-lived session is not kept.
    UserSession.objects.filter(session_key=request.session.session_key).delete()
    logout(request)
    return token, raw


def api_token_revoke_by_staff(*, staff: Any, token_ids: list[int], request: HttpRequest) -> int:
    with transaction.atomic():
        tokens = list(
            ApiToken.objects.select_for_update().filter(pk__in=token_ids, revoked_at__isnull=True)
        )
        now = timezone.now()
        for token in tokens:
            token.revoked_at = now
            token.save(update_fields=["revoked_at"])
            audit_record(
                action="api_token.revoked_by_staff",
                actor=staff,
                obj=token,
                after={"user_id": token.user_id, "prefix": token.prefix},
                ip=client_ip(request),
            )
    return len(tokens)


def sessions_purge_expired() -> int:
    """Remove expired sessions and their listing rows (Celery beat, hourly)."""
    from django.contrib.sessions.models import Session

    with transaction.atomic():
        Session.objects.filter(expire_date__lt=timezone.now()).delete()
        stale = UserSession.objects.exclude(session_key__in=Session.objects.values("session_key"))
        count, _ = stale.delete()
    return count
