import datetime as dt
import hashlib
import re
import time
from typing import Any
from urllib.parse import urlparse

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, User
from apps.audit.models import AuditEvent
from tests.factories import TOTPDeviceFactory, totp_now

pytestmark = pytest.mark.django_db


def _create_token(client: APIClient, name: str = "phone") -> dict[str, Any]:
    response = client.post(reverse("accounts_api:tokens"), {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_token_is_shown_once_and_stored_hashed(verified_api_client: APIClient, user: User) -> None:
    body = _create_token(verified_api_client)
    raw = str(body["token"])
    row = ApiToken.objects.get(pk=body["id"])
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(list(ApiToken.objects.values()))
    listed = verified_api_client.get(reverse("accounts_api:tokens")).json()
    assert "token" not in listed[0]
    assert AuditEvent.objects.filter(action="api_token.created", actor_id=user.pk).exists()

    mobile = APIClient()
    mobile.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    me = mobile.get(reverse("accounts_api:me"))
    assert me.status_code == 200
    assert me.json()["email"] == user.email


def test_token_creation_refused_without_otp(unverified_client: Client) -> None:
    response = unverified_client.post(
        reverse("accounts_api:tokens"), {"name": "x"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "otp_required"
    assert not ApiToken.objects.exists()


def test_token_cannot_mint_tokens(verified_api_client: APIClient) -> None:
    raw = _create_token(verified_api_client)["token"]
    mobile = APIClient()
    mobile.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = mobile.post(reverse("accounts_api:tokens"), {"name": "y"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "session_required"


def test_expired_and_revoked_tokens_are_refused(verified_api_client: APIClient) -> None:
    body = _create_token(verified_api_client)
    mobile = APIClient()
    mobile.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    ApiToken.objects.filter(pk=body["id"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    expired = mobile.get(reverse("accounts_api:me"))
    assert expired.status_code == 401
    assert expired.json() == {"code": "token_expired", "message": "This API token has expired."}

    ApiToken.objects.filter(pk=body["id"]).update(expires_at=timezone.now() + dt.timedelta(days=1))
    revoke = verified_api_client.delete(reverse("accounts_api:token-revoke", args=[body["id"]]))
    assert revoke.status_code == 200
    revoked = mobile.get(reverse("accounts_api:me"))
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "token_revoked"

    garbage = APIClient()
    garbage.credentials(HTTP_AUTHORIZATION="Bearer brk_deadbeef_nope")
    assert garbage.get(reverse("accounts_api:me")).json()["code"] == "token_invalid"


def test_other_users_token_cannot_be_revoked(verified_api_client: APIClient) -> None:
    other = ApiToken.objects.create(
        user=User.objects.create_user("other@example.com", "x-Very-Long-Pass-1"),
        name="theirs",
        prefix="abcd1234",
        key_hash="0" * 64,
        expires_at=timezone.now() + dt.timedelta(days=1),
    )
    response = verified_api_client.delete(reverse("accounts_api:token-revoke", args=[other.pk]))
    assert response.status_code == 404
    assert response.json()["code"] == "token_not_found"
    other.refresh_from_db()
    assert other.revoked_at is None


def test_api_login_requires_the_second_factor(user: User, password: str) -> None:
    device = TOTPDeviceFactory(user=user)
    client = APIClient()
    url = reverse("accounts_api:login")
    bad = client.post(
        url, {"email": user.email, "password": password, "otp": "000000"}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "otp_invalid"
    time.sleep(1.1)  # django-otp throttles a device for 1 s after one failure
    good = client.post(
        url, {"email": user.email, "password": password, "otp": totp_now(device)}, format="json"
    )
    assert good.status_code == 201
    assert good.json()["token"].startswith("brk_")
    missing = client.post(url, {"email": user.email}, format="json")
    assert missing.status_code == 400
    assert missing.json()["code"] == "invalid_input"
    assert "password" in missing.json()["fields"]


def test_password_reset_does_not_bypass_mfa(user: User, verified_client: Client) -> None:
    old_session = verified_client.cookies["brk_session"].value
    client = Client()
    client.post(reverse("accounts:password-reset"), {"email": user.email})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/reset/\S+/", str(mail.outbox[0].body))
    assert link is not None
    form_page = client.get(urlparse(link.group(0)).path, follow=True)
    new_password = "Fresh-Lantern-Harbor-19"
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": new_password, "new_password2": new_password},
    )
    assert done.status_code == 302
    assert "_auth_user_id" not in client.session  # not signed in by the reset
    assert verified_client.get(reverse("accounts:security")).status_code == 302  # old session gone
    assert old_session

    after = client.post(reverse("accounts:login"), {"email": user.email, "password": new_password})
    assert after["Location"].startswith(reverse("accounts:mfa-verify"))
    assert client.get(reverse("accounts:security")).status_code == 302
    assert AuditEvent.objects.filter(action="auth.password_reset", actor_id=user.pk).exists()


def test_api_errors_have_code_and_message(verified_api_client: APIClient) -> None:
    response = verified_api_client.post(reverse("accounts_api:tokens"), {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["message"]
    assert "name" in body["fields"]
    anonymous = APIClient().get(reverse("accounts_api:me")).json()
    assert anonymous["code"] == "not_authenticated"
