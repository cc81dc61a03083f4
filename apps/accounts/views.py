"""HTML views for sign-up, sign-in, MFA, the security page and password reset.

Views parse the form, call one service or selector, and render; DomainErrors become inline form
errors or messages.
"""

from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import selectors, services
from apps.accounts.decorators import mfa_exempt
from apps.accounts.forms import LoginForm, OtpForm, SignUpForm, TokenCreateForm
from apps.common.errors import DomainError, error_body

PENDING_DEVICE_KEY = "_mfa_pending_device"


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _after_password(request: HttpRequest) -> HttpResponse:
    """After the password step, the second factor: verification, or enrolment if none yet."""
    user: Any = request.user
    target = (
        "accounts:mfa-verify"
        if selectors.user_has_confirmed_totp(user=user)
        else "accounts:mfa-setup"
    )
    nxt = _next_url(request, "")
    url = reverse(target)
    return HttpResponseRedirect(f"{url}?next={nxt}" if nxt else url)


def _apply_error(form: Any, exc: DomainError) -> None:
    if exc.fields:
        for field, errors in exc.fields.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)
    else:
        form.add_error(None, exc.message)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    from apps.kyc.selectors import trading_eligibility

    return render(
        request,
        "accounts/home.html",
        {"eligibility": trading_eligibility(user=request.user)},
    )


@mfa_exempt
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_sign_up(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                full_name=form.cleaned_data["full_name"],
                request=request,
            )
            services.auth_login(
                request=request,
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
            )
        except DomainError as exc:
            _apply_error(form, exc)
        else:
            messages.success(
                request,
                "Account created. We sent you a link to confirm your email. "
                "Now protect your account with an authenticator app.",
            )
            return redirect("accounts:mfa-setup")
    return render(request, "accounts/signup.html", {"form": form})


@mfa_exempt
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return _after_password(request)
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.auth_login(
                request=request,
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
            )
        except services.LoginLockedOut:
            return lockout_response(request)
        except DomainError as exc:
            _apply_error(form, exc)
        else:
            return _after_password(request)
    return render(request, "accounts/login.html", {"form": form, "next": _next_url(request, "")})


@mfa_exempt
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    services.auth_logout(request=request)
    messages.info(request, "You are signed out.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


@mfa_exempt
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    try:
        services.user_email_verify(token=token, request=request)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Your email address is confirmed.")
    return redirect("accounts:home" if request.user.is_authenticated else "accounts:login")


@mfa_exempt
@login_required
@require_POST
def resend_verification(request: HttpRequest) -> HttpResponse:
    services.user_email_verification_send(user=request.user)  # type: ignore[arg-type]
    messages.info(request, f"We sent a new confirmation link to {request.user}.")
    return redirect("accounts:home")


@mfa_exempt
@login_required
def mfa_setup(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    # Enrolling a new authenticator while one exists needs the existing one first: otherwise a
    # stolen password would be enough to replace the second factor.
    if selectors.user_has_confirmed_totp(user=user) and not user.is_verified():
        return redirect("accounts:mfa-verify")
    form = OtpForm(request.POST or None)
    device = TOTPDevice.objects.filter(
        pk=request.session.get(PENDING_DEVICE_KEY), user=user, confirmed=False
    ).first()
    if request.method == "POST" and device is not None and form.is_valid():
        try:
            codes = services.mfa_totp_enrollment_confirm(
                request=request, device_id=device.pk, token=form.cleaned_data["code"]
            )
        except DomainError as exc:
            _apply_error(form, exc)
        else:
            request.session.pop(PENDING_DEVICE_KEY, None)
            return render(
                request,
                "mfa/backup_codes.html",
                {"codes": codes, "next": _next_url(request, reverse("accounts:home"))},
            )
    if device is None:
        device = services.mfa_totp_enrollment_begin(user=user)
        request.session[PENDING_DEVICE_KEY] = device.pk
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=5, dark="#000")
    secret = _base32_secret(device)
    return render(
        request,
        "mfa/setup.html",
        {"form": form, "qr_svg": qr_svg, "secret": secret, "next": _next_url(request, "")},
    )


def _base32_secret(device: TOTPDevice) -> str:
    import base64

    raw = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@mfa_exempt
@login_required
def mfa_verify(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    if not selectors.user_has_confirmed_totp(user=user):
        return redirect("accounts:mfa-setup")
    form = OtpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.mfa_verify(request=request, token=form.cleaned_data["code"])
        except DomainError as exc:
            _apply_error(form, exc)
        else:
            return HttpResponseRedirect(_next_url(request, reverse("accounts:home")))
    return render(request, "mfa/verify.html", {"form": form, "next": _next_url(request, "")})


@login_required
def security(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    return render(
        request,
        "accounts/security.html",
        {
            "devices": selectors.user_totp_devices(user=user),
            "backup_codes_remaining": selectors.user_backup_codes_remaining(user=user),
            "sessions": selectors.user_sessions(user=user),
            "current_session_key": request.session.session_key,
            "tokens": selectors.user_api_tokens(user=user),
            "token_form": TokenCreateForm(),
        },
    )


@login_required
@require_POST
def sessions_revoke_others(request: HttpRequest) -> HttpResponse:
    count = services.user_sessions_revoke_others(request=request)
    messages.success(request, f"Signed out {count} other session(s).")
    return redirect("accounts:security")


@login_required
@require_POST
def session_revoke(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        services.user_session_revoke(request=request, session_id=session_id)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "That session is signed out.")
    return redirect("accounts:security")


@login_required
@require_POST
def backup_codes_regenerate(request: HttpRequest) -> HttpResponse:
    codes = services.mfa_backup_codes_regenerate(request=request)
    return render(
        request, "mfa/backup_codes.html", {"codes": codes, "next": reverse("accounts:security")}
    )


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST)
    if form.is_valid():
        try:
            token, raw = services.api_token_create(
                request=request,
                name=form.cleaned_data["name"],
                ttl_days=form.cleaned_data["ttl_days"],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            return render(request, "accounts/token_created.html", {"token": token, "raw": raw})
    else:
        messages.error(request, "Check the token name and lifetime.")
    return redirect("accounts:security")


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        services.api_token_revoke(request=request, token_id=token_id)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The token is revoked.")
    return redirect("accounts:security")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Sets the new password through the service, which signs the user out everywhere; the user
    then signs in with the new password and still has to pass the second factor."""

    post_reset_login = False
    success_url = reverse_lazy("accounts:password-reset-complete")
    template_name = "registration/password_reset_confirm.html"
    token_generator = default_token_generator

    def form_valid(self, form: Any) -> HttpResponse:
        try:
            services.user_password_reset(
                user=form.user,
                new_password=form.cleaned_data["new_password1"],
                request=self.request,
            )
        except DomainError as exc:
            form.add_error("new_password1", exc.message)
            return self.form_invalid(form)
        self.request.session.pop(auth_views.INTERNAL_RESET_SESSION_TOKEN, None)
        return HttpResponseRedirect(self.get_success_url())


def lockout_response(
    request: HttpRequest, credentials: Any = None, *args: Any, **kwargs: Any
) -> HttpResponse:
    """django-axes lockout: a clear message, JSON for the API and a page for the browser."""
    message = services.lockout_message()
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("login_locked", message), status=429)
    return render(request, "accounts/locked_out.html", {"message": message}, status=429)
