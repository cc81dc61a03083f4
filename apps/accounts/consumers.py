import time
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class HeartbeatConsumer(AsyncJsonWebsocketConsumer):
    """Liveness for the trader UI: answers pings with the server clock (ms). OTP-verified only."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated and self.scope.get("otp_verified")):
            await self.close(code=4401)
            return
        await self.accept()
        await self.send_json({"type": "hello", "server_time_ms": int(time.time() * 1000)})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("action") == "ping":
            await self.send_json(
                {"type": "pong", "id": content.get("id"), "server_time_ms": int(time.time() * 1000)}
            )
        else:
            await self.send_json(
                {"type": "error", "code": "unknown_action", "message": "Supported: ping."}
            )
