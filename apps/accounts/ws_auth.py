"""WebSocket authentication: the Django session (with its OTP verification) for browsers."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device


@database_sync_to_async
def _session_otp_verified(session: Any, user: Any) -> bool:
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    if not persistent_id or not getattr(user, "is_authenticated", False):
        return False
    device = Device.from_persistent_id(persistent_id)
    return device is not None and device.user_id == user.pk and device.confirmed


class OtpScopeMiddleware(BaseMiddleware):
    """Adds `scope["otp_verified"]`; consumers refuse private streams without it."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        user = scope.get("user")
        if user is not None and hasattr(user, "_wrapped") and user._wrapped is None:
            user._setup()
        scope["otp_verified"] = await _session_otp_verified(scope.get("session"), scope.get("user"))
        return await super().__call__(scope, receive, send)


def WebSocketAuthMiddlewareStack(inner: Any) -> Any:
    return AuthMiddlewareStack(OtpScopeMiddleware(inner))
