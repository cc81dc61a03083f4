"""Session idle timeout and the mandatory-MFA gate.

The MFA gate is deny-by-default: a signed-in user whose session is not OTP-verified reaches only
views marked `@mfa_exempt` (or API views whose class sets `mfa_exempt = True`). Everything else —
trading, money, tokens, settings, the admin — redirects to enrolment/verification (HTML) or
answers 403 `otp_required` (API).
"""

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse

from apps.accounts.selectors import user_has_confirmed_totp
from apps.accounts.services import user_session_touch
from apps.common.errors import error_body

LAST_ACTIVITY_KEY = "_last_activity"
# Re-writing the session on every request would cost a DB write per click; a minute of slack on
# a 15-minute idle timeout is harmless.
TOUCH_INTERVAL_SECONDS = 60


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


class SessionIdleTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            last = request.session.get(LAST_ACTIVITY_KEY)
            if last is not None and now - int(last) > settings.SESSION_IDLE_TIMEOUT_SECONDS:
                logout(request)
                if _is_api(request):
                    return JsonResponse(
                        error_body("session_expired", "Your session expired; sign in again."),
                        status=401,
                    )
                messages.info(request, "You were signed out after a period of inactivity.")
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{reverse(settings.LOGIN_URL)}?{query}")
            if last is None or now - int(last) >= TOUCH_INTERVAL_SECONDS:
                request.session[LAST_ACTIVITY_KEY] = now
                user_session_touch(request=request)
        return self.get_response(request)


def _view_is_exempt(view_func: Callable[..., Any]) -> bool:
    if getattr(view_func, "mfa_exempt", False):
        return True
    for attr in ("cls", "view_class", "model_admin"):
        owner = getattr(view_func, attr, None)
        if owner is not None and getattr(owner, "mfa_exempt", False):
            return True
    return False


class MfaRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        user: Any = request.user
        if not user.is_authenticated or user.is_verified() or _view_is_exempt(view_func):
            return None
        if _is_api(request):
            return JsonResponse(
                error_body(
                    "otp_required",
                    "Verify this session with your authenticator app before using this endpoint.",
                ),
                status=403,
            )
        target = (
            "accounts:mfa-verify" if user_has_confirmed_totp(user=user) else "accounts:mfa-setup"
        )
        return HttpResponseRedirect(
            f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}"
        )
