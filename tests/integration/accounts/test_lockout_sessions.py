from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User, UserSession
from tests.factories import TOTPDeviceFactory, totp_now

pytestmark = pytest.mark.django_db


def _attempt(client: Client, email: str, password: str) -> Any:
    return client.post(reverse("accounts:login"), {"email": email, "password": password})


def test_lockout_after_repeated_failures_is_keyed_on_username_and_ip(
    user: User, password: str
) -> None:
    attacker = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _attempt(attacker, user.email, "not-the-password")
    locked = _attempt(attacker, user.email, password)
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.content.decode()
    assert "_auth_user_id" not in attacker.session

    # Same user from another address is not locked out by the attacker's failures.
    other_ip = Client(REMOTE_ADDR="10.1.1.1")
    assert _attempt(other_ip, user.email, password).status_code == 302


def test_api_login_lockout_is_json(user: User) -> None:
    client = Client(REMOTE_ADDR="10.9.9.8")
    url = reverse("accounts_api:login")
    body = {"email": user.email, "password": "nope-nope-nope", "otp": "123456"}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(url, body, content_type="application/json").status_code == 401
    # The attempt that reaches the limit is already answered with the lockout.
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 429
    assert response.json()["code"] == "login_locked"


def _full_login(user: User, password: str, device: object, ua: str, step: int) -> Client:
    client = Client(HTTP_USER_AGENT=ua)
    client.post(reverse("accounts:login"), {"email": user.email, "password": password})
    client.post(reverse("accounts:mfa-verify"), {"code": totp_now(device, offset_steps=step)})
    assert client.get(reverse("accounts:security")).status_code == 200
    return client


def test_sessions_listed_and_sign_out_everywhere_else(user: User, password: str) -> None:
    device = TOTPDeviceFactory(user=user)
    laptop = _full_login(user, password, device, "Laptop Firefox", 0)
    phone = _full_login(user, password, device, "Phone Safari", 1)
    page = laptop.get(reverse("accounts:security")).content.decode()
    assert "Laptop Firefox" in page
    assert "Phone Safari" in page
    assert UserSession.objects.filter(user=user).count() == 2

    laptop.post(reverse("accounts:sessions-revoke-others"))
    assert phone.get(reverse("accounts:security")).status_code == 302
    assert laptop.get(reverse("accounts:security")).status_code == 200
    assert UserSession.objects.filter(user=user).count() == 1
    assert Session.objects.filter(session_key=laptop.cookies["brk_session"].value).exists()
