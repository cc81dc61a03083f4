"""WebSocket URL routes, collected from the apps that serve streams."""

from django.urls import path

from apps.accounts.consumers import HeartbeatConsumer

websocket_urlpatterns = [
    path("ws/heartbeat/", HeartbeatConsumer.as_asgi()),
]
