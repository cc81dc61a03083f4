import re

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from tests.factories import TOTPDeviceFactory, totp_now

pytestmark = pytest.mark.django_db


def _password_login(client: Client, user: User, password: str) -> str:
    response = client.post(reverse("accounts:login"), {"email": user.email, "password": password})
    assert response.status_code == 302
    return str(response["Location"])


def test_enrolment_with_qr_code_then_backup_codes(user: User, password: str) -> None:
    client = Client()
    assert _password_login(client, user, password).startswith(reverse("accounts:mfa-setup"))
    page = client.get(reverse("accounts:mfa-setup"))
    assert page.status_code == 200
    assert "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    key_before = client.cookies["brk_session"].value

    wrong = client.post(reverse("accounts:mfa-setup"), {"code": "000000"})
    assert "not valid" in wrong.content.decode()

    done = client.post(reverse("accounts:mfa-setup"), {"code": totp_now(device)})
    assert done.status_code == 200
    codes = re.findall(r"<code>([0-9a-f]{4}-[0-9a-f]{4})</code>", done.content.decode())
    assert len(codes) == 10
    device.refresh_from_db()
    assert device.confirmed
    # OTP verification rotates the session id.
    assert client.cookies["brk_session"].value != key_before
    assert client.get(reverse("accounts:security")).status_code == 200
    assert AuditEvent.objects.filter(action="mfa.device_enrolled", actor_id=user.pk).exists()


def test_replayed_totp_code_is_rejected(user: User, password: str) -> None:
    device = TOTPDeviceFactory(user=user)
    code = totp_now(device)
    first = Client()
    assert _password_login(first, user, password).startswith(reverse("accounts:mfa-verify"))
    ok = first.post(reverse("accounts:mfa-verify"), {"code": code})
    assert ok.status_code == 302

    second = Client()
    _password_login(second, user, password)
    replay = second.post(reverse("accounts:mfa-verify"), {"code": code})
    assert replay.status_code == 200
    assert "already used" in replay.content.decode()
    assert second.get(reverse("accounts:security")).status_code == 302
    assert AuditEvent.objects.filter(action="mfa.failed", actor_id=user.pk).count() == 1


def test_session_id_rotates_at_otp_verification(user: User, password: str) -> None:
    device = TOTPDeviceFactory(user=user)
    client = Client()
    _password_login(client, user, password)
    before = client.cookies["brk_session"].value
    client.post(reverse("accounts:mfa-verify"), {"code": totp_now(device)})
    assert client.cookies["brk_session"].value != before


def test_backup_code_works_once(user: User, password: str) -> None:
    device = TOTPDeviceFactory(user=user)
    setup = Client()
    _password_login(setup, user, password)
    setup.post(reverse("accounts:mfa-verify"), {"code": totp_now(device)})
    page = setup.post(reverse("accounts:backup-codes-regenerate"))
    code = re.findall(r"<code>([0-9a-f]{4}-[0-9a-f]{4})</code>", page.content.decode())[0]

    first = Client()
    _password_login(first, user, password)
    assert first.post(reverse("accounts:mfa-verify"), {"code": code}).status_code == 302
    assert not StaticToken.objects.filter(token=code).exists()

    second = Client()
    _password_login(second, user, password)
    assert second.post(reverse("accounts:mfa-verify"), {"code": code}).status_code == 200


def test_enrolled_user_cannot_replace_device_without_verifying(user: User, password: str) -> None:
    TOTPDeviceFactory(user=user)
    client = Client()
    _password_login(client, user, password)
    response = client.get(reverse("accounts:mfa-setup"))
    assert response["Location"] == reverse("accounts:mfa-verify")
    assert TOTPDevice.objects.filter(user=user, confirmed=False).count() == 0


def test_admin_requires_otp(staff_user: User, password: str) -> None:
    client = Client()
    client.force_login(staff_user)
    TOTPDeviceFactory(user=staff_user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:mfa-verify"))
    login_form = Client().get("/admin/login/")
    assert "otp_token" in login_form.content.decode()


def test_admin_reachable_for_verified_staff(staff_client: Client) -> None:
    assert staff_client.get("/admin/").status_code == 200
    assert staff_client.get("/admin/audit/auditevent/").status_code == 200
