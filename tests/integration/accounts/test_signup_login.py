import re
from typing import Any
from urllib.parse import urlparse

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

STRONG = "Blue-Kettle-Orbit-77"


def _signup(client: Client, email: str = "new@example.com", password: str = STRONG) -> Any:
    return client.post(
        reverse("accounts:signup"),
        {
            "email": email,
            "full_name": "New Trader",
            "password": password,
            "password_confirm": password,
        },
    )


@pytest.mark.parametrize(
    ("password", "fragment"),
    [("password123", "too common"), ("8402957316", "entirely numeric"), ("short", "too short")],
)
def test_signup_rejects_weak_passwords(password: str, fragment: str) -> None:
    response = _signup(Client(), password=password)
    assert response.status_code == 200
    assert fragment in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()


def test_signup_creates_user_sends_verification_and_requires_mfa(
    django_capture_on_commit_callbacks: object,
) -> None:
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = _signup(client, email="New@Example.com")
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:mfa-setup")
    user = User.objects.get(email="new@example.com")
    assert not user.email_verified
    assert AuditEvent.objects.filter(action="user.signed_up", actor_id=user.pk).exists()
    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+/accounts/verify-email/\S+/", str(mail.outbox[0].body))
    assert link is not None

    # The session is signed in but not OTP-verified: the home page redirects to enrolment.
    assert client.get(reverse("accounts:home"))["Location"].startswith(
        reverse("accounts:mfa-setup")
    )
    client.get(urlparse(link.group(0)).path)
    user.refresh_from_db()
    assert user.email_verified


def test_duplicate_email_is_refused_case_insensitively(user: User) -> None:
    response = _signup(Client(), email=user.email.upper())
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email__iexact=user.email).count() == 1


def test_tampered_verification_link_is_refused(user: User) -> None:
    user.email_verified_at = None
    user.save(update_fields=["email_verified_at"])
    response = Client().get(
        reverse("accounts:verify-email", kwargs={"token": "eyJ1aWQiOjF9:bad:sig"}), follow=True
    )
    assert "not valid" in response.content.decode()
    user.refresh_from_db()
    assert not user.email_verified


def test_login_wrong_password_is_refused_and_audited(user: User) -> None:
    response = Client().post(
        reverse("accounts:login"), {"email": user.email, "password": "wrong-password-1"}
    )
    assert response.status_code == 200
    assert "Email or password is incorrect" in response.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 1


def test_session_id_rotates_at_login(user: User, password: str) -> None:
    client = Client()
    session = client.session
    session["probe"] = 1
    session.save()
    before = session.session_key
    response = client.post(reverse("accounts:login"), {"email": user.email, "password": password})
    assert response.status_code == 302
    after = client.cookies["brk_session"].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    assert AuditEvent.objects.filter(action="auth.login", actor_id=user.pk).exists()


def test_logout_invalidates_the_session_server_side(verified_client: Client) -> None:
    key = verified_client.cookies["brk_session"].value
    assert verified_client.get(reverse("accounts:security")).status_code == 200
    verified_client.post(reverse("accounts:logout"))
    assert not Session.objects.filter(session_key=key).exists()
    # Replaying the old cookie does not bring the session back.
    replay = Client()
    replay.cookies["brk_session"] = key
    assert replay.get(reverse("accounts:security")).status_code == 302


def test_logout_requires_post(verified_client: Client) -> None:
    assert verified_client.get(reverse("accounts:logout")).status_code == 405


def test_idle_session_times_out(verified_client: Client, settings: object) -> None:
    assert verified_client.get(reverse("accounts:security")).status_code == 200
    session = verified_client.session
    session["_last_activity"] = int(session["_last_activity"]) - 16 * 60
    session.save()
    response = verified_client.get(reverse("accounts:security"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert verified_client.get(reverse("accounts:security")).status_code == 302
