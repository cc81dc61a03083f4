from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.accounts.authentication import is_token_request


class IsOtpVerified(BasePermission):
    """Session users must have passed the second factor; API tokens qualify because they can only
    be minted from an OTP-verified session."""

    message = "Verify this session with your authenticator app before using this endpoint."
    code = "otp_required"

    def has_permission(self, request: Request, view: Any) -> bool:
        if is_token_request(request):
            return True
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "is_verified", bool)())
