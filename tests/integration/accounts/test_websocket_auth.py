from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from brokerage.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _connect(cookie: str | None) -> Any:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", f"brk_session={cookie}".encode()))

    async def run() -> tuple[bool, Any, Any]:
        communicator = WebsocketCommunicator(application, "/ws/heartbeat/", headers=headers)
        connected, code = await communicator.connect()
        hello = pong = None
        if connected:
            hello = await communicator.receive_json_from()
            await communicator.send_json_to({"action": "ping", "id": 7})
            pong = await communicator.receive_json_from()
        await communicator.disconnect()
        return connected, hello or code, pong

    return async_to_sync(run)()


def test_verified_session_gets_heartbeat(verified_client: Client) -> None:
    connected, hello, pong = _connect(verified_client.cookies["brk_session"].value)
    assert connected
    assert hello["type"] == "hello"
    assert pong == {"type": "pong", "id": 7, "server_time_ms": pong["server_time_ms"]}


def test_session_without_otp_is_refused(unverified_client: Client) -> None:
    connected, code, _ = _connect(unverified_client.cookies["brk_session"].value)
    assert not connected
    assert code == 4401


def test_anonymous_is_refused() -> None:
    connected, code, _ = _connect(None)
    assert not connected
    assert code == 4401
